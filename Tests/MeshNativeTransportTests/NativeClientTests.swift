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
import NIOCore
import NIOPosix
import Testing

@Suite(
  "Native client transport against grpc-swift's server and the native one",
  .timeLimit(.minutes(2))
)
struct NativeClientTests {
  @Test(
    "Unary: the message, metadata both ways (text and binary), trailers and the peer",
    arguments: ServerKind.allCases
  )
  func unary(server: ServerKind) async throws {
    try await withServer(server, services: [NativeTestService()]) { port in
      try await withNativeClient(port: port) { client, _ in
        let binary: [UInt8] = [0, 1, 2, 0xff, 0x80]
        var metadata: Metadata = ["x-text": "hello, wörld"]
        metadata.addBinary(binary, forKey: "x-data-bin")
        let response = try await client.call("Echo", Array("ping".utf8), metadata: metadata)
        #expect(response.message == Array("ping".utf8))
        for received in [response.metadata, response.trailers] {
          #expect(Array(received[stringValues: "x-text"]) == ["hello, wörld"])
          #expect(Array(received[binaryValues: "x-data-bin"]) == [binary])
        }
        // An empty message is a message.
        let reply1 = try await client.call("Echo", [])
        #expect(reply1.message == [])
      }
    }
  }

  @Test(
    "A status and its message (percent-encoded on the wire) with its metadata",
    arguments: ServerKind.allCases,
    [
      (Status.Code.notFound, "not here"), (.permissionDenied, "100% ünïcödé, second line"),
      (.resourceExhausted, ""),
    ]
  )
  func status(server: ServerKind, expected: (code: Status.Code, message: String)) async throws {
    let (code, message) = expected
    try await withServer(server, services: [NativeTestService()]) { port in
      try await withNativeClient(port: port) { client, _ in
        let metadata: Metadata = [
          "echo-status": "\(code.rawValue)", "echo-message": "\(message)", "x-why": "asked",
        ]
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], metadata: metadata)
        }
        #expect(error?.code == RPCError.Code(code))
        #expect(error?.message == message)
        #expect(error.map { Array($0.metadata[stringValues: "x-why"]) } == ["asked"])
      }
    }
  }

  @Test(
    "Server streaming, client streaming and bidirectional streaming",
    arguments: ServerKind.allCases
  )
  func streaming(server: ServerKind) async throws {
    try await withServer(server, services: [NativeTestService()]) { port in
      try await withNativeClient(port: port) { client, _ in
        // Server streaming: 200 messages for one request.
        let expanded = try await client.serverStreaming(
          request: ClientRequest(message: [200]),
          descriptor: NativeTestService.method("Expand"),
          serializer: RawSerializer(),
          deserializer: RawSerializer(),
          options: .defaults
        ) { response in
          var received: [[UInt8]] = []
          for try await message in response.messages { received.append(message) }
          return received
        }
        #expect(expanded.count == 200)
        #expect(expanded.last == [200, 199])

        // Client streaming: 1,000 messages of 100 bytes.
        let counted = try await client.clientStreaming(
          request: StreamingClientRequest(of: [UInt8].self) { writer in
            for _ in 0..<1000 { try await writer.write(Array(repeating: 7, count: 100)) }
          },
          descriptor: NativeTestService.method("Count"),
          serializer: RawSerializer(),
          deserializer: RawSerializer(),
          options: .defaults
        ) { try String(decoding: $0.message, as: UTF8.self) }
        #expect(counted == "1000 100000")

        // Bidirectional: each message answered before the next is sent.
        let rounds = try await client.pingPong(rounds: 500)
        #expect(rounds == 500)
      }
    }
  }

  @Test(
    "Messages far larger than every window: 8 MiB each way; over the limit is refused",
    arguments: ServerKind.allCases
  )
  func largeMessages(server: ServerKind) async throws {
    try await withServer(server, services: [NativeTestService()]) { port in
      // Windows of 64 KiB: the 8 MiB message needs many window updates on stream and connection.
      let settings = MeshNativeTransportSettings.defaults {
        $0.streamWindow = 65_535
        $0.connectionWindow = 65_535
      }
      try await withNativeClient(port: port, settings: settings) { client, _ in
        let large = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var options = CallOptions.defaults
        options.maxResponseMessageBytes = 16 << 20
        let echoed = try await client.call("Echo", large, options: options)
        #expect(echoed.message == large)

        options.maxResponseMessageBytes = 1 << 20
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", large, options: options)
        }
        #expect(error?.code == .resourceExhausted)
        // The connection is still good.
        let reply2 = try await client.call("Echo", [9])
        #expect(reply2.message == [9])
      }
    }
  }

  @Test(
    "300 RPCs at once over one connection whose server allows 8 streams at a time",
    arguments: ServerKind.allCases
  )
  func concurrentStreams(server: ServerKind) async throws {
    try await withServer(server, services: [NativeTestService()], maxConcurrentStreams: 8) { port in
      try await withNativeClient(port: port) { client, _ in
        let echoed = try await client.concurrentEchoes(300)
        #expect(echoed == 300)
      }
    }
  }

  @Test(
    "A cancelled RPC resets its stream: the server's handler sees the cancellation",
    arguments: ServerKind.allCases
  )
  func cancellation(server: ServerKind) async throws {
    let service = NativeTestService()
    try await withServer(server, services: [service]) { port in
      try await withNativeClient(port: port) { client, _ in
        let call = Task {
          try await client.call("Hang", [1])
        }
        await service.hangStarted.wait()
        call.cancel()
        await #expect(throws: (any Error).self) { try await call.value }
        await service.hangCancelled.wait()
        let after = try await client.call("Echo", [2])
        #expect(after.message == [2])
      }
    }
  }

  @Test(
    "The timeout travels as grpc-timeout: the server ends the call at the deadline",
    arguments: ServerKind.allCases
  )
  func timeoutReachesServer(server: ServerKind) async throws {
    let service = NativeTestService()
    try await withServer(server, services: [service]) { port in
      let transport = try MeshNativeClientTransport(host: "127.0.0.1", port: port)
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await transport.connect() }
        var options = CallOptions.defaults
        options.timeout = .milliseconds(200)
        let clock = ContinuousClock()
        let start = clock.now
        // Straight on the transport: only the header carries the deadline.
        let status = try await transport.withStream(
          descriptor: NativeTestService.method("Hang"),
          options: options
        ) { stream, _ in
          try await stream.outbound.write(.metadata([:]))
          try await stream.outbound.write(.message(GRPCNIOTransportBytes([1])))
          await stream.outbound.finish()
          var status: Status?
          for try await part in stream.inbound {
            if case .status(let received, _) = part { status = received }
          }
          return status
        }
        // grpc-swift's server cancels the handler at the deadline it read (the handler then
        // answers, too late to matter): the call ended without the client cancelling it.
        #expect(status != nil)
        #expect(service.hangCancelled.hasFired)
        #expect(clock.now - start >= .milliseconds(200))
        transport.beginGracefulShutdown()
        try await group.waitForAll()
      }
    }
  }

  @Test("Nothing listening: an RPC fails at once without waitForReady, and waits with it")
  func nothingListening() async throws {
    // A port that was just bound and closed: nothing listens there.
    let port = try await {
      let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
      let port = channel.localAddress?.port ?? 1
      try await channel.close()
      return port
    }()
    try await withNativeClient(port: port) { client, _ in
      var options = CallOptions.defaults
      options.waitForReady = false
      let clock = ContinuousClock()
      let start = clock.now
      let error = await #expect(throws: RPCError.self) {
        try await client.call("Echo", [1], options: options)
      }
      #expect(error?.code == .unavailable)
      #expect(clock.now - start < .seconds(10))

      // With waitForReady, the call waits until its deadline.
      options.waitForReady = true
      options.timeout = .milliseconds(300)
      let waited = await #expect(throws: RPCError.self) {
        try await client.call("Echo", [1], options: options)
      }
      #expect(waited?.code == .deadlineExceeded)
    }
  }

  @Test("A server that closes connections at their maximum age (GOAWAY): the client reconnects")
  func reconnectsAfterGoAway() async throws {
    try await withNIOServer(
      services: [NativeTestService()],
      configure: {
        $0.connection.maxAge = .milliseconds(300)
        $0.connection.maxGraceTime = .seconds(5)
      }
    ) { port in
      try await withNativeClient(port: port) { client, transport in
        try await client.callAcrossGoAways(transport)
      }
    }
  }

  @Test("Bad hosts, ports and settings are refused with the field's name")
  func badInput() throws {
    for (host, port, field) in [
      ("bad host", 80, "host"), ("127.0.0.1", 70_000, "port"), ("", 1, "host"),
    ] {
      let error = #expect(throws: MeshInputError.self) {
        try MeshNativeClientTransport(host: host, port: port)
      }
      #expect(error?.field == field)
    }
    let settings = MeshNativeTransportSettings.defaults { $0.maxFrameSize = 1 }
    let error = #expect(throws: MeshInputError.self) {
      try MeshNativeClientTransport(host: "127.0.0.1", port: 1, settings: settings)
    }
    #expect(error?.field == "maxFrameSize")
  }
}

@Suite("Native server transport with grpc-swift's client", .timeLimit(.minutes(2)))
struct NativeServerTests {
  /// Runs `body` with grpc-swift's HTTP/2 client (NIO) to `port`.
  private func withNIOClient<Result: Sendable>(
    port: Int,
    _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
  ) async throws -> Result {
    let transport = try HTTP2ClientTransport.Posix(
      target: .ipv4(address: "127.0.0.1", port: port),
      transportSecurity: .plaintext
    )
    return try await withGRPCClient(transport: transport, handleClient: body)
  }

  @Test("Unary with metadata and trailers, a status, every streaming kind, 8 MiB messages")
  func grpcSwiftClient() async throws {
    try await withServer(.native, services: [NativeTestService()]) { port in
      try await withNIOClient(port: port) { client in
        let response = try await client.call("Echo", [1, 2, 3], metadata: ["x-a": "b"])
        #expect(response.message == [1, 2, 3])
        #expect(Array(response.metadata[stringValues: "x-a"]) == ["b"])
        #expect(Array(response.trailers[stringValues: "x-a"]) == ["b"])

        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [], metadata: ["echo-status": "7", "echo-message": "no"])
        }
        #expect(error?.code == .permissionDenied && error?.message == "no")

        let rounds = try await client.pingPong(rounds: 200)
        #expect(rounds == 200)
        let echoed = try await client.concurrentEchoes(200)
        #expect(echoed == 200)

        var options = CallOptions.defaults
        options.maxRequestMessageBytes = 16 << 20
        options.maxResponseMessageBytes = 16 << 20
        let large = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let big = try await client.call("Echo", large, options: options)
        #expect(big.message == large)
      }
    }
  }

  @Test("An unknown method is UNIMPLEMENTED; a graceful stop lets the call in flight finish")
  func unknownMethodAndGracefulStop() async throws {
    let service = NativeTestService()
    let transport = try MeshNativeServerTransport(host: "127.0.0.1", port: 0)
    let server = GRPCServer(transport: transport, services: [service])
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      let port = try await transport.listeningPort
      try await withNativeClient(port: port) { client, _ in
        let error = await #expect(throws: RPCError.self) {
          try await client.unary(
            request: ClientRequest(message: [1]),
            descriptor: MethodDescriptor(fullyQualifiedService: "test.Nope", method: "Nope"),
            serializer: RawSerializer(),
            deserializer: RawSerializer(),
            options: .defaults
          ) { try $0.message }
        }
        #expect(error?.code == .unimplemented)

        // A call in flight when the server begins to stop still completes.
        let (replies, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        let streaming = Task {
          try await client.bidirectionalStreaming(
            request: StreamingClientRequest(of: [UInt8].self) { writer in
              var iterator = replies.makeAsyncIterator()
              try await writer.write([1])
              _ = await iterator.next()
              server.beginGracefulShutdown()
              try await writer.write([2])
              _ = await iterator.next()
            },
            descriptor: NativeTestService.method("Ping"),
            serializer: RawSerializer(),
            deserializer: RawSerializer(),
            options: .defaults
          ) { response in
            var received: [[UInt8]] = []
            for try await message in response.messages {
              received.append(message)
              continuation.yield(message)
            }
            continuation.finish()
            return received
          }
        }
        let received = try await streaming.value
        #expect(received == [[1], [2]])
      }
      try await group.waitForAll()
    }
  }
}

@Suite("Native transport: streams that end early, limits, hard stops", .timeLimit(.minutes(2)))
struct NativeEdgeTests {
  @Test("A client whose connection is cut mid-RPC: the handler is cancelled, the server serves on")
  func clientGoneMidRPC() async throws {
    let service = NativeTestService()
    try await withServer(.native, services: [service]) { port in
      let transport = try MeshNativeClientTransport(host: "127.0.0.1", port: port)
      let client = GRPCClient(transport: transport)
      await withTaskGroup(of: Void.self) { group in
        // Cancelling runConnections is the transport's hard stop: its connection closes at once.
        group.addTask { try? await client.runConnections() }
        group.addTask { _ = try? await client.call("Hang", [1]) }
        await service.hangStarted.wait()
        group.cancelAll()
        await service.hangCancelled.wait()
      }
      try await withNativeClient(port: port) { client, _ in
        let reply = try await client.call("Echo", [3])
        #expect(reply.message == [3])
      }
    }
  }

  @Test(
    "Readers that stop early give their window back: the connection's window never runs out",
    arguments: ServerKind.allCases
  )
  func abandonedStreamsReturnTheirWindow(server: ServerKind) async throws {
    try await withServer(server, services: [NativeTestService()]) { port in
      // One 64 KiB window for the whole connection; each stream's response is 200 KB.
      let settings = MeshNativeTransportSettings.defaults {
        $0.streamWindow = 65_535
        $0.connectionWindow = 65_535
      }
      try await withNativeClient(port: port, settings: settings) { client, _ in
        let request = [UInt8(200)] + [UInt8](repeating: 9, count: 999)
        for _ in 0..<20 {
          let first = try await client.serverStreaming(
            request: ClientRequest(message: request),
            descriptor: NativeTestService.method("Expand"),
            serializer: RawSerializer(),
            deserializer: RawSerializer(),
            options: .defaults
          ) { response in
            // One message, then the reader stops: the rest is never read.
            for try await message in response.messages { return message.count }
            return 0
          }
          #expect(first == 1001)
        }
        let large = [UInt8](repeating: 5, count: 1 << 20)
        var options = CallOptions.defaults
        options.timeout = .seconds(30)
        let echoed = try await client.call("Echo", large, options: options)
        #expect(echoed.message == large)
      }
    }
  }

  @Test("Headers over maxHeaderListSize are refused with an error, not buffered")
  func headerListLimit() async throws {
    try await withServer(.native, services: [NativeTestService()]) { port in
      try await withNativeClient(port: port) { client, _ in
        let metadata: Metadata = ["x-big": "\(String(repeating: "a", count: 20_000))"]
        await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], metadata: metadata)
        }
        let reply = try await client.call("Echo", [2])
        #expect(reply.message == [2])
      }
    }
  }

  @Test("A status before the request ends (an unknown method, the client still sending) arrives")
  func statusBeforeRequestEnds() async throws {
    try await withServer(.native, services: [NativeTestService()]) { port in
      try await withNativeClient(port: port) { client, _ in
        let error = await #expect(throws: RPCError.self) {
          try await client.clientStreaming(
            request: StreamingClientRequest(of: [UInt8].self) { writer in
              try await writer.write([1])
              // Still sending when the server answers; the answer ends the call (and this
              // wait, by cancellation).
              await MeshSignal().wait()
            },
            descriptor: MethodDescriptor(fullyQualifiedService: "test.Nope", method: "Stream"),
            serializer: RawSerializer(),
            deserializer: RawSerializer(),
            options: .defaults
          ) { try $0.message }
        }
        #expect(error?.code == .unimplemented)
      }
    }
  }
}

@Suite("Native transport: keepalive and connection limits", .timeLimit(.minutes(2)))
struct NativeConnectionLimitTests {
  /// Sends `bytes` when its connection opens, then ignores whatever comes (or, with `thenClose`,
  /// closes the connection).
  private final class SilentPeer: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let bytes: [UInt8]
    let thenClose: Bool

    init(bytes: [UInt8], thenClose: Bool) {
      self.bytes = bytes
      self.thenClose = thenClose
    }

    func channelActive(context: ChannelHandlerContext) {
      let written = context.writeAndFlush(
        NIOAny(context.channel.allocator.buffer(bytes: self.bytes))
      )
      if self.thenClose {
        let channel = context.channel
        written.whenComplete { _ in channel.close(promise: nil) }
      }
      context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
  }

  /// An HTTP/2 peer that sends its SETTINGS and then nothing, whatever it is sent (no PING is
  /// answered); `closed` completes when its first connection closes.
  private func withSilentServer(
    sending bytes: [UInt8],
    thenClose: Bool = false,
    _ body: (_ port: Int, _ closed: EventLoopFuture<Void>) async throws -> Void
  ) async throws {
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let closed = loop.makePromise(of: Void.self)
    let first = MeshMutex(true)
    let server = try await ServerBootstrap(group: loop)
      .childChannelInitializer { channel in
        if first.withLock({ isFirst in
          defer { isFirst = false }; return isFirst
        }) {
          channel.closeFuture.cascade(to: closed)
        }
        return channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(
            SilentPeer(bytes: bytes, thenClose: thenClose)
          )
        }
      }
      .bind(host: "127.0.0.1", port: 0).get()
    defer { server.close(promise: nil) }
    try await body(server.localAddress?.port ?? 0, closed.futureResult)
  }

  /// Waits for `channel` to close; unlike `closeFuture.get()`, a cancelled test (its time limit)
  /// stops waiting, and the test fails.
  private func closing(_ future: EventLoopFuture<Void>) async throws {
    let closed = MeshSignal()
    future.whenComplete { _ in closed.fire() }
    await closed.wait()
    try #require(closed.hasFired, "the connection did not close")
  }

  @Test(
    "A client closes a connection whose server does not answer its keepalive ping",
    .timeLimit(.minutes(1))
  )
  func keepaliveTimeout() async throws {
    let settings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]  // an empty SETTINGS frame
    try await withSilentServer(sending: settings) { port, closed in
      let keepalive = MeshNativeTransportSettings.defaults {
        $0.keepalive = .init(
          interval: .milliseconds(50),
          timeout: .milliseconds(100),
          withoutCalls: true
        )
      }
      try await withNativeClient(port: port, settings: keepalive) { _, _ in
        // The server answers nothing: the ping times out and the client closes.
        try await self.closing(closed)
      }
    }
  }

  @Test("A server that closes each connection as soon as it is made: RPCs fail, not wait")
  func closedAtOnce() async throws {
    let settings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]
    try await withSilentServer(sending: settings, thenClose: true) { port, _ in
      try await withNativeClient(port: port) { client, _ in
        var options = CallOptions.defaults
        options.waitForReady = false
        options.timeout = .seconds(60)
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], options: options)
        }
        // A failed attempt, not a wait for the deadline.
        #expect(error?.code == .unavailable, "\(String(describing: error))")
      }
    }
  }

  @Test(
    "Connection limits: a zero grace (or ping interval) and long ages are accepted; non-positive ones are not"
  )
  func limitSettings() throws {
    var settings = MeshNativeTransportSettings.defaults
    settings.maxConnectionAgeGrace = .zero
    settings.permittedPings.minInterval = .zero
    settings.maxConnectionAge = .seconds(26 * 3_600)
    settings.maxConnectionIdle = .seconds(30 * 86_400)
    try settings.validate()
    var zeroAge = settings
    zeroAge.maxConnectionAge = .zero
    var negativeGrace = settings
    negativeGrace.maxConnectionAgeGrace = .seconds(-1)
    var centuryIdle = settings
    centuryIdle.maxConnectionIdle = .seconds(100 * 365 * 86_400)
    var negativePings = settings
    negativePings.permittedPings.minInterval = .seconds(-1)
    for (bad, field) in [
      (zeroAge, "maxConnectionAge"), (negativeGrace, "maxConnectionAgeGrace"),
      (centuryIdle, "maxConnectionIdle"), (negativePings, "permittedPings.minInterval"),
    ] {
      let error = #expect(throws: MeshInputError.self) { try bad.validate() }
      #expect(error?.field == field)
    }
  }

  @Test("A server closes a connection idle for maxConnectionIdle (GOAWAY, then the close)")
  func idleConnection() async throws {
    let settings = MeshNativeTransportSettings.defaults { $0.maxConnectionIdle = .milliseconds(50) }
    let transport = try MeshNativeServerTransport(host: "127.0.0.1", port: 0, settings: settings)
    let server = GRPCServer(transport: transport, services: [NativeTestService()])
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      let port = try await transport.listeningPort
      // A client that says hello (preface and SETTINGS) and opens no stream.
      let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port).get()
      let hello = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
      // The server may have given up on it already (then the write fails): either way it closes.
      try? await client.writeAndFlush(client.allocator.buffer(bytes: hello))
      try await self.closing(client.closeFuture)
      server.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("A server's maximum connection age: GOAWAY, and the client moves to new connections")
  func maxConnectionAge() async throws {
    let settings = MeshNativeTransportSettings.defaults {
      $0.maxConnectionAge = .milliseconds(300)
      $0.maxConnectionAgeGrace = .seconds(5)
    }
    let transport = try MeshNativeServerTransport(host: "127.0.0.1", port: 0, settings: settings)
    let server = GRPCServer(transport: transport, services: [NativeTestService()])
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      let port = try await transport.listeningPort
      try await withNativeClient(port: port) { client, transport in
        try await client.callAcrossGoAways(transport)
      }
      server.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }
}
