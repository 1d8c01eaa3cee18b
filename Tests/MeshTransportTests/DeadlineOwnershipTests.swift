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

import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import InteropSupport
import MeshDiscovery
import MeshProto
import MeshTransport
import Synchronization
import Testing

/// A discovery whose every watch throws `error` at once, counting the watches.
final class FailingDiscovery: MeshDiscovery {
  let error: any Error & Sendable
  private let count = Mutex(0)
  /// Fires at the second watch: the consumer subscribed again.
  let watchedAgain = MeshSignal()

  init(_ error: any Error & Sendable) {
    self.error = error
  }

  var watches: Int { self.count.withLock { $0 } }

  func watch(_ service: String) -> MeshEndpointUpdates {
    let count = self.count.withLock {
      $0 += 1
      return $0
    }
    if count >= 2 { self.watchedAgain.fire() }
    let error = self.error
    return MeshEndpointUpdates(
      AsyncThrowingStream<MeshEndpointSet, any Error> { $0.finish(throwing: error) }
    )
  }
}

struct DiscoveryRefused: Error, CustomStringConvertible {
  var description: String { "Unexpected response code: 403 (ACL not found)" }
}

/// Runs `body` with a balancing transport to the endpoints of `discovery` over mTLS, expecting
/// servers to be `greeter`.
func withMTLSBalancedClient(
  _ pki: TestPKI,
  discovery: any MeshDiscovery,
  resilience: MeshResiliencePolicy = MeshResiliencePolicy(),
  _ body: (
    Grpc_Health_V1_Health.Client<MeshBalancingTransport<MeshHTTP2SubchannelFactory>>,
    MeshBalancingTransport<MeshHTTP2SubchannelFactory>
  ) async throws -> Void
) async throws {
  let credentials = try await pki.credentials(for: "frontend")
  let factory = try MeshHTTP2SubchannelFactory.mTLS(
    credentials,
    server: .exactly(try pki.identity(of: "greeter"))
  )
  let transport = try MeshBalancingTransport(
    service: "greeter",
    discovery: discovery,
    factory: factory,
    policy: .roundRobin,
    resilience: resilience
  )
  try await withGRPCClient(transport: transport) { client in
    try await body(Grpc_Health_V1_Health.Client(wrapping: client), transport)
  }
}

extension CallOptions {
  static func waiting(_ timeout: Duration, waitForReady: Bool = true) -> Self {
    var options = CallOptions.defaults
    options.timeout = timeout
    options.waitForReady = waitForReady
    return options
  }
}

/// The time `body` took.
func timed(_ body: () async throws -> Void) async rethrows -> Duration {
  let start = ContinuousClock.now
  try await body()
  return start.duration(to: .now)
}

@Suite("The mesh owns every RPC's deadline", .timeLimit(.minutes(2)))
struct DeadlineOwnershipTests {
  @Test("A call whose only endpoint never connects ends at its deadline, saying why")
  func neverConnects() async throws {
    // Nothing listens on port 1: every connection is refused. Retries are on (the default
    // policy) and the caller waits for readiness: grpc-swift's retry executor waited forever.
    let discovery = MeshStaticDiscovery([
      "greeter": [MeshEndpoint(id: "closed", host: "127.0.0.1", port: 1)]
    ])
    try await withBalancedClient(discovery: discovery, policy: .roundRobin) { health, transport in
      var error: RPCError?
      let elapsed = await timed {
        error = await #expect(throws: RPCError.self) {
          try await health.check(.init(), options: .waiting(.seconds(1)))
        }
      }
      #expect(error?.code == .deadlineExceeded)
      #expect(error?.message.contains("closed@127.0.0.1:1") == true, "\(String(describing: error))")
      #expect(elapsed >= .milliseconds(990))
      #expect(elapsed < .milliseconds(1_300), "ended \(elapsed) after a 1 s deadline")
      #expect(transport.stats.connectionErrors["closed"] != nil)
      #expect(transport.stats.pending == 0)
    }
  }

  @Test("Without waitForReady, an endpoint that cannot be connected to fails the call at once")
  func failsFastWithoutWaitForReady() async throws {
    let discovery = MeshStaticDiscovery([
      "greeter": [MeshEndpoint(id: "closed", host: "127.0.0.1", port: 1)]
    ])
    try await withBalancedClient(discovery: discovery, policy: .roundRobin) { health, transport in
      await transport.waitForStats { $0.connectionErrors["closed"] != nil }
      let error = await #expect(throws: RPCError.self) {
        try await health.check(.init(), options: .waiting(.seconds(30), waitForReady: false))
      }
      #expect(error?.code == .unavailable)
      #expect(error?.message.contains("is ready: closed@127.0.0.1:1") == true)
    }
  }

  @Test("A server with the wrong identity: the caller reads both identities, at the deadline")
  func identityMismatch() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("frontend")
    try pki.issue("billing")
    let billing = try await pki.credentials(for: "billing")
    try await withMTLSServer(billing) { port in
      let discovery = MeshStaticDiscovery([
        "greeter": [MeshEndpoint(id: "impostor", host: "127.0.0.1", port: port)]
      ])
      try await withMTLSBalancedClient(pki, discovery: discovery) { health, transport in
        let presented = try pki.identity(of: "billing").description
        let expected = try pki.identity(of: "greeter").description
        var error: RPCError?
        let elapsed = await timed {
          error = await #expect(throws: RPCError.self) {
            try await health.check(.init(), options: .waiting(.milliseconds(800)))
          }
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(error?.message.contains(presented) == true, "\(String(describing: error))")
        #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
        #expect(elapsed < .milliseconds(1_100))
        #expect(transport.stats.connectionErrors["impostor"]?.contains(presented) == true)

        // Failing fast, the same words come as UNAVAILABLE.
        let fast = await #expect(throws: RPCError.self) {
          try await health.check(.init(), options: .waiting(.seconds(30), waitForReady: false))
        }
        #expect(fast?.code == .unavailable)
        #expect(fast?.message.contains(presented) == true, "\(String(describing: fast))")
      }
    }
  }

  @Test("A server whose certificate comes from another CA is named as such")
  func untrustedServer() async throws {
    let pki = try TestPKI()
    let other = try TestPKI()
    defer {
      pki.remove()
      other.remove()
    }
    try pki.issue("frontend")
    try other.issue("greeter")
    let stranger = try await other.credentials(for: "greeter")
    try await withMTLSServer(stranger) { port in
      let discovery = MeshStaticDiscovery([
        "greeter": [MeshEndpoint(id: "stranger", host: "127.0.0.1", port: port)]
      ])
      try await withMTLSBalancedClient(pki, discovery: discovery) { health, _ in
        let error = await #expect(throws: RPCError.self) {
          try await health.check(.init(), options: .waiting(.milliseconds(500)))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(
          error?.message.contains("does not chain to the mesh CA") == true,
          "\(String(describing: error))"
        )
      }
    }
  }

  @Test("A retry refused by the budget or the max-retries breaker fails at once")
  func refusedRetriesFailAtOnce() async throws {
    let budget = MeshRetryBudgetPolicy(ratio: 0, minRetriesPerSecond: 0)
    try await withFleet(2, resilience: .testing(budget: budget)) { fleet, health, transport in
      fleet.faults[0].set(.fail(.unavailable))
      fleet.faults[1].set(.fail(.unavailable))
      // The budget allows no retry: each RPC's first retry is refused, and the RPC must fail
      // long before its 30 s deadline, not at it.
      for _ in 0..<3 {
        let elapsed = await timed {
          let error = await #expect(throws: RPCError.self) {
            try await health.check(.init(), options: .waiting(.seconds(30)))
          }
          #expect(error?.code == .unavailable)
        }
        #expect(elapsed < .seconds(5), "a refused retry waited \(elapsed)")
      }
      #expect(transport.stats.breakerRejections[.retryBudget] == 3)
    }
    try await withFleet(2, resilience: .testing(breakers: .init(maxRetries: 0))) {
      fleet,
      health,
      _ in
      fleet.faults[0].set(.fail(.unavailable))
      fleet.faults[1].set(.fail(.unavailable))
      let elapsed = await timed {
        let error = await #expect(throws: RPCError.self) {
          try await health.check(.init(), options: .waiting(.seconds(30)))
        }
        #expect(error?.message.contains("circuit breaker 'max retries'") == true)
      }
      #expect(elapsed < .seconds(5))
    }
  }

  @Test("Retries belong to their RPC: nothing carries over to the next RPC of the same task")
  func retriesBelongToTheirRPC() async throws {
    var retry = MeshRetryPolicy.fast
    retry.maxAttempts = 2
    try await withFleet(2, resilience: .testing(MeshMethodPolicy(retry: retry))) {
      fleet,
      health,
      transport in
      fleet.faults[0].set(.fail(.unavailable))
      fleet.faults[1].set(.fail(.unavailable))
      await #expect(throws: RPCError.self) { try await health.check(.init()) }
      #expect(transport.stats.retriesTotal == 1)
      fleet.faults[0].set(.none)
      fleet.faults[1].set(.none)
      let before = fleet.faults.map(\.metadata.count)
      _ = try await health.check(.init())
      let after = zip(fleet.faults, before).flatMap { fault, count in
        fault.metadata.dropFirst(count)
      }
      #expect(after.count == 1)
      #expect(after.allSatisfy { $0.first("grpc-previous-rpc-attempts") == nil })
      #expect(transport.stats.retriesTotal == 1)
    }
  }

  @Test("A waiter that is cancelled leaves the pending count, and the breaker with it")
  func cancelledWaitersLeaveTheQueue() async throws {
    try await withBalancedClient(
      discovery: SilentDiscovery(),
      policy: .roundRobin,
      resilience: .testing(breakers: .init(maxPendingRequests: 1))
    ) { health, transport in
      for _ in 0..<20 {
        await withThrowingTaskGroup(of: Void.self) { waiting in
          waiting.addTask { _ = try? await health.check(.init()) }
          await transport.waitForStats { $0.pending == 1 }
          waiting.cancelAll()
        }
        await transport.waitForStats { $0.pending == 0 }
      }
      #expect(transport.stats.breakerRejections[.maxPendingRequests] == nil)
    }
  }
}

@Suite("Discovery output is checked before NIO sees it", .timeLimit(.minutes(2)))
struct DiscoveryValidationTests {
  @Test("Invalid endpoints are skipped and counted; the rest of the set is used")
  func invalidEndpointsSkipped() async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var fleet = LoopbackFleet()
      for _ in 0..<2 { try await fleet.add(in: &group) }
      let bad = [
        MeshEndpoint(id: "huge-port", host: "127.0.0.1", port: 99_999_999),
        MeshEndpoint(id: "negative-port", host: "127.0.0.1", port: -1),
        MeshEndpoint(id: "zero-octet", host: "1.2.3.04", port: 8080),
        MeshEndpoint(id: "not-ipv6", host: "zz:zz:1", port: 8080),
        MeshEndpoint(id: "signed", host: "+127.0.0.1", port: 8080),
      ]
      let discovery = MeshStaticDiscovery(["greeter": bad + fleet.endpoints])
      try await withBalancedClient(discovery: discovery, policy: .roundRobin, waitForPickable: 2) {
        health,
        transport in
        for _ in 0..<10 {
          let status = try await health.check(.init()).status
          #expect(status == .serving)
        }
        #expect(transport.stats.invalidEndpoints == bad.count)
        #expect(transport.stats.endpoints == 2)
      }
      fleet.stop()
      try await group.waitForAll()
    }
  }

  @Test("Instances with the same service ID on two nodes are both used")
  func sameIDOnTwoNodes() async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var fleet = LoopbackFleet()
      for _ in 0..<2 { try await fleet.add(in: &group) }
      let endpoints = fleet.endpoints.enumerated().map { index, endpoint in
        var endpoint = endpoint
        endpoint.id = "web-1"
        endpoint.node = "node-\(index)"
        return endpoint
      }
      let discovery = MeshStaticDiscovery(["greeter": endpoints])
      try await withBalancedClient(discovery: discovery, policy: .roundRobin, waitForPickable: 2) {
        health,
        _ in
        for _ in 0..<10 { _ = try await health.check(.init()) }
      }
      #expect(fleet.counters.map(\.value) == [5, 5])
      fleet.stop()
      try await group.waitForAll()
    }
  }

  @Test("A discovery that throws is reported, kept out of the way, and watched again")
  func discoveryErrorsReported() async throws {
    let discovery = FailingDiscovery(DiscoveryRefused())
    try await withBalancedClient(discovery: discovery, policy: .roundRobin) { health, transport in
      await transport.waitForStats { $0.discoveryError != nil }
      #expect(transport.stats.discoveryError?.contains("403") == true)
      // With no endpoint ever known, RPCs wait; at their deadline they fail, saying why.
      let error = await #expect(throws: RPCError.self) {
        try await health.check(.init(), options: .waiting(.milliseconds(200)))
      }
      #expect(error?.code == .deadlineExceeded)
      #expect(error?.message.contains("403") == true, "\(String(describing: error))")
      await discovery.watchedAgain.wait()
      #expect(discovery.watches >= 2)
    }
  }
}

@Suite("Chaos: bad endpoints join a set under load", .timeLimit(.minutes(2)))
struct BadEndpointChaosTests {
  @Test("An invalid registration and an impostor join three servers under load: nothing fails")
  func badEndpointsJoinUnderLoad() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("frontend")
    try pki.issue("greeter")
    try pki.issue("billing")
    let greeter = try await pki.credentials(for: "greeter")
    let billing = try await pki.credentials(for: "billing")
    try await withMTLSServer(greeter) { first in
      try await withMTLSServer(greeter) { second in
        try await withMTLSServer(greeter) { third in
          try await withMTLSServer(billing) { impostor in
            let good = [first, second, third].enumerated().map { index, port in
              MeshEndpoint(id: "greeter-\(index)", host: "127.0.0.1", port: port, node: "n\(index)")
            }
            let discovery = MeshStaticDiscovery(["greeter": good])
            try await withMTLSBalancedClient(pki, discovery: discovery) { health, transport in
              await transport.waitForPickableEndpoints(3)
              let failures = Counter()
              let successes = Counter()
              let joined = MeshSignal()
              try await withThrowingTaskGroup(of: Void.self) { load in
                for _ in 0..<6 {
                  load.addTask {
                    var afterJoin = 0
                    while afterJoin < 40 {
                      do {
                        _ = try await health.check(.init(), options: .waiting(.seconds(10)))
                        successes.increment()
                      } catch {
                        failures.increment()
                      }
                      if joined.hasFired { afterJoin += 1 }
                    }
                  }
                }
                await transport.waitForStats { $0.attemptsTotal >= 60 }
                discovery.update(
                  "greeter",
                  endpoints: good + [
                    MeshEndpoint(id: "bad-port", host: "127.0.0.1", port: 99_999_999),
                    MeshEndpoint(id: "bad-address", host: "1.2.3.04", port: 8080),
                    MeshEndpoint(id: "impostor", host: "127.0.0.1", port: impostor),
                  ]
                )
                await transport.waitForStats {
                  $0.invalidEndpoints == 2 && $0.connectionErrors["impostor"] != nil
                }
                joined.fire()
                try await load.waitForAll()
              }
              #expect(failures.value == 0)
              #expect(successes.value >= 240)
              let stats = transport.stats
              #expect(stats.endpoints == 4)
              #expect(stats.pickable == 3)
              #expect(
                stats.connectionErrors["impostor"]?.contains(
                  try pki.identity(of: "billing").description
                )
                  == true
              )
            }
          }
        }
      }
    }
  }
}
