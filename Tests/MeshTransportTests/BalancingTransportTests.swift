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
import GRPCNIOTransportHTTP2Posix
import InteropSupport
import MeshClient
import MeshDiscovery
import MeshHealth
import MeshProto
import MeshTestKit
import MeshTransport
import SwiftProtobuf
import Synchronization
import Testing

/// A line from `Tests/Interop/tls_peer.py`.
struct PeerReply: Decodable {
  var op: String
  var port: Int?
}

/// `count` plaintext loopback servers, each counting its RPCs.
struct LoopbackFleet {
  /// The servers' transport.
  var transport: TestTransport = .nio
  var endpoints: [MeshEndpoint] = []
  var counters: [RPCCounter] = []
  var healths: [MeshHealthService] = []
  var faults: [MeshFaultInjector] = []
  var stops: [@Sendable () -> Void] = []

  /// Starts one more server in `group`.
  mutating func add(
    in group: inout ThrowingTaskGroup<Void, any Error>,
    zone: String? = nil,
    weight: Int = 1
  ) async throws {
    let counter = RPCCounter()
    let fault = MeshFaultInjector()
    let health = MeshHealthService()
    let (port, stop) = try await self.transport.startServer(
      services: [health],
      interceptors: [counter, fault],
      in: &group
    )
    self.endpoints.append(
      MeshEndpoint(
        id: "instance-\(self.endpoints.count)",
        host: "127.0.0.1",
        port: port,
        weights: .init(passing: weight, warning: weight),
        zone: zone
      )
    )
    self.counters.append(counter)
    self.healths.append(health)
    self.faults.append(fault)
    self.stops.append(stop)
  }

  func stop() {
    for stop in self.stops { stop() }
  }
}

/// Runs `body` with a health client whose RPCs the balancing transport spreads.
func withBalancedClient(
  discovery: any MeshDiscovery,
  policy: MeshBalancingPolicy,
  healthChecking: MeshBalancingConfiguration.HealthChecking? = nil,
  resilience: MeshResiliencePolicy = MeshResiliencePolicy(),
  waitForPickable: Int? = nil,
  defaultTimeout: Duration? = nil,
  on subchannels: TestTransport = .nio,
  _ body: (
    Grpc_Health_V1_Health.Client<MeshClientBalancingTransport>,
    MeshClientBalancingTransport
  ) async throws -> Void
) async throws {
  let transport = try MeshBalancingTransport(
    service: "greeter",
    discovery: discovery,
    factory: subchannels.plaintextFactory,
    configuration: .testing(
      policy: policy,
      defaultTimeout: defaultTimeout,
      healthChecking: healthChecking,
      resilience: resilience
    )
  )
  try await withGRPCClient(transport: transport) { client in
    if let count = waitForPickable {
      await transport.waitForPickableEndpoints(count)
    }
    try await body(Grpc_Health_V1_Health.Client(wrapping: client), transport)
  }
}

@Suite("Balancing transport over loopback servers", .timeLimit(.minutes(2)))
struct BalancingTransportTests {
  @Test(
    "Round robin spreads RPCs exactly evenly over three servers",
    arguments: TestTransport.matrix
  )
  func roundRobin(kind: TestTransport) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var fleet = LoopbackFleet(transport: kind)
      for _ in 0..<3 { try await fleet.add(in: &group) }
      let discovery = MeshStaticDiscovery(["greeter": fleet.endpoints])
      var stats: MeshTransportStats?
      try await withBalancedClient(
        discovery: discovery,
        policy: .roundRobin,
        waitForPickable: 3,
        on: kind
      ) {
        health,
        transport in
        for _ in 0..<300 {
          _ = try await health.check(.init())
        }
        stats = transport.stats
      }
      let served = fleet.counters.map(\.value)
      let retries = try #require(stats).retriesTotal
      if retries == 0 {
        #expect(served == [100, 100, 100], "\(String(describing: stats))")
      } else {
        // A sanitizer's slowness can fail an attempt the server has served (a timer starved past
        // a deadline): its retry goes to the next server, so each count may be off by the retries.
        #expect(
          served.allSatisfy { abs($0 - 100) <= retries },
          "\(served) \(String(describing: stats))"
        )
      }
      fleet.stop()
      try await group.waitForAll()
    }
  }

  @Test("Weighted and least-request policies over real servers", arguments: TestTransport.matrix)
  func weightedAndLeastRequest(kind: TestTransport) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var fleet = LoopbackFleet(transport: kind)
      try await fleet.add(in: &group, weight: 6)
      try await fleet.add(in: &group, weight: 2)
      try await fleet.add(in: &group, weight: 2)
      let discovery = MeshStaticDiscovery(["greeter": fleet.endpoints])
      try await withBalancedClient(
        discovery: discovery,
        policy: .weighted,
        waitForPickable: 3,
        on: kind
      ) {
        health,
        _ in
        for _ in 0..<1000 { _ = try await health.check(.init()) }
      }
      let weighted = fleet.counters.map(\.value)
      #expect((500...700).contains(weighted[0]), "\(weighted)")
      #expect((120...280).contains(weighted[1]) && (120...280).contains(weighted[2]), "\(weighted)")

      try await withBalancedClient(
        discovery: discovery,
        policy: .leastRequest,
        waitForPickable: 3,
        on: kind
      ) { health, _ in
        for _ in 0..<900 { _ = try await health.check(.init()) }
      }
      let leastRequest = zip(fleet.counters.map(\.value), weighted).map { $0 - $1 }
      #expect(leastRequest.allSatisfy { (200...400).contains($0) }, "\(leastRequest)")
      fleet.stop()
      try await group.waitForAll()
    }
  }

  @Test(
    "Endpoint churn under load: added, removed, replaced; no RPC fails",
    arguments: TestTransport.matrix
  )
  func churnUnderLoad(kind: TestTransport) async throws {
    try await withThrowingTaskGroup(of: Void.self) { servers in
      var fleet = LoopbackFleet(transport: kind)
      for _ in 0..<4 { try await fleet.add(in: &servers) }
      let discovery = MeshStaticDiscovery(["greeter": Array(fleet.endpoints[0..<2])])
      let failures = Counter()
      let completed = Counter()
      let stop = Counter()
      let (milestones, milestone) = AsyncStream.makeStream(of: Int.self)
      let counters = fleet.counters

      try await withBalancedClient(
        discovery: discovery,
        policy: .leastRequest,
        waitForPickable: 2,
        on: kind
      ) {
        health,
        transport in
        try await withThrowingTaskGroup(of: Void.self) { workers in
          // Four callers run until the last step has been seen through, whatever the machine's
          // speed: each step waits for what it changed to show in the traffic, not for a count.
          for _ in 0..<4 {
            workers.addTask {
              while stop.value == 0 {
                do {
                  _ = try await health.check(.init())
                } catch {
                  failures.increment()
                }
                let done = completed.increment()
                if done % 25 == 0 { milestone.yield(done) }
              }
            }
          }
          enum Step { case warmUp, added, removed, replaced }
          var step = Step.warmUp
          var mark = 0
          var removedCount = 0
          var replacedCount = 0
          for await done in milestones {
            switch step {
            case .warmUp where done >= 100:
              // Two endpoints more: both take traffic once connected.
              discovery.update("greeter", endpoints: fleet.endpoints)
              step = .added
            case .added where counters[2].value > 0 && counters[3].value > 0:
              // The first one goes: it takes no new RPC.
              discovery.update("greeter", endpoints: Array(fleet.endpoints[1...]))
              await transport.waitForStats { $0.endpoints == 3 }
              removedCount = counters[0].value
              (step, mark) = (.removed, done)
            case .removed where done >= mark + 100:
              // At most the four RPCs in flight when it went reach it afterwards.
              #expect(counters[0].value <= removedCount + 4)
              // The second is replaced by the first again, which takes traffic again.
              discovery.update(
                "greeter",
                endpoints: [fleet.endpoints[0]] + Array(fleet.endpoints[2...])
              )
              await transport.waitForStats { $0.endpoints == 3 && $0.pickable == 3 }
              replacedCount = counters[1].value
              (step, mark) = (.replaced, done)
            case .replaced where done >= mark + 100 && counters[0].value > removedCount:
              #expect(counters[1].value <= replacedCount + 4)
              stop.increment()
            default:
              break
            }
            if stop.value > 0 { break }
          }
          milestone.finish()
          try await workers.waitForAll()
          #expect(removedCount > 0)
        }
      }
      #expect(failures.value == 0)
      #expect(completed.value >= 300)
      fleet.stop()
      try await servers.waitForAll()
    }
  }

  @Test(
    "A killed endpoint stops being picked; RPCs go on to the others without failing",
    arguments: TestTransport.matrix
  )
  func stoppedEndpointAvoided(kind: TestTransport) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var fleet = LoopbackFleet(transport: kind)
      for _ in 0..<2 { try await fleet.add(in: &group) }
      // The endpoint that dies is a real process (a grpcio server), killed with SIGKILL.
      let doomed = try PythonPeer<PeerReply>(
        script: "tls_peer.py",
        arguments: ["serve", "--plaintext"]
      )
      let port = try #require(try await doomed.next { $0.op == "listening" }.port)
      let endpoints = fleet.endpoints + [MeshEndpoint(id: "doomed", host: "127.0.0.1", port: port)]
      let discovery = MeshStaticDiscovery(["greeter": endpoints])

      try await withBalancedClient(
        discovery: discovery,
        policy: .roundRobin,
        waitForPickable: 3,
        on: kind
      ) {
        health,
        transport async throws in
        for _ in 0..<30 { _ = try await health.check(.init()) }
        #expect(fleet.counters.map(\.value) == [10, 10])

        _ = await doomed.kill()
        await transport.waitForPickableEndpoints(2)
        #expect(!transport.endpoints.contains { $0.id == "doomed" })
        for _ in 0..<60 { _ = try await health.check(.init()) }
        #expect(fleet.counters.map(\.value) == [40, 40])
      }
      fleet.stop()
      try await group.waitForAll()
    }
  }

  @Test(
    "Client-side health checking picks only SERVING endpoints (gRFC A17)",
    arguments: TestTransport.matrix
  )
  func clientSideHealthChecking(kind: TestTransport) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var fleet = LoopbackFleet(transport: kind)
      for _ in 0..<3 { try await fleet.add(in: &group) }
      let discovery = MeshStaticDiscovery(["greeter": fleet.endpoints])
      try await withBalancedClient(
        discovery: discovery,
        policy: .roundRobin,
        healthChecking: .init(serviceName: ""),
        waitForPickable: 3,
        on: kind
      ) { health, transport async throws in
        fleet.healths[1].setNotServing()
        await transport.waitForPickableEndpoints(2)
        for _ in 0..<20 { _ = try await health.check(.init()) }
        #expect(fleet.counters.map(\.value) == [10, 0, 10])

        fleet.healths[1].setServing()
        await transport.waitForPickableEndpoints(3)
        for _ in 0..<30 { _ = try await health.check(.init()) }
        #expect(fleet.counters[1].value == 10)
      }
      fleet.stop()
      try await group.waitForAll()
    }
  }

  @Test(
    "A full connection opens another to the same endpoint instead of queueing",
    arguments: TestTransport.matrix
  )
  func connectionPool(kind: TestTransport) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      let health = MeshHealthService()
      let (port, stopServer) = try await kind.startServer(
        services: [health],
        maxConcurrentStreams: 1,  // one stream per connection
        in: &group
      )

      let transport = try MeshBalancingTransport(
        service: "greeter",
        discovery: MeshStaticDiscovery([
          "greeter": [MeshEndpoint(id: "only", host: "127.0.0.1", port: port)]
        ]),
        factory: kind.plaintextFactory,
        configuration: .testing(maxStreamsPerConnection: 1)
      )
      try await withGRPCClient(transport: transport) { client in
        await transport.waitForPickableEndpoints(1)
        let healthClient = Grpc_Health_V1_Health.Client(wrapping: client)
        // The first connection carries the balancer's health Watch; each of three long-lived
        // RPCs needs a connection of its own, or it would wait behind the others forever.
        let (opened, open) = AsyncStream.makeStream(of: Void.self)
        await withThrowingTaskGroup(of: Void.self) { watches in
          for _ in 0..<3 {
            watches.addTask {
              try await healthClient.watch(.with { $0.service = "" }) { response in
                var messages = response.messages.makeAsyncIterator()
                _ = try await messages.next()
                open.yield()
                while try await messages.next() != nil {}
              }
            }
          }
          var count = 0
          for await _ in opened {
            count += 1
            if count == 3 { break }
          }
          #expect(transport.connectionCount(forEndpoint: "only") == 4)
          watches.cancelAll()
          while let _ = try? await watches.next() {}
        }
        // Finished streams free their connections: short RPCs reuse the pool.
        for _ in 0..<5 { _ = try await healthClient.check(.init()) }
        #expect(transport.connectionCount(forEndpoint: "only") == 4)
      }
      stopServer()
      try await group.waitForAll()
    }
  }

  @Test("No endpoints: RPCs fail fast with UNAVAILABLE naming the service")
  func noEndpoints() async throws {
    let discovery = MeshStaticDiscovery(["greeter": []])
    try await withBalancedClient(discovery: discovery, policy: .roundRobin) { health, _ in
      let error = await #expect(throws: RPCError.self) { _ = try await health.check(.init()) }
      #expect(error?.code == .unavailable)
      #expect(error?.message.contains("greeter") == true)
    }
  }
}
