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
import MeshTransport
import Testing

/// Messages as raw bytes.
struct RawSerializer: MessageSerializer, MessageDeserializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
    Bytes(message)
  }

  func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] {
    bytes.withUnsafeBytes { Array($0) }
  }
}

/// `test.Native/*`: each kind of RPC, metadata both ways, statuses on request, and a method that
/// answers only when cancelled.
final class NativeTestService: RegistrableRPCService, Sendable {
  static func method(_ name: String) -> MethodDescriptor {
    MethodDescriptor(fullyQualifiedService: "test.Native", method: name)
  }

  /// Fired when a `Hang` call's handler sees its RPC cancelled.
  let hangCancelled = MeshSignal()
  /// Fired when a `Hang` call's handler starts.
  let hangStarted = MeshSignal()

  /// The request metadata's `x-` entries, and the status `echo-status` asks for.
  private static func echoed(_ metadata: Metadata) -> (Metadata, RPCError?) {
    var echoed = Metadata()
    for (key, value) in metadata where key.hasPrefix("x-") {
      switch value {
      case .string(let text): echoed.addString(text, forKey: key)
      case .binary(let bytes): echoed.addBinary(bytes, forKey: key)
      }
    }
    var error: RPCError?
    if let text = metadata[stringValues: "echo-status"].first(where: { _ in true }),
      let value = Int(text), let code = RPCError.Code(Status.Code(rawValue: value) ?? .unknown)
    {
      let message = metadata[stringValues: "echo-message"].first(where: { _ in true }) ?? ""
      error = RPCError(code: code, message: message, metadata: echoed)
    }
    return (echoed, error)
  }

  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    // Unary: the caller's verified identity as text (empty on a plaintext connection).
    router.registerHandler(
      forMethod: Self.method("Caller"),
      deserializer: RawSerializer(),
      serializer: RawSerializer()
    ) { request, context in
      for try await _ in request.messages {}
      let identity = MeshCaller.current(in: context)?.identity.description ?? ""
      return StreamingServerResponse(single: ServerResponse(message: Array(identity.utf8)))
    }
    // Unary: the request back, with the x- metadata as headers and trailers.
    router.registerHandler(
      forMethod: Self.method("Echo"),
      deserializer: RawSerializer(),
      serializer: RawSerializer()
    ) { request, context in
      let (echoed, error) = Self.echoed(request.metadata)
      var messages: [[UInt8]] = []
      for try await message in request.messages { messages.append(message) }
      if let error { throw error }
      let received = messages
      return StreamingServerResponse(metadata: echoed) { writer in
        for message in received { try await writer.write(message) }
        return echoed
      }
    }
    // Server streaming: `count` messages of the request's bytes, where count is its first byte.
    router.registerHandler(
      forMethod: Self.method("Expand"),
      deserializer: RawSerializer(),
      serializer: RawSerializer()
    ) { request, context in
      var messages: [[UInt8]] = []
      for try await message in request.messages { messages.append(message) }
      let received = messages
      return StreamingServerResponse { writer in
        for message in received {
          for index in 0..<Int(message.first ?? 0) {
            try await writer.write(message + [UInt8(truncatingIfNeeded: index)])
          }
        }
        return [:]
      }
    }
    // Client streaming: the total bytes received, as text.
    router.registerHandler(
      forMethod: Self.method("Count"),
      deserializer: RawSerializer(),
      serializer: RawSerializer()
    ) { request, context in
      var total = 0
      var count = 0
      for try await message in request.messages {
        total += message.count
        count += 1
      }
      return StreamingServerResponse(
        single: ServerResponse(message: Array("\(count) \(total)".utf8))
      )
    }
    // Bidirectional: each message back as it comes.
    router.registerHandler(
      forMethod: Self.method("Ping"),
      deserializer: RawSerializer(),
      serializer: RawSerializer()
    ) { request, context in
      StreamingServerResponse { writer in
        for try await message in request.messages { try await writer.write(message) }
        return [:]
      }
    }
    // Answers only once cancelled.
    router.registerHandler(
      forMethod: Self.method("Hang"),
      deserializer: RawSerializer(),
      serializer: RawSerializer()
    ) { request, context in
      self.hangStarted.fire()
      try? await context.cancellation.cancelled
      self.hangCancelled.fire()
      return StreamingServerResponse(single: ServerResponse(message: []))
    }
  }
}

/// Runs `body` with a grpc-swift (NIO) server serving `services` on 127.0.0.1, given its port.
func withNIOServer<Result: Sendable>(
  services: [any RegistrableRPCService],
  security: HTTP2ServerTransport.Posix.TransportSecurity = .plaintext,
  configure: (inout HTTP2ServerTransport.Posix.Config) -> Void = { _ in },
  _ body: (Int) async throws -> Result
) async throws -> Result {
  var config = HTTP2ServerTransport.Posix.Config.defaults
  config.rpc.maxRequestPayloadSize = 64 << 20
  configure(&config)
  let transport = HTTP2ServerTransport.Posix(
    address: .ipv4(host: "127.0.0.1", port: 0),
    transportSecurity: security,
    config: config
  )
  let server = GRPCServer(transport: transport, services: services)
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.serve() }
    do {
      guard let port = try await transport.listeningAddress.ipv4?.port else {
        throw RPCError(code: .internalError, message: "The server has no IPv4 address.")
      }
      let result = try await body(port)
      server.beginGracefulShutdown()
      try await group.waitForAll()
      return result
    } catch {
      server.beginGracefulShutdown()
      try? await group.waitForAll()
      throw error
    }
  }
}

/// The servers the native client is tested against in process.
enum ServerKind: String, CaseIterable, CustomStringConvertible, Sendable {
  /// grpc-swift's HTTP/2 server transport (NIO).
  case nio
  /// The native server transport (nghttp2).
  case native

  var description: String { self.rawValue }
}

/// Runs `body` with a `kind` server serving `services` on 127.0.0.1, given its port; at most
/// `maxConcurrentStreams` streams per connection if set.
///
/// With `tls`, the server presents `tls.credentials` and requires clients whose identity
/// `tls.peers` accepts (the NIO server through `MeshCredentials`, the native one on OpenSSL).
func withServer<Result: Sendable>(
  _ kind: ServerKind,
  services: [any RegistrableRPCService],
  maxConcurrentStreams: Int? = nil,
  tls: MeshNativeTLS? = nil,
  _ body: (Int) async throws -> Result
) async throws -> Result {
  switch kind {
  case .nio:
    return try await withNIOServer(
      services: services,
      security: try tls.map { try $0.credentials.serverTransportSecurity(clients: $0.peers) }
        ?? .plaintext,
      configure: { $0.http2.maxConcurrentStreams = maxConcurrentStreams },
      body
    )
  case .native:
    let settings = MeshNativeTransportSettings.defaults {
      if let maxConcurrentStreams { $0.maxConcurrentStreams = maxConcurrentStreams }
    }
    let transport = try MeshNativeServerTransport(
      host: "127.0.0.1",
      port: 0,
      security: tls.map { .mTLS($0) } ?? .plaintext,
      settings: settings,
      maxRequestMessageBytes: 64 << 20
    )
    let server = GRPCServer(transport: transport, services: services)
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      do {
        let result = try await body(try await transport.listeningPort)
        server.beginGracefulShutdown()
        try await group.waitForAll()
        return result
      } catch {
        server.beginGracefulShutdown()
        try? await group.waitForAll()
        throw error
      }
    }
  }
}

/// Runs `body` with a client on a native transport to `port`.
func withNativeClient<Result: Sendable>(
  port: Int,
  host: String = "127.0.0.1",
  security: MeshNativeTransportSecurity = .plaintext,
  settings: MeshNativeTransportSettings = .defaults,
  _ body: (GRPCClient<MeshNativeClientTransport>, MeshNativeClientTransport) async throws -> Result
) async throws -> Result {
  let transport = try MeshNativeClientTransport(
    host: host,
    port: port,
    security: security,
    settings: settings
  )
  return try await withGRPCClient(transport: transport) { client in
    try await body(client, transport)
  }
}

extension GRPCClient {
  /// A unary call to `test.Native/<method>`.
  func call(
    _ method: String,
    _ message: [UInt8],
    metadata: Metadata = [:],
    options: CallOptions = .defaults
  ) async throws -> (message: [UInt8], metadata: Metadata, trailers: Metadata) {
    try await self.unary(
      request: ClientRequest(message: message, metadata: metadata),
      descriptor: NativeTestService.method(method),
      serializer: RawSerializer(),
      deserializer: RawSerializer(),
      options: options
    ) { response in
      (try response.message, response.metadata, response.trailingMetadata)
    }
  }
}

extension GRPCClient {
  /// `rounds` rounds of `test.Native/Ping`, each message answered before the next is sent; the
  /// messages received.
  func pingPong(rounds: Int) async throws -> Int {
    let (replies, continuation) = AsyncStream.makeStream(of: [UInt8].self)
    return try await self.bidirectionalStreaming(
      request: StreamingClientRequest(of: [UInt8].self) { writer in
        var iterator = replies.makeAsyncIterator()
        for round in 0..<rounds {
          let message = Array("round \(round)".utf8)
          try await writer.write(message)
          guard await iterator.next() == message else {
            throw RPCError(code: .internalError, message: "round \(round) was not echoed")
          }
        }
      },
      descriptor: NativeTestService.method("Ping"),
      serializer: RawSerializer(),
      deserializer: RawSerializer(),
      options: .defaults
    ) { response in
      var count = 0
      for try await message in response.messages {
        continuation.yield(message)
        count += 1
      }
      continuation.finish()
      return count
    }
  }

  /// `count` calls of `test.Native/Echo` at once; how many were echoed.
  func concurrentEchoes(_ count: Int) async throws -> Int {
    try await withThrowingTaskGroup(of: Bool.self) { group in
      for index in 0..<count {
        group.addTask {
          let message = Array("\(index)".utf8)
          return try await self.call("Echo", message).message == message
        }
      }
      var echoed = 0
      for try await ok in group where ok { echoed += 1 }
      return echoed
    }
  }
}

extension GRPCClient<MeshNativeClientTransport> {
  /// Calls `Echo` until `transport` has made three connections (a server ending each at its
  /// maximum age), at most 20 s; each call must succeed. A call that picks the connection in the
  /// instant its GOAWAY is read fails UNAVAILABLE without having been sent, or is refused by the
  /// server (REFUSED_STREAM): safe to retry, which this does with a new call, up to five times
  /// (the transport does not reroute such calls itself yet; under a loaded run a new connection
  /// can reach a short maximum age before a retry gets to it). Not grpc-swift's retry executor:
  /// replaying a request whose attempt failed before the executor read it, it once sent the
  /// retry without its message (a race in grpc-swift 2.4's broadcast sequence, which
  /// grpc/grpc-swift#1779 describes): the echo answered OK with no message.
  func callAcrossGoAways(_ transport: MeshNativeClientTransport) async throws {
    let clock = ContinuousClock()
    let until = clock.now.advanced(by: .seconds(20))
    var calls = 0
    while transport.connectionsMade < 3, clock.now < until {
      let message = [UInt8(truncatingIfNeeded: calls)]
      var attempts = 0
      while true {
        attempts += 1
        do {
          let echoed = try await self.call("Echo", message)
          #expect(echoed.message == message)
          break
        } catch let error as RPCError where error.code == .unavailable && attempts < 5 {
          // Again at once: the transport waits for the connection that replaces the old one.
          continue
        }
      }
      calls += 1
    }
    #expect(calls > 0)
    #expect(transport.connectionsMade >= 3, "the server's GOAWAYs made new connections")
  }
}
