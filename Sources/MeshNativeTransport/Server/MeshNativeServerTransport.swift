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

public import GRPCCore
public import GRPCNIOTransportHTTP2Posix
public import MeshCore
public import MeshTransport
public import NIOCore
public import NIOPosix

/// A gRPC server transport on libnghttp2, with SwiftNIO's sockets.
///
/// ``listen(streamHandler:)`` binds, then runs each RPC's handler in a child task of its own
/// until ``beginGracefulShutdown()``: no new connection is accepted, each connection sends
/// GOAWAY, RPCs in flight finish, and `listen` returns once every connection has closed. The
/// request's `grpc-timeout` reaches the handler in its metadata, where grpc-swift's server
/// enforces it; a client's RST_STREAM cancels the handler's RPC. Cancelling `listen`'s task is
/// the hard stop: every connection closes at once and its RPCs are cancelled.
public final class MeshNativeServerTransport: ServerTransport, Sendable {
  public typealias Bytes = GRPCNIOTransportBytes

  private let host: MeshHost
  private let port: Int
  private let settings: MeshNativeTransportSettings
  private let maxRequestBytes: Int
  private let group: any EventLoopGroup
  private let security: MeshNativeTransportSecurity

  private struct State {
    /// The server's methods by path (``configure(context:)``): requests for them carry the
    /// server's own descriptors (with their RPC types), which interceptors and the mesh's
    /// metrics compare with the ones they were given.
    var methods: [String: MethodDescriptor] = [:]
    var bound: Result<Int, any Error>?
    var server: (any Channel)?
    var connections: [ObjectIdentifier: MeshNativeServerConnection] = [:]
    var shuttingDown = false
  }
  private let state = MeshMutex(State())
  private let boundSignal = MeshSignal()

  /// A server transport for `host:port` (port 0: any free port, see ``listeningPort``).
  ///
  /// - Parameters:
  ///   - security: Plaintext (h2c), or mTLS: clients must present a certificate from the mesh CA
  ///     with an identity the policy accepts; handlers read it with `MeshCaller.current(in:)`.
  ///   - maxRequestMessageBytes: The largest request message accepted (4 MiB by default).
  /// - Throws: `MeshInputError` for a host, port or setting that is not one.
  public init(
    host: String,
    port: Int,
    security: MeshNativeTransportSecurity = .plaintext,
    settings: MeshNativeTransportSettings = .defaults,
    maxRequestMessageBytes: Int = 4 << 20,
    eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) throws(MeshInputError) {
    self.host = try MeshHost(host, field: "host")
    self.port = try MeshInput.integer(port, field: "port", in: 0...65_535)
    try settings.validate()
    self.maxRequestBytes = try MeshInput.integer(
      maxRequestMessageBytes,
      field: "maxRequestMessageBytes",
      in: 0...Int(UInt32.max)
    )
    self.settings = settings
    self.group = eventLoopGroup
    self.security = security
  }

  /// The bound port, once ``listen(streamHandler:)`` has bound.
  ///
  /// - Throws: the bind's error, or `MeshHTTP2Error` if the transport stopped before binding.
  public var listeningPort: Int {
    get async throws {
      await self.boundSignal.wait()
      guard let bound = self.state.withLock({ $0.bound }) else { throw CancellationError() }
      return try bound.get()
    }
  }

  public func configure(context: GRPCServerContext) {
    var methods: [String: MethodDescriptor] = [:]
    methods.reserveCapacity(context.methods.count)
    for method in context.methods { methods["/" + method.fullyQualifiedMethod] = method }
    self.state.withLock { $0.methods = methods }
  }

  public func listen(
    streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
  ) async throws {
    let (accepted, continuation) = AsyncStream.makeStream(
      of: MeshNativeServerConnection.Accepted.self
    )
    let server: any Channel
    do {
      server = try await self.bind { accepted in continuation.yield(accepted) }
    } catch {
      self.settle(.failure(error))
      throw error
    }
    let shutDown = self.state.withLock { state -> Bool in
      state.server = server
      return state.shuttingDown
    }
    self.settle(.success(server.localAddress?.port ?? self.port))
    if shutDown { server.close(promise: nil) }
    // The accept loop stops with graceful shutdown; then every connection drains and closes.
    server.closeFuture.whenComplete { _ in
      // Wait for the connections to close (on any thread) before ending the stream of RPCs.
      let connections = self.state.withLock { Array($0.connections.values) }
      let remaining = MeshMutex(connections.count)
      if connections.isEmpty { continuation.finish() }
      for connection in connections {
        connection.enqueue(.goAway)
        connection.closedFuture.whenComplete { _ in
          let left = remaining.withLock { count -> Int in
            count -= 1
            return count
          }
          if left == 0 { continuation.finish() }
        }
      }
    }
    await withTaskCancellationHandler {
      await withDiscardingTaskGroup { group in
        for await rpc in accepted {
          group.addTask { await Self.handle(rpc, streamHandler) }
        }
      }
    } onCancel: {
      // The hard stop: no more connections, and those open close now (their RPCs are cancelled).
      self.beginGracefulShutdown()
      for connection in self.state.withLock({ Array($0.connections.values) }) {
        connection.close()
      }
    }
  }

  private static func handle(
    _ rpc: MeshNativeServerConnection.Accepted,
    _ streamHandler: @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
  ) async {
    let stream = rpc.stream
    defer { stream.release() }
    await withServerContextRPCCancellationHandle { handle in
      stream.setCancellation(handle)
      let rpcStream = RPCStream(
        descriptor: rpc.descriptor,
        inbound: RPCAsyncSequence(wrapping: MeshNativeInboundSequence(inbound: stream.inbound)),
        outbound: RPCWriter.Closable(wrapping: MeshNativeServerStream.Writer(stream: stream))
      )
      var context = ServerContext(
        descriptor: rpc.descriptor,
        remotePeer: rpc.remotePeer,
        localPeer: rpc.localPeer,
        cancellation: handle
      )
      context.transportSpecific = Context(verifiedPeer: rpc.peer)
      await streamHandler(rpcStream, context)
    }
  }

  private func bind(
    onStream: @escaping @Sendable (MeshNativeServerConnection.Accepted) -> Void
  ) async throws -> any Channel {
    let settings = self.settings
    let maxRequestBytes = self.maxRequestBytes
    let methods = self.state.withLock { $0.methods }
    let tls: MeshNativeTLS?
    switch self.security {
    case .plaintext: tls = nil
    case .mTLS(let configuration): tls = configuration
    }
    let bootstrap = ServerBootstrap(group: self.group)
      .serverChannelOption(.backlog, value: 256)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
      .childChannelInitializer { channel in
        let connection = MeshNativeServerConnection(
          settings: settings,
          maxRequestBytes: maxRequestBytes,
          methods: methods,
          secured: tls != nil,
          eventLoop: channel.eventLoop,
          onStream: onStream
        )
        let id = ObjectIdentifier(connection)
        let accepted = self.state.withLock { state -> Bool in
          guard !state.shuttingDown else { return false }
          state.connections[id] = connection
          return true
        }
        guard accepted else {
          // Accepted as the server stops: the connection is never used, and its promise must
          // not be dropped uncompleted (NIO traps on that in debug builds).
          connection.closedPromise.succeed()
          return channel.close()
        }
        channel.closeFuture.whenComplete { _ in
          _ = self.state.withLock { $0.connections.removeValue(forKey: id) }
          connection.closedPromise.succeed()
        }
        return channel.eventLoop.makeCompletedFuture {
          if let tls {
            try channel.pipeline.syncOperations.addHandler(
              MeshNativeTLSHandler(
                tls: tls,
                role: .server,
                serverName: nil,
                handshakeTimeout: settings.connectTimeout
              )
            )
          }
          try channel.pipeline.syncOperations.addHandler(connection)
        }
      }
    switch self.host {
    case .ipv4(let address), .ipv6(let address):
      return try await bootstrap.bind(to: try SocketAddress(ipAddress: address, port: self.port))
        .get()
    case .dns(let name):
      return try await bootstrap.bind(host: name, port: self.port).get()
    }
  }

  private func settle(_ result: Result<Int, any Error>) {
    let first = self.state.withLock { state -> Bool in
      guard state.bound == nil else { return false }
      state.bound = result
      return true
    }
    if first { self.boundSignal.fire() }
  }

  /// Stops accepting connections; each connection sends GOAWAY and closes once its RPCs finish.
  public func beginGracefulShutdown() {
    let server = self.state.withLock { state -> (any Channel)? in
      state.shuttingDown = true
      return state.server
    }
    server?.close(promise: nil)
  }
}

extension MeshNativeServerTransport {
  /// What the native server tells each RPC's handler about its connection
  /// (`ServerContext.transportSpecific`).
  public struct Context: ServerContext.TransportSpecific, MeshVerifiedPeerContext {
    /// The client's verified identity and chain (mTLS); nil on a plaintext connection.
    public let verifiedPeer: MeshVerifiedPeer?
  }
}
