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
import InteropSupport
import MeshClient
import MeshCore
import MeshDiscovery
import MeshProto
import MeshTransport
import Testing

/// A line from `Tests/Interop/fault_peer.py`.
struct FaultPeerReply: Decodable {
  var op: String
  var port: Int?
}

/// Starts a `fault_peer.py` grpcio server; returns it and its endpoint.
func startFaultPeer(
  _ id: String,
  _ arguments: [String] = []
) async throws -> (PythonPeer<FaultPeerReply>, MeshEndpoint) {
  let peer = try PythonPeer<FaultPeerReply>(script: "fault_peer.py", arguments: arguments)
  let port = try #require(try await peer.next { $0.op == "listening" }.port)
  return (peer, MeshEndpoint(id: id, host: "127.0.0.1", port: port))
}

/// Workers calling Check in a loop until stopped, counting failures.
final class SteadyLoad: Sendable {
  private let state = MeshMutex((stopped: false, completed: 0, failures: [String]()))

  var failures: [String] { self.state.withLock { $0.failures } }
  var completed: Int { self.state.withLock { $0.completed } }

  func stop() {
    self.state.withLock { $0.stopped = true }
  }

  func run(
    _ health: Grpc_Health_V1_Health.Client<MeshClientBalancingTransport>
  ) async {
    while !self.state.withLock({ $0.stopped }) {
      do {
        _ = try await health.check(.init())
        self.state.withLock { $0.completed += 1 }
      } catch {
        self.state.withLock { $0.failures.append("\(error)") }
      }
    }
  }
}

@Suite("Chaos over real loopback servers", .timeLimit(.minutes(2)))
struct ChaosTests {
  @Test(
    "One killed, one slow, one failing half its calls: no idempotent RPC fails",
    arguments: TestTransport.matrix
  )
  func killedSlowAndFlaky(kind: TestTransport) async throws {
    let (doomed, doomedEndpoint) = try await startFaultPeer("doomed")
    let (slow, slowEndpoint) = try await startFaultPeer("slow", ["--delay-ms", "50"])
    let (flaky, flakyEndpoint) = try await startFaultPeer("flaky", ["--fail-every", "2"])
    let discovery = MeshStaticDiscovery(["greeter": [doomedEndpoint, slowEndpoint, flakyEndpoint]])
    let workerCount = 8
    let resilience = MeshResiliencePolicy(
      defaults: MeshMethodPolicy(
        timeout: .seconds(10),
        retry: MeshRetryPolicy(
          maxAttempts: 4,
          perTryTimeout: .seconds(1),
          initialBackoff: .milliseconds(5),
          maxBackoff: .milliseconds(50)
        )
      ),
      retryBudget: MeshRetryBudgetPolicy(ratio: 0.2, minRetriesPerSecond: 10),
      // Eight workers have at most eight retries in flight: with the default threshold (5) the
      // breaker may open when the killed endpoint fails several calls at once on a slow machine,
      // and this test is about retries routing around faults, not about the breaker.
      circuitBreakers: MeshCircuitBreakerThresholds(maxRetries: workerCount),
      outlierDetection: MeshOutlierDetectionPolicy(
        interval: .milliseconds(500),
        baseEjectionTime: .milliseconds(500),
        maxEjectionTime: .seconds(2),
        successRateStdevFactor: nil,
        minimumRequests: 10,
        failurePercentageThreshold: 0.3
      )
    )
    try await withBalancedClient(
      discovery: discovery,
      policy: .roundRobin,
      resilience: resilience,
      waitForPickable: 3,
      on: kind
    ) { health, transport in
      let load = SteadyLoad()
      await withTaskGroup(of: Void.self) { workers in
        for _ in 0..<workerCount {
          workers.addTask { await load.run(health) }
        }
        await transport.waitForStats { $0.attemptsTotal >= 150 }
        _ = await doomed.kill()
        let killedAt = transport.stats.attemptsTotal
        // The flaky endpoint is ejected, probed and readmitted while the load goes on.
        await transport.waitForStats {
          $0.readmissionsTotal >= 1 && $0.attemptsTotal >= killedAt + 300
        }
        load.stop()
      }
      let stats = transport.stats
      #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
      #expect(load.completed > 0)
      #expect(stats.ejectionsTotal >= 1)
      #expect(stats.readmissionsTotal >= 1)
      #expect(stats.retriesTotal > 0)
      // Retries stayed under the budget's cap: 20 % of requests plus 10/s over its 10 s window.
      let requests = stats.attemptsTotal - stats.retriesTotal
      #expect(Double(stats.retriesTotal) <= 0.2 * Double(requests) + 100)
      #expect(stats.retriesRefusedByBudget == 0)
    }
    _ = await slow.kill()
    _ = await flaky.kill()
  }

  @Test(
    "A server that goes away (GOAWAY) under load: its RPCs finish or move, none fails",
    arguments: TestTransport.matrix
  )
  func goaway(kind: TestTransport) async throws {
    let (leaving, leavingEndpoint) = try await startFaultPeer("leaving")
    let (staying, stayingEndpoint) = try await startFaultPeer("staying")
    let discovery = MeshStaticDiscovery(["greeter": [leavingEndpoint, stayingEndpoint]])
    let resilience = MeshResiliencePolicy(
      defaults: MeshMethodPolicy(
        retry: MeshRetryPolicy(initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(50))
      )
    )
    try await withBalancedClient(
      discovery: discovery,
      policy: .roundRobin,
      resilience: resilience,
      waitForPickable: 2,
      on: kind
    ) { health, transport in
      let load = SteadyLoad()
      try await withThrowingTaskGroup(of: Void.self) { workers in
        for _ in 0..<4 {
          workers.addTask { await load.run(health) }
        }
        await transport.waitForStats { $0.attemptsTotal >= 100 }
        try leaving.send(["op": "goaway"])
        _ = try await leaving.next { $0.op == "stopped" }
        let stoppedAt = transport.stats.attemptsTotal
        await transport.waitForStats { $0.attemptsTotal >= stoppedAt + 100 }
        load.stop()
      }
      #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
    }
    _ = await leaving.kill()
    _ = await staying.kill()
  }
}
