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
import MeshCore
import MeshNativeTransport
import Testing

@Suite("Native server: a unary response goes out whole", .timeLimit(.minutes(1)))
struct NativeHeldResponseTests {
  /// Runs a raw native server transport knowing `methods` (their types), whose streams
  /// `handler` serves, and `body` with a raw native client transport to it.
  private func withRawServer<Result: Sendable>(
    methods: [MethodDescriptor],
    clientSettings: MeshNativeTransportSettings = .defaults,
    handler:
      @escaping @Sendable (
        RPCStream<MeshNativeServerTransport.Inbound, MeshNativeServerTransport.Outbound>
      ) async throws -> Void,
    _ body: (MeshNativeClientTransport) async throws -> Result
  ) async throws -> Result {
    let server = try MeshNativeServerTransport(host: "127.0.0.1", port: 0)
    var context = GRPCServerContext()
    context.methods = methods
    server.configure(context: context)
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        try await server.listen { stream, _ in try? await handler(stream) }
      }
      defer {
        server.beginGracefulShutdown()
        group.cancelAll()
      }
      let client = try MeshNativeClientTransport(
        host: "127.0.0.1",
        port: try await server.listeningPort,
        settings: clientSettings
      )
      group.addTask { try await client.connect() }
      defer { client.beginGracefulShutdown() }
      return try await body(client)
    }
  }

  /// The first response part the client reads from a handler that writes metadata and a message
  /// and then ends without a status (the server resets the stream), on a method of `type`.
  ///
  /// Before the handler ends, a second RPC on the same connection (a probe) gets its response
  /// headers: the loop runs its commands in order and nghttp2 sends headers in order, so by then
  /// the first response's headers went out unless they are held.
  private func firstPart(type: MethodDescriptor.RPCType) async throws -> String {
    let method = MethodDescriptor(fullyQualifiedService: "test.Held", method: "Call", type: type)
    let probe = MethodDescriptor(
      fullyQualifiedService: "test.Held",
      method: "Probe",
      type: .serverStreaming
    )
    let wrote = MeshSignal()
    let probed = MeshSignal()
    return try await self.withRawServer(methods: [method, probe]) { stream in
      for try await _ in stream.inbound {}
      try await stream.outbound.write(.metadata(["x-started": "yes"]))
      if stream.descriptor == probe {
        try await stream.outbound.write(.status(Status(code: .ok, message: ""), [:]))
        return
      }
      try await stream.outbound.write(.message(GRPCNIOTransportBytes([1, 2, 3])))
      wrote.fire()
      await probed.wait()
      // No status: the response ends broken (a server dying mid-response looks alike).
      await stream.outbound.finish()
    } _: { client in
      return try await client.withStream(descriptor: method, options: .defaults) { stream, _ in
        try await stream.outbound.write(.metadata([:]))
        try await stream.outbound.write(.message(GRPCNIOTransportBytes([0])))
        await stream.outbound.finish()
        await wrote.wait()
        try await client.withStream(descriptor: probe, options: .defaults) { probe, _ in
          try await probe.outbound.write(.metadata([:]))
          try await probe.outbound.write(.message(GRPCNIOTransportBytes([0])))
          await probe.outbound.finish()
          for try await part in probe.inbound {
            if case .metadata = part { break }
          }
        }
        probed.fire()
        do {
          for try await part in stream.inbound {
            switch part {
            case .metadata: return "metadata"
            case .message: return "message"
            case .status(let status, _): return "status \(status.code)"
            }
          }
          return "end"
        } catch {
          return "error"
        }
      }
    }
  }

  @Test(
    "A unary response's headers and message wait for its status: a handler that ends without one started no response"
  )
  func unaryHeldUntilStatus() async throws {
    // The client saw no headers, so the RPC is not committed: a mesh client may retry it.
    #expect(try await self.firstPart(type: .unary) == "error")
    #expect(try await self.firstPart(type: .clientStreaming) == "error")
  }

  @Test("A streaming response's headers go at once")
  func streamingNotHeld() async throws {
    #expect(try await self.firstPart(type: .serverStreaming) == "metadata")
    #expect(try await self.firstPart(type: .bidirectionalStreaming) == "metadata")
  }

  @Test(
    "A unary method's handler that writes a second large message starts its response: nothing waits on the held one"
  )
  func secondMessageStartsResponse() async throws {
    let method = MethodDescriptor(fullyQualifiedService: "test.Held", method: "Two", type: .unary)
    let large = [UInt8](repeating: 7, count: 2 << 20)
    let parts = try await self.withRawServer(
      methods: [method],
      clientSettings: .defaults { $0.streamWindow = 65_535 }
    ) { stream in
      for try await _ in stream.inbound {}
      try await stream.outbound.write(.metadata([:]))
      // Each past the stream's window: the second write waits for room, which only the
      // response's start (at that second message) makes.
      try await stream.outbound.write(.message(GRPCNIOTransportBytes(large)))
      try await stream.outbound.write(.message(GRPCNIOTransportBytes(large)))
      try await stream.outbound.write(.status(Status(code: .ok, message: ""), [:]))
    } _: { client in
      var options = CallOptions.defaults
      options.maxResponseMessageBytes = 4 << 20
      return try await client.withStream(descriptor: method, options: options) { stream, _ in
        try await stream.outbound.write(.metadata([:]))
        try await stream.outbound.write(.message(GRPCNIOTransportBytes([0])))
        await stream.outbound.finish()
        var parts: [String] = []
        for try await part in stream.inbound {
          switch part {
          case .metadata: parts.append("metadata")
          case .message(let bytes): parts.append("message \(bytes.count)")
          case .status(let status, _): parts.append("status \(status.code)")
          }
        }
        return parts
      }
    }
    #expect(parts == ["metadata", "message \(2 << 20)", "message \(2 << 20)", "status ok"])
  }
}
