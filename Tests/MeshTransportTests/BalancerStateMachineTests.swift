/*
 * Copyright 2026, swift-grpc-mesh contributors
 *
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

import GRPCCore
import MeshCore
import MeshDiscovery
import MeshTestKit
import Testing

@testable import MeshTransport

/// The balancer's state machine alone: no sockets, no tasks, no clock but the instants given.
/// A connection is a number, a waiter a string.
@Suite("Balancer state machine, without sockets")
struct BalancerStateMachineTests {
  typealias Machine = MeshBalancerStateMachine<Int, String, MeshManualClock.Instant>

  static let start = MeshManualClock.Instant(offset: .zero)

  static func machine(
    policy: MeshBalancingPolicy = .roundRobin,
    maxStreams: Int = 100,
    maxConnections: Int = 8,
    breakers: MeshCircuitBreakerThresholds = MeshCircuitBreakerThresholds(),
    outlierDetection: MeshOutlierDetectionPolicy? = nil,
    retryBudget: MeshRetryBudgetPolicy? = nil
  ) -> Machine {
    Machine(
      configuration: .init(
        service: "greeter",
        maxStreamsPerConnection: maxStreams,
        maxConnectionsPerEndpoint: maxConnections,
        breakers: breakers
      ),
      policy: policy,
      outlierDetection: outlierDetection,
      retryBudget: retryBudget
    )
  }

  static func endpoints(_ ids: String...) -> MeshEndpointSet {
    MeshEndpointSet(
      service: "greeter",
      endpoints: ids.enumerated().map { index, id in
        MeshEndpoint(id: id, host: "10.0.0.\(index + 1)", port: 8080)
      }
    )
  }

  /// Applies `set`, making connection `n` for the n-th endpoint that needs one (from 1).
  @discardableResult
  static func apply(_ set: MeshEndpointSet, to machine: inout Machine, firstConnection: Int = 1)
    -> (added: [Machine.Entry], effects: Machine.Effects)
  {
    let incoming = machine.prepare(set)!
    var made: [String: Int] = [:]
    for (offset, key) in incoming.toConnect.enumerated() { made[key] = firstConnection + offset }
    return machine.apply(incoming, connections: made)
  }

  /// Marks every endpoint of `machine` connected and serving.
  static func connectAll(_ machine: inout Machine) -> Machine.Effects {
    var effects = Machine.Effects()
    for id in machine.order {
      let generation = machine.entries[id]!.generation
      effects.formUnion(
        machine.setHealth(
          of: id,
          generation: generation,
          connected: true,
          eligible: true,
          error: nil
        )
        .effects
      )
    }
    return effects
  }

  static func pick(
    _ machine: inout Machine,
    avoiding failed: Set<String> = [],
    waitForReady: Bool = false,
    now: MeshManualClock.Instant = start
  ) -> Machine.PickAction {
    var random = MeshFastRandom(seed: 7)
    return machine.pick(avoiding: failed, waitForReady: waitForReady, now: now, using: &random)
  }

  @Test("A set is checked: invalid endpoints skipped and reported once, duplicates dropped")
  func prepareChecksTheSet() throws {
    var machine = Self.machine()
    var set = Self.endpoints("a", "b")
    set.endpoints.append(MeshEndpoint(id: "bad", host: "not a host!", port: 80))
    set.endpoints.append(MeshEndpoint(id: "a", host: "10.0.0.1", port: 8080))  // duplicate
    let prepared = machine.prepare(set)
    let first = try #require(prepared)
    #expect(first.order == ["a", "b"])
    #expect(first.toConnect == ["a", "b"])
    #expect(first.invalidCount == 1)
    #expect(first.newlyInvalid.map(\.endpoint.id) == ["bad"])
    let (added, _) = machine.apply(first, connections: ["a": 1, "b": 2])
    #expect(added.map(\.id) == ["a", "b"])
    #expect(machine.stats.invalidEndpoints == 1)
    #expect(machine.stats.connections == 2)

    // The same set again: nothing new to connect, the invalid endpoint is not reported again.
    let again = machine.prepare(set)
    let second = try #require(again)
    #expect(second.toConnect.isEmpty)
    #expect(second.invalidCount == 1)
    #expect(second.newlyInvalid.isEmpty)
  }

  @Test("An endpoint whose connection cannot be made is skipped and counted as invalid")
  func refusedConnection() throws {
    var machine = Self.machine()
    let prepared = machine.prepare(Self.endpoints("a", "b"))
    let incoming = try #require(prepared)
    let (added, _) = machine.apply(incoming, connections: ["a": 1])
    #expect(added.map(\.id) == ["a"])
    #expect(machine.order == ["a"])
    #expect(machine.stats.invalidEndpoints == 1)
  }

  @Test("A change between an RPC's pick and its wait wakes it: it looks again, never sleeps")
  func changeBeforeTheWaiterIsStored() throws {
    var machine = Self.machine()
    // Before discovery answers, an RPC must wait; it stores its waiter only after the lock was
    // let go, and discovery answers in between, with no endpoint.
    guard case .wait(let id) = Self.pick(&machine) else {
      Issue.record("expected to wait for discovery")
      return
    }
    #expect(Self.apply(Self.endpoints(), to: &machine).effects.resume.isEmpty)
    // The waiter comes back at once instead of waiting for a change that already happened.
    #expect(machine.enqueue("late", id: id).resume == ["late"])
    #expect(machine.stats.pending == 0)
    guard case .fail(let error) = Self.pick(&machine) else {
      Issue.record("expected the RPC to fail: discovery lists no endpoint")
      return
    }
    #expect(error.code == .unavailable)
  }

  @Test("Endpoints are picked once their health stream is up; waiting RPCs are woken then")
  func readinessWakesWaiters() throws {
    var machine = Self.machine()
    // Before discovery answers, RPCs wait.
    guard case .wait(let early) = Self.pick(&machine) else {
      Issue.record("expected to wait for discovery")
      return
    }
    #expect(machine.enqueue("early", id: early).resume.isEmpty)
    let applied = Self.apply(Self.endpoints("a", "b"), to: &machine)
    #expect(applied.effects.resume == ["early"])  // the set changed: it looks again
    #expect(machine.stats.pending == 0)

    // Not probed yet: it waits even without waitForReady.
    guard case .wait(let id) = Self.pick(&machine) else {
      Issue.record("expected to wait for the first probe")
      return
    }
    _ = machine.enqueue("rpc", id: id)
    #expect(machine.stats.pending == 1)
    let generation = machine.entries["a"]!.generation
    let (effects, transition) = machine.setHealth(
      of: "a",
      generation: generation,
      connected: true,
      eligible: true,
      error: nil
    )
    #expect(effects.resume == ["rpc"])
    #expect(transition == nil)  // no error before, none now
    #expect(machine.stats.pickable == 1)
    guard case .picked(let picked) = Self.pick(&machine) else {
      Issue.record("expected a pick")
      return
    }
    #expect(picked.id == "a")
    #expect(picked.connection == 1)
  }

  @Test("Every endpoint probed and none connected: fail at once, or wait with waitForReady")
  func noneConnected() throws {
    var machine = Self.machine()
    Self.apply(Self.endpoints("a"), to: &machine)
    let generation = machine.entries["a"]!.generation
    let (_, transition) = machine.setHealth(
      of: "a",
      generation: generation,
      connected: false,
      eligible: false,
      error: "Connection refused"
    )
    #expect(transition?.new == "Connection refused")
    guard case .fail(let error) = Self.pick(&machine) else {
      Issue.record("expected a failure")
      return
    }
    #expect(error.code == .unavailable)
    #expect(error.message.contains("Connection refused"))
    guard case .wait = Self.pick(&machine, waitForReady: true) else {
      Issue.record("expected to wait for readiness")
      return
    }
  }

  @Test("Discovery listing no endpoint fails RPCs at once, with discovery's error")
  func emptySet() throws {
    var machine = Self.machine()
    _ = machine.setDiscoveryError(DiscoveryRefused())
    Self.apply(Self.endpoints(), to: &machine)
    guard case .fail(let error) = Self.pick(&machine, waitForReady: true) else {
      Issue.record("expected a failure")
      return
    }
    #expect(error.message.contains("No endpoint of 'greeter' is available"))
    #expect(error.message.contains("403 (ACL not found)"))
    #expect(error.cause is DiscoveryRefused)  // the typed failure, not only its text
  }

  @Test("Health of a replaced endpoint (same ID, new address) is ignored; removal is signalled")
  func replacedEndpoint() throws {
    var machine = Self.machine()
    Self.apply(Self.endpoints("a"), to: &machine)
    let old = try #require(machine.entries["a"])
    var moved = Self.endpoints("a")
    moved.endpoints[0].host = "10.0.0.9"
    let (added, effects) = Self.apply(moved, to: &machine, firstConnection: 2)
    #expect(added.map(\.first) == [2])
    #expect(effects.fire.contains { $0 === old.removed })
    let new = try #require(machine.entries["a"])
    #expect(new.generation != old.generation)
    // The old entry's health stream reports late: ignored.
    _ = machine.setHealth(
      of: "a",
      generation: old.generation,
      connected: true,
      eligible: true,
      error: nil
    )
    #expect(machine.stats.pickable == 0)
    // Removed from the set: signalled, and no longer picked.
    _ = Self.connectAll(&machine)
    #expect(machine.stats.pickable == 1)
    let (_, removal) = Self.apply(Self.endpoints(), to: &machine)
    #expect(removal.fire.contains { $0 === new.removed })
    #expect(machine.stats.pickable == 0)
    #expect(machine.stats.connections == 0)
  }

  @Test("A full connection asks for another; the pick then uses it, unless the endpoint left")
  func poolGrowth() throws {
    var machine = Self.machine(maxStreams: 2, maxConnections: 2)
    Self.apply(Self.endpoints("a"), to: &machine)
    _ = Self.connectAll(&machine)
    // The health Watch holds one stream of the first connection: one more fits.
    guard case .picked(let first) = Self.pick(&machine) else {
      Issue.record("expected a pick")
      return
    }
    #expect(first.connectionIndex == 0)
    guard case .open(let open) = Self.pick(&machine) else {
      Issue.record("expected a new connection")
      return
    }
    #expect(machine.stats.connections == 2)  // reserved
    let result = machine.opened(open, connection: 7)
    let opened = try #require(result)
    #expect(opened.isNew)
    #expect(opened.picked.connection == 7)
    #expect(opened.picked.connectionIndex == 1)
    #expect(machine.entries["a"]?.pool.map(\.streams) == [2, 1])

    // At the pool's limit, the stream goes to the least busy connection.
    guard case .picked(let third) = Self.pick(&machine) else {
      Issue.record("expected a pick")
      return
    }
    #expect(third.connectionIndex == 1)

    // Released streams count down on the right connection.
    _ = machine.release(
      first,
      latency: .milliseconds(1),
      endpointFailed: false,
      perTryTimedOut: false,
      now: Self.start
    )
    #expect(machine.entries["a"]?.pool.map(\.streams) == [1, 2])
  }

  @Test("A reservation whose endpoint left is dropped; a connection that could not be made is not")
  func poolGrowthRaces() throws {
    var machine = Self.machine(maxStreams: 1, maxConnections: 4)
    Self.apply(Self.endpoints("a"), to: &machine)
    _ = Self.connectAll(&machine)
    guard case .open(let open) = Self.pick(&machine) else {
      Issue.record("expected a new connection")
      return
    }
    // The factory failed: the stream queues on the open connection.
    let result = machine.opened(open, connection: nil)
    let fallback = try #require(result)
    #expect(!fallback.isNew)
    #expect(fallback.picked.connectionIndex == 0)
    #expect(machine.stats.connections == 1)

    guard case .open(let again) = Self.pick(&machine) else {
      Issue.record("expected a new connection")
      return
    }
    Self.apply(Self.endpoints(), to: &machine)
    let late = machine.opened(again, connection: 9)
    #expect(late == nil)
    #expect(machine.stats.connections == 0)
  }

  @Test("The max connections breaker stops pool growth; max pending requests fails waiters")
  func breakers() throws {
    var machine = Self.machine(
      maxStreams: 1,
      breakers: MeshCircuitBreakerThresholds(maxConnections: 1, maxPendingRequests: 1)
    )
    Self.apply(Self.endpoints("a"), to: &machine)
    _ = Self.connectAll(&machine)
    guard case .picked = Self.pick(&machine) else {
      Issue.record("expected a pick on the open connection")
      return
    }
    #expect(machine.stats.breakerRejections[.maxConnections] == 1)

    var waiting = Self.machine(breakers: MeshCircuitBreakerThresholds(maxPendingRequests: 1))
    guard case .wait(let id) = Self.pick(&waiting) else {
      Issue.record("expected to wait")
      return
    }
    _ = waiting.enqueue("first", id: id)
    guard case .fail(let error) = Self.pick(&waiting) else {
      Issue.record("expected the breaker to fail the RPC")
      return
    }
    #expect(error.message.contains("max pending requests"))
    #expect(waiting.stats.breakerRejections[.maxPendingRequests] == 1)
    let (waiter, _) = waiting.cancelWaiter(id)
    #expect(waiter == "first")
    #expect(waiting.stats.pending == 0)
  }

  @Test("Consecutive failures eject; the ejection ends on the clock; a refused attempt keeps that")
  func ejectionOnTheClock() throws {
    var machine = Self.machine(
      breakers: MeshCircuitBreakerThresholds(maxRequests: 1),
      outlierDetection: MeshOutlierDetectionPolicy(
        consecutiveFailures: 2,
        baseEjectionTime: .seconds(30),
        successRateStdevFactor: nil
      )
    )
    Self.apply(Self.endpoints("a", "b"), to: &machine)
    _ = Self.connectAll(&machine)
    var changes: [Machine.Change] = []
    for _ in 0..<2 {
      guard case .picked(let picked) = Self.pick(&machine, avoiding: ["b"]) else {
        Issue.record("expected a pick")
        return
      }
      changes +=
        machine.release(
          picked,
          latency: .zero,
          endpointFailed: true,
          perTryTimedOut: false,
          now: Self.start
        ).changes
    }
    #expect(
      changes == [
        .ejected(
          "a",
          until: Self.start.advanced(by: .seconds(30)),
          reason: .consecutiveFailures
        )
      ]
    )
    #expect(machine.stats.ejectedEndpoints == ["a"])
    #expect(machine.stats.pickable == 1)
    #expect(machine.stats.failedAttempts == 2)

    // At the end of the ejection, the next admission ends it (half-open). It is refused by the
    // max requests breaker, yet the waiters the change woke are still handed back.
    var blocked = machine
    _ = blocked.admit(retry: nil, now: Self.start)  // one attempt in flight: the breaker is full
    let later = Self.start.advanced(by: .seconds(31))
    let (refusal, effects) = blocked.admit(retry: nil, now: later)
    #expect(refusal?.message.contains("max requests") == true)
    #expect(effects.changes == [.halfOpen("a")])
    #expect(blocked.stats.ejectedEndpoints.isEmpty)
    #expect(blocked.stats.halfOpen == 1)
  }

  @Test(
    "Each endpoint's status: connecting, ready, failing with why, ejected with why and for how long"
  )
  func endpointStatuses() throws {
    var machine = Self.machine(
      outlierDetection: MeshOutlierDetectionPolicy(
        consecutiveFailures: 1,
        baseEjectionTime: .seconds(30),
        successRateStdevFactor: nil
      )
    )
    Self.apply(Self.endpoints("a", "b", "c", "d"), to: &machine)
    var statuses = machine.endpointStatuses(now: Self.start)
    #expect(statuses.map(\.state) == [.connecting, .connecting, .connecting, .connecting])
    #expect(
      statuses.map(\.address) == [
        "10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080",
      ]
    )
    for id in ["a", "b"] {
      let generation = try #require(machine.entries[id]).generation
      _ = machine.setHealth(
        of: id,
        generation: generation,
        connected: true,
        eligible: true,
        error: nil
      )
    }
    let c = try #require(machine.entries["c"]).generation
    _ = machine.setHealth(
      of: "c",
      generation: c,
      connected: false,
      eligible: false,
      error: "refused"
    )
    let d = try #require(machine.entries["d"]).generation
    _ = machine.setHealth(of: "d", generation: d, connected: true, eligible: false, error: nil)
    // One RPC on "b"; one failure on "a" ejects it.
    guard case .picked(let onB) = Self.pick(&machine, avoiding: ["a"]),
      case .picked(let onA) = Self.pick(&machine, avoiding: ["b"])
    else {
      Issue.record("expected picks")
      return
    }
    #expect(onB.id == "b" && onA.id == "a")
    _ = machine.release(
      onA,
      latency: .zero,
      endpointFailed: true,
      perTryTimedOut: false,
      now: Self.start
    )

    statuses = machine.endpointStatuses(now: Self.start.advanced(by: .seconds(10)))
    let byID = Dictionary(uniqueKeysWithValues: statuses.map { ($0.id, $0) })
    #expect(byID["a"]?.state == .ejected)
    #expect(byID["a"]?.lastEjectionReason == "consecutive failures")
    #expect(byID["a"]?.ejectedForSeconds == 20)
    #expect(byID["b"]?.state == .ready)
    #expect(byID["b"]?.inFlight == 1)
    #expect(byID["b"]?.connections == 1)
    #expect(byID["c"]?.state == .failing)
    #expect(byID["c"]?.lastError == "refused")
    #expect(byID["d"]?.state == .notServing)
    #expect(byID["d"]?.lastError == nil)
    #expect(statuses.allSatisfy { $0.weight == 1 && $0.health == "passing" })
  }

  @Test("Retries are refused by max retries and the retry budget, with the failure they retry")
  func retryAdmission() throws {
    var machine = Self.machine(
      breakers: MeshCircuitBreakerThresholds(maxRetries: 1),
      retryBudget: MeshRetryBudgetPolicy(ratio: 1, minRetriesPerSecond: 0)
    )
    let failure = RPCError(code: .unavailable, message: "reset")
    let first = machine.admit(retry: nil, now: Self.start).refusal
    #expect(first == nil)
    let retry = machine.admit(retry: failure, now: Self.start).refusal
    #expect(retry == nil)
    let secondRetry = machine.admit(retry: failure, now: Self.start).refusal
    let refused = try #require(secondRetry)
    #expect(refused.code == .unavailable)
    #expect(refused.message.contains("reset (not retried: circuit breaker 'max retries'"))
    _ = machine.finishAttempt(isRetry: true)
    let third = machine.admit(retry: failure, now: Self.start).refusal
    let budget = try #require(third)
    #expect(budget.message.contains("'retry budget'"))
    #expect(machine.stats.retriesRefusedByBudget == 1)
    #expect(machine.stats.attemptsInFlight == 1)
    #expect(machine.stats.retriesTotal == 1)
  }

  @Test("Shutdown drains every endpoint, wakes waiters, and fails new picks")
  func shutdown() throws {
    var machine = Self.machine()
    Self.apply(Self.endpoints("a", "b"), to: &machine)
    guard case .wait(let id) = Self.pick(&machine) else {
      Issue.record("expected to wait for probes")
      return
    }
    _ = machine.enqueue("rpc", id: id)
    let effects = machine.shutDown()
    #expect(effects.resume == ["rpc"])
    #expect(effects.fire.count == 2)
    #expect(machine.stats.draining)
    guard case .fail(let error) = Self.pick(&machine) else {
      Issue.record("expected a failure")
      return
    }
    #expect(error.message.contains("shut down"))
    let late = machine.prepare(Self.endpoints("c"))
    #expect(late == nil)
  }

  @Test("Observers fire once their predicate holds, from the effects, not inside the machine")
  func observers() throws {
    var machine = Self.machine()
    let signal = MeshSignal()
    let stored = machine.observe({ $0.pickable == 2 }, signal: signal)
    #expect(stored)
    Self.apply(Self.endpoints("a", "b"), to: &machine)
    let effects = Self.connectAll(&machine)
    #expect(effects.fire.contains { $0 === signal })
    let holds = !machine.observe({ $0.pickable == 2 }, signal: MeshSignal())
    #expect(holds)
  }
}
