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
import Testing

/// Subchannels to a fleet's endpoints whose first `refusals` `Check` streams are refused
/// unprocessed, as a server's GOAWAY refuses the streams above its last stream ID; `connected`
/// opens streams in the caller's task (``MeshSubchannelFactory/withConnectedStream``), as the
/// native transport does.
private struct RefusingSubchannelFactory: MeshSubchannelFactory {
  final class Refusals: Sendable {
    let left: MeshMutex<Int>
    init(_ count: Int) { self.left = MeshMutex(count) }

    func take() -> Bool {
      self.left.withLock { left in
        guard left > 0 else { return false }
        left -= 1
        return true
      }
    }
  }

  let base: MeshInProcessSubchannelFactory
  let refusals: Refusals
  let connected: Bool

  var requestFailureEndsResponse: Bool { true }
  var opensConnectedStreams: Bool { self.connected }

  func makeSubchannel(for endpoint: MeshEndpoint) throws -> RefusingSubchannel {
    RefusingSubchannel(base: try self.base.makeSubchannel(for: endpoint), refusals: self.refusals)
  }

  func withConnectedStream<T: Sendable>(
    on subchannel: RefusingSubchannel,
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<RefusingSubchannel.Inbound, RefusingSubchannel.Outbound>, ClientContext)
      async throws -> T
  ) async throws -> T? {
    try await subchannel.withStream(descriptor: descriptor, options: options, closure)
  }
}

private struct RefusingSubchannel: InProcessSubchannelWrapper {
  typealias Bytes = MeshInProcessSubchannel.Bytes

  let base: MeshInProcessSubchannel
  let refusals: RefusingSubchannelFactory.Refusals

  func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    guard descriptor.method == "Check", self.refusals.take() else {
      return try await self.base.withStream(descriptor: descriptor, options: options, closure)
    }
    // The stream opens, and ends refused before any response: the server never saw the RPC.
    let refused = RPCError(
      code: .unavailable,
      message: "The server refused the stream (REFUSED_STREAM).",
      cause: MeshUnprocessedRPC("refused by the test's subchannel")
    )
    let inbound = AsyncThrowingStream<RPCResponsePart<Bytes>, any Error> {
      $0.finish(throwing: refused)
    }
    let stream = RPCStream(
      descriptor: descriptor,
      inbound: RPCAsyncSequence(wrapping: inbound),
      outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable(wrapping: DiscardingWriter())
    )
    return try await closure(
      stream,
      ClientContext(descriptor: descriptor, remotePeer: "test", localPeer: "test")
    )
  }
}

/// A request stream going nowhere.
private struct DiscardingWriter<Element: Sendable>: ClosableRPCWriterProtocol {
  func write(_ element: Element) async throws {}
  func write(contentsOf elements: some Sequence<Element>) async throws {}
  func finish() async {}
  func finish(throwing error: any Error) async {}
}

@Suite("Streams the server refused unprocessed", .timeLimit(.minutes(1)))
struct TransparentRetryTests {
  /// Calls `Check` once on a one-endpoint fleet whose first `refusals` streams are refused, with
  /// no retry policy; returns the call's result, the server's calls, and the transport's stats.
  private func check(
    refusals: Int,
    connected: Bool
  ) async throws -> (result: Result<Void, RPCError>, served: Int, stats: MeshTransportStats) {
    try await withInProcessFleet(["a"]) { fleet in
      var configuration = MeshBalancingConfiguration.defaults
      configuration.policy = .pickFirst
      configuration.resilience = MeshResiliencePolicy(
        defaults: MeshMethodPolicy(),
        retryBudget: nil,
        outlierDetection: nil
      )
      let transport = try MeshBalancingTransport(
        service: "greeter",
        discovery: MeshStaticDiscovery(["greeter": fleet.endpoints]),
        factory: RefusingSubchannelFactory(
          base: fleet.factory,
          refusals: .init(refusals),
          connected: connected
        ),
        configuration: configuration
      )
      return try await withGRPCClient(transport: transport) { client in
        await transport.waitForPickableEndpoints(1)
        let health = Grpc_Health_V1_Health.Client(wrapping: client)
        let result: Result<Void, RPCError>
        do {
          _ = try await health.check(.init())
          result = .success(())
        } catch let error as RPCError {
          result = .failure(error)
        }
        return (result, fleet.faults(of: "a").calls, transport.stats)
      }
    }
  }

  @Test(
    "Refused unprocessed: sent again at once to the same endpoint, with retries off, not held against it",
    arguments: [false, true]
  )
  func refusedOnce(connected: Bool) async throws {
    let (result, served, stats) = try await self.check(refusals: 1, connected: connected)
    #expect(throws: Never.self) { try result.get() }
    #expect(served == 1)
    #expect(stats.retriesTotal == 0, "a transparent retry is no policy retry")
    #expect(stats.failedAttempts == 0, "a refused stream is not the endpoint failing")
  }

  @Test(
    "At most two transparent retries an RPC: refused three times, it fails",
    arguments: [false, true]
  )
  func refusedThrice(connected: Bool) async throws {
    let (result, served, _) = try await self.check(refusals: 3, connected: connected)
    let error = #expect(throws: RPCError.self) { try result.get() }
    #expect(error?.code == .unavailable)
    #expect(error?.message.contains("REFUSED_STREAM") == true, "\(String(describing: error))")
    #expect(served == 0)
  }
}
