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

internal import Foundation
internal import Logging
internal import MeshConsul
internal import MeshCore

/// The agent without its sockets: the state behind a lock, blocking queries, TTL timers and the
/// gRPC check runner. ``ConsulAgentRouter`` answers requests with it; ``MeshConsulAgent`` serves
/// that router over HTTP.
final class ConsulAgentCore<Clock: _Concurrency.Clock>: Sendable where Clock.Duration == Duration {
  let configuration: MeshConsulAgentConfiguration
  let clock: Clock
  let logger: Logger
  let shutdown = MeshSignal()
  private let shared: MeshMutex<Shared>
  private let probesChanged: AsyncStream<Void>
  private let probesChangedTrigger: AsyncStream<Void>.Continuation

  private struct Shared {
    var state: ConsulAgentState<Clock.Instant>
    var waiters = ConsulAgentWaiters()
    /// Wakes the timer loop, when a change moved the next deadline earlier.
    var timerWake: MeshSignal?
    var scheduledDeadline: Clock.Instant?
    /// Running probe loops, each with the signal that makes it re-read its settings at once.
    var runningChecks: [ConsulAgentKey: MeshSignal] = [:]
    var pendingProbes: Set<ConsulAgentKey> = []
    var blockedQueryObservers: [(count: Int, signal: MeshSignal)] = []

    mutating func notifyBlockedQueryObservers() {
      let count = self.waiters.count
      self.blockedQueryObservers.removeAll { observer in
        guard observer.count == count else { return false }
        observer.signal.fire()
        return true
      }
    }

    func index(of key: ConsulAgentWatchKey) -> UInt64 {
      Self.index(of: key, in: self.state)
    }

    static func index(of key: ConsulAgentWatchKey, in state: ConsulAgentState<Clock.Instant>)
      -> UInt64
    {
      switch key {
      case .service(let name): return state.index(ofService: name)
      case .catalog: return state.indexOfCatalog
      case .any: return max(state.index, 1)
      case .intentions: return state.indexOfIntentions
      }
    }

    /// Wakes whoever the state's last change concerns: blocking queries, timers, probes.
    /// Returns whether probes were added or changed.
    mutating func afterChange() -> Bool {
      let change = self.state.takeChange()
      let state = self.state
      self.waiters.wake(after: change) { Self.index(of: $0, in: state) }
      self.notifyBlockedQueryObservers()
      if let next = self.state.nextDeadline,
        self.scheduledDeadline.map({ next < $0 }) ?? true
      {
        self.timerWake?.fire()
        self.timerWake = nil
      }
      guard !change.probes.isEmpty else { return false }
      for checkID in change.probes {
        if let restart = self.runningChecks[checkID] {
          restart.fire()
        } else {
          self.pendingProbes.insert(checkID)
        }
      }
      return !self.pendingProbes.isEmpty
    }
  }

  init(configuration: MeshConsulAgentConfiguration, clock: Clock, logger: Logger) {
    self.configuration = configuration
    self.clock = clock
    self.logger = logger
    let address =
      configuration.host == "0.0.0.0" || configuration.host == "::"
      ? "127.0.0.1" : configuration.host
    let node = ConsulNode(
      id: UUID().uuidString.lowercased(),
      node: configuration.nodeName,
      address: address,
      datacenter: configuration.datacenter,
      taggedAddresses: [
        "lan": address, "lan_ipv4": address, "wan": address, "wan_ipv4": address,
      ],
      meta: ["consul-network-segment": "", "consul-version": "1.17.0"],
      createIndex: 5,
      modifyIndex: 5
    )
    self.shared = MeshMutex(Shared(state: ConsulAgentState(node: node)))
    (self.probesChanged, self.probesChangedTrigger) = AsyncStream.makeStream(
      of: Void.self,
      bufferingPolicy: .bufferingNewest(1)
    )
  }

  /// Runs the timers and the gRPC checks until shutdown or cancellation.
  func run() async {
    await withDiscardingTaskGroup { group in
      group.addTask { await self.runTimers() }
      group.addTask { await self.runChecks() }
      await self.shutdown.wait()
      group.cancelAll()
    }
  }

  // MARK: - State

  /// Applies a change to the state, then wakes whoever it concerns.
  func mutate(
    _ change: (inout ConsulAgentState<Clock.Instant>, Clock.Instant) throws(ConsulAgentError) ->
      Void
  ) throws(ConsulAgentError) {
    let now = self.clock.now
    let probes = try self.shared.withLock { shared throws(ConsulAgentError) in
      try change(&shared.state, now)
      return shared.afterChange()
    }
    if probes { self.probesChangedTrigger.yield() }
  }

  /// Reads the state.
  func withState<T>(_ body: (ConsulAgentState<Clock.Instant>) -> T) -> T {
    self.shared.withLock { body($0.state) }
  }

  /// Reads the state and the index of `key` at once.
  func read<T>(_ key: ConsulAgentWatchKey, _ body: (ConsulAgentState<Clock.Instant>) -> T) -> (
    T, UInt64
  ) {
    self.shared.withLock { shared in (body(shared.state), shared.index(of: key)) }
  }

  // MARK: - Blocking queries

  /// Returns when the index of `key` passes `index`, after `timeout`, or on shutdown.
  func waitForChange(_ key: ConsulAgentWatchKey, after index: UInt64, timeout: Duration) async {
    let wake = MeshSignal()
    let id: UInt64? = self.shared.withLock { shared in
      guard shared.index(of: key) <= index else { return nil }  // already changed
      var followsCatalog = false
      if case .service(let name) = key { followsCatalog = !shared.state.hasOwnIndex(name) }
      let id = shared.waiters.park(key, after: index, followsCatalog: followsCatalog, wake: wake)
      shared.notifyBlockedQueryObservers()
      return id
    }
    guard let id else { return }
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await wake.wait() }
      group.addTask { try? await self.clock.sleep(for: timeout) }
      group.addTask { await self.shutdown.wait() }
      await group.next()
      group.cancelAll()
    }
    self.shared.withLock { shared in
      shared.waiters.remove(key, id: id)
      shared.notifyBlockedQueryObservers()
    }
  }

  /// Returns once exactly `count` blocking queries are parked, waiting for a change.
  func waitForBlockedQueries(_ count: Int) async {
    let signal = MeshSignal()
    self.shared.withLock { shared in
      shared.blockedQueryObservers.append((count, signal))
      shared.notifyBlockedQueryObservers()
    }
    await signal.wait()
  }

  // MARK: - Timers: TTL expiry and the critical-service reaper

  private func runTimers() async {
    while !Task.isCancelled && !self.shutdown.hasFired {
      let wake = MeshSignal()
      let (deadline, probes) = self.shared.withLock { shared in
        _ = shared.state.tick(now: self.clock.now)
        let probes = shared.afterChange()
        shared.timerWake = wake
        shared.scheduledDeadline = shared.state.nextDeadline
        return (shared.scheduledDeadline, probes)
      }
      if probes { self.probesChangedTrigger.yield() }
      // Sleep until the next deadline, or until a change moved it earlier.
      await withTaskGroup(of: Void.self) { group in
        if let deadline {
          group.addTask { await self.sleep(until: deadline) }
        }
        group.addTask { await wake.wait() }
        group.addTask { await self.shutdown.wait() }
        await group.next()
        group.cancelAll()
      }
    }
  }

  /// Sleeps until `deadline` (or cancellation), an hour at a time: a TTL or an interval may be
  /// as long as Go's largest duration, which no clock should be asked to sleep in one go.
  func sleep(until deadline: Clock.Instant) async {
    while !Task.isCancelled {
      let now = self.clock.now
      guard now < deadline else { return }
      let step = min(deadline, now.advanced(by: .seconds(3600)))
      guard (try? await self.clock.sleep(until: step, tolerance: nil)) != nil else { return }
    }
  }

  // MARK: - gRPC check bookkeeping (the probes are in ConsulAgentCheckRunner.swift)

  /// Takes the checks that need a probe loop, marking them running.
  func takePendingProbes() -> [(ConsulAgentKey, MeshSignal)] {
    self.shared.withLock { shared in
      let pending = shared.pendingProbes
      shared.pendingProbes = []
      return pending.compactMap { checkID in
        guard shared.runningChecks[checkID] == nil else { return nil }
        let restart = MeshSignal()
        shared.runningChecks[checkID] = restart
        return (checkID, restart)
      }
    }
  }

  var probeChanges: AsyncStream<Void> { self.probesChanged }

  /// The settings of a probe loop's next probe, and the signal that interrupts its wait; nil
  /// (and the loop is no longer running) once the check is gone.
  func nextProbe(_ checkID: ConsulAgentKey) -> (
    target: ConsulGRPCCheckTarget, interval: Duration, timeout: Duration, generation: UInt64,
    restart: MeshSignal
  )? {
    self.shared.withLock { shared in
      guard let check = shared.state.grpcCheck(checkID) else {
        shared.runningChecks[checkID] = nil
        return nil
      }
      var restart = shared.runningChecks[checkID] ?? MeshSignal()
      if restart.hasFired { restart = MeshSignal() }
      shared.runningChecks[checkID] = restart
      return (check.target, check.interval, check.timeout, check.generation, restart)
    }
  }

  /// Records a probe's result, unless the check changed since it started.
  func recordProbe(
    _ checkID: ConsulAgentKey,
    generation: UInt64,
    status: ConsulCheckStatus,
    output: String
  ) {
    let now = self.clock.now
    let probes = self.shared.withLock { shared in
      shared.state.recordProbe(
        checkID: checkID,
        generation: generation,
        status: status,
        output: output,
        now: now
      )
      return shared.afterChange()
    }
    if probes { self.probesChangedTrigger.yield() }
  }

  /// The probe loop of `checkID` stopped early (cancellation).
  func probeLoopEnded(_ checkID: ConsulAgentKey) {
    self.shared.withLock { _ = $0.runningChecks.removeValue(forKey: checkID) }
  }
}
