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
import GRPCInProcessTransport
import MeshCore
import MeshDiscovery
import MeshProto
import MeshTestKit
import MeshTransport
import Testing

/// Subchannels to a fleet's endpoints whose streams open only when `gate` fires, as a slow
/// HTTP/2 stream does; like HTTP/2, a failed request ends the response.
struct GatedSubchannelFactory: MeshSubchannelFactory {
  let base: MeshInProcessSubchannelFactory
  let gated: String
  let opening: MeshSignal
  let gate: MeshSignal

  var requestFailureEndsResponse: Bool { true }

  func makeSubchannel(for endpoint: MeshEndpoint) throws -> GatedSubchannel {
    GatedSubchannel(
      base: try self.base.makeSubchannel(for: endpoint),
      opening: endpoint.id == self.gated ? self.opening : nil,
      gate: endpoint.id == self.gated ? self.gate : nil
    )
  }
}

/// A test's subchannel over an in-process one: connecting and shutting down are the base's; only
/// its streams differ.
protocol InProcessSubchannelWrapper: ClientTransport where Bytes == MeshInProcessSubchannel.Bytes {
  var base: MeshInProcessSubchannel { get }
}

extension InProcessSubchannelWrapper {
  var retryThrottle: RetryThrottle? { nil }
  func connect() async throws { try await self.base.connect() }
  func beginGracefulShutdown() { self.base.beginGracefulShutdown() }
  func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? { nil }
}

struct GatedSubchannel: InProcessSubchannelWrapper {
  typealias Bytes = MeshInProcessSubchannel.Bytes

  let base: MeshInProcessSubchannel
  let opening: MeshSignal?
  let gate: MeshSignal?

  func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    // Health watches (connectivity) open at once; the RPC under test waits for the gate.
    if descriptor.method == "Check", let gate = self.gate {
      self.opening?.fire()
      await gate.wait()
    }
    return try await self.base.withStream(descriptor: descriptor, options: options, closure)
  }
}

@Suite("A per-try timeout while the stream opens", .timeLimit(.minutes(1)))
struct PerTryTimeoutRaceTests {
  @Test("A per-try timeout that passes while the stream is opening still abandons the attempt")
  func timeoutWhileOpening() async throws {
    let clock = MeshManualClock()
    try await withInProcessFleet(["a", "b"]) { fleet in
      // "a" never answers: only the per-try timeout can end an attempt there.
      fleet.faults(of: "a").set(.hang)
      let opening = MeshSignal()
      let gate = MeshSignal()
      let retry = MeshMethodPolicy(
        retry: MeshRetryPolicy(
          maxAttempts: 2,
          retryableStatusCodes: [.unavailable],
          perTryTimeout: .seconds(1),
          initialBackoff: .nanoseconds(1),
          maxBackoff: .nanoseconds(1)
        )
      )
      var configuration = MeshBalancingConfiguration.defaults
      configuration.policy = .pickFirst
      configuration.resilience = MeshResiliencePolicy(
        defaults: retry,
        retryBudget: nil,
        outlierDetection: nil
      )
      let transport = try MeshBalancingTransport(
        service: "greeter",
        discovery: MeshStaticDiscovery(["greeter": fleet.endpoints]),
        factory: GatedSubchannelFactory(
          base: fleet.factory,
          gated: "a",
          opening: opening,
          gate: gate
        ),
        configuration: configuration,
        clock: clock
      )
      try await withGRPCClient(transport: transport) { client in
        let health = Grpc_Health_V1_Health.Client(wrapping: client)
        await transport.waitForPickableEndpoints(2)
        async let checked = health.check(.init())
        // The first attempt is opening its stream to "a" when its per-try timeout passes.
        await opening.wait()
        await clock.waitForSleeper(dueBy: clock.now.advanced(by: .seconds(1)))
        clock.advance(by: .seconds(1))
        await transport.waitForStats { $0.perTryAbandonments == 1 }
        gate.fire()
        // The retry's jittered backoff is 0 or 1 ns: move the clock past it if it sleeps.
        let backoffDue = clock.now.advanced(by: .nanoseconds(1))
        await withTaskGroup(of: Void.self) { group in
          group.addTask {
            await clock.waitForSleeper(dueBy: backoffDue)
            if !Task.isCancelled { clock.advance(by: .nanoseconds(1)) }
          }
          await fleet.faults(of: "b").waitForCalls(1)
          group.cancelAll()
        }
        // The call succeeds on "b"; "a" never got the request.
        let status = try await checked.status
        #expect(status == .serving)
        #expect(fleet.faults(of: "b").calls == 1)
        #expect(fleet.faults(of: "a").calls == 0)
        #expect(transport.stats.retriesTotal == 1)
        #expect(transport.stats.perTryTimeouts == 1)
      }
    }
  }
}
