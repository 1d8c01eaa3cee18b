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
import MeshProto
import MeshTestKit
import MeshTransport
import MetricsTestKit
import Testing

/// The balancing transport over in-process endpoints on a manual clock: deadlines, hedging
/// delays, per-try timeouts, backoff and ejection times pass only when the test moves the clock.
/// No socket is opened and nothing sleeps.
@Suite("Balancing transport on a manual clock", .timeLimit(.minutes(1)))
struct ManualClockTransportTests {
  typealias Transport = MeshBalancingTransport<MeshInProcessSubchannelFactory, MeshManualClock>

  /// The outcome of a Check: nil for SERVING, else the RPC's error.
  static func check(
    _ health: Grpc_Health_V1_Health.Client<Transport>,
    options: CallOptions = .defaults
  ) async -> RPCError? {
    do {
      _ = try await health.check(.init(), options: options)
      return nil
    } catch let error as RPCError {
      return error
    } catch {
      return RPCError(code: .unknown, message: "\(error)")
    }
  }

  @Test("An RPC waiting for an endpoint ends exactly at its deadline, on the transport's clock")
  func deadlineOnTheClock() async throws {
    let clock = MeshManualClock()
    try await withInProcessFleet(["a"]) { fleet in
      try await withInProcessTransport(
        to: fleet,
        discovery: MeshScriptedDiscovery(),
        clock: clock,
        configuration: .testing(policy: .roundRobin, defaultTimeout: .seconds(10))
      ) { health, transport in
        async let outcome = Self.check(health, options: .waiting(nil))
        await transport.waitForStats { $0.pending == 1 }
        // The timer runner sleeps until the deadline; a second short of it, the RPC still waits.
        await clock.waitForSleeper(dueBy: clock.now.advanced(by: .seconds(10)))
        clock.advance(by: .seconds(9))
        #expect(transport.stats.pending == 1)
        clock.advance(by: .seconds(1))
        let error = await outcome
        #expect(error?.code == .deadlineExceeded)
        #expect(error?.message.contains("The RPC's deadline (10s) passed") == true)
        await transport.waitForStats { $0.pending == 0 }
      }
    }
  }

  @Test("A hedge is sent when the clock reaches the hedging delay, and it wins")
  func hedgingDelayOnTheClock() async throws {
    let clock = MeshManualClock()
    try await withInProcessFleet(["a", "b"]) { fleet in
      fleet.faults(of: "a").set(.hang)
      let hedging = MeshMethodPolicy(
        hedging: MeshHedgingPolicy(maxAttempts: 2, hedgingDelay: .seconds(1))
      )
      try await withInProcessTransport(
        to: fleet,
        clock: clock,
        configuration: .testing(policy: .pickFirst, resilience: .testing(hedging))
      ) { health, transport in
        await transport.waitForPickableEndpoints(2)
        async let outcome = Self.check(health)
        await fleet.faults(of: "a").waitForCalls(1)
        await clock.waitForSleeper(dueBy: clock.now.advanced(by: .seconds(1)))
        #expect(fleet.faults(of: "b").calls == 0)
        clock.advance(by: .seconds(1))
        #expect(await outcome == nil)
        #expect(fleet.faults(of: "b").calls == 1)
      }
    }
  }

  @Test("An attempt past its per-try timeout (on the clock) is abandoned and retried elsewhere")
  func perTryTimeoutOnTheClock() async throws {
    let clock = MeshManualClock()
    try await withInProcessFleet(["a", "b"]) { fleet in
      fleet.faults(of: "a").set(.hang)
      let retry = MeshMethodPolicy(
        retry: MeshRetryPolicy(
          maxAttempts: 2,
          retryableStatusCodes: [.unavailable],
          perTryTimeout: .seconds(1),
          initialBackoff: .nanoseconds(1),
          maxBackoff: .nanoseconds(1)
        )
      )
      try await withInProcessTransport(
        to: fleet,
        clock: clock,
        configuration: .testing(policy: .pickFirst, resilience: .testing(retry))
      ) { health, transport in
        await transport.waitForPickableEndpoints(2)
        async let outcome = Self.check(health)
        await fleet.faults(of: "a").waitForCalls(1)
        await clock.waitForSleeper(dueBy: clock.now.advanced(by: .seconds(1)))
        clock.advance(by: .seconds(1))
        // The retry waits a jittered backoff of 0 or 1 ns: move the clock past it if it sleeps.
        let backoffDue = clock.now.advanced(by: .nanoseconds(1))
        await withTaskGroup(of: Void.self) { group in
          group.addTask {
            await clock.waitForSleeper(dueBy: backoffDue)
            if !Task.isCancelled { clock.advance(by: .nanoseconds(1)) }
          }
          await fleet.faults(of: "b").waitForCalls(1)
          group.cancelAll()
        }
        #expect(await outcome == nil)
        #expect(transport.stats.perTryTimeouts == 1)
        #expect(transport.stats.retriesTotal == 1)
      }
    }
  }

  @Test("An ejected endpoint comes back half-open when the clock passes its ejection time")
  func ejectionTimeOnTheClock() async throws {
    let clock = MeshManualClock()
    let metrics = TestMetrics()
    try await withInProcessFleet(["a", "b"]) { fleet in
      fleet.faults(of: "a").set(.fail(.unavailable, times: 1))
      let resilience = MeshResiliencePolicy.testing(
        MeshMethodPolicy(),
        outlierDetection: MeshOutlierDetectionPolicy(
          consecutiveFailures: 1,
          baseEjectionTime: .seconds(30),
          successRateStdevFactor: nil
        )
      )
      try await withInProcessTransport(
        to: fleet,
        clock: clock,
        configuration: .testing(policy: .pickFirst, resilience: resilience),
        metrics: metrics
      ) { health, transport in
        await transport.waitForPickableEndpoints(2)
        #expect(await Self.check(health)?.code == .unavailable)
        #expect(transport.stats.ejectedEndpoints == ["a"])
        #expect(await Self.check(health) == nil)
        #expect(fleet.faults(of: "b").calls == 1)
        // 29 s later a is still ejected; at 30 s the next RPC's admission ends the ejection.
        clock.advance(by: .seconds(29))
        #expect(await Self.check(health) == nil)
        #expect(fleet.faults(of: "b").calls == 2)
        clock.advance(by: .seconds(1))
        #expect(await Self.check(health) == nil)
        #expect(fleet.faults(of: "a").calls == 2)
        #expect(transport.stats.readmissionsTotal == 1)
        #expect(transport.stats.ejectedEndpoints.isEmpty)
      }
    }
    // gRFC A91's counter, by detection method.
    let ejections = try metrics.expectCounter(
      "grpc.lb.outlier_detection.ejections_enforced",
      [
        ("grpc.target", "mesh:///greeter"),
        ("grpc.lb.outlier_detection.detection_method", "consecutive_failures"),
      ]
    )
    #expect(ejections.totalValue == 1)
  }
}
