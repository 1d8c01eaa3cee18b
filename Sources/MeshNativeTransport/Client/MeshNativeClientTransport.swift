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
internal import MeshTransport
public import NIOCore
public import NIOPosix

/// A gRPC client transport to one server on libnghttp2: HTTP/2 framing, HPACK and flow control
/// are nghttp2's; sockets are SwiftNIO's.
///
/// It keeps one connection, made when ``connect()`` runs and again after it is lost (with
/// gRPC's connection backoff after failures) until ``beginGracefulShutdown()``. An RPC started
/// while connecting waits for the connection, bounded by its task; with `waitForReady` false it
/// fails at once while the last attempt has failed.
///
/// Streams are multiplexed on the connection up to the server's SETTINGS_MAX_CONCURRENT_STREAMS
/// (nghttp2 queues the rest). Each stream's receive window opens as its messages are read, and
/// the connection's window separately, so one slow reader does not stall the others.
public final class MeshNativeClientTransport: ClientTransport, Sendable {
  public typealias Bytes = GRPCNIOTransportBytes

  private typealias Connectivity = MeshNativeConnectivity<
    MeshNativeClientConnection, CheckedContinuation<MeshNativeClientConnection, any Error>
  >

  private let host: MeshHost
  private let port: Int
  private let settings: MeshNativeTransportSettings
  private let group: any EventLoopGroup
  private let security: MeshNativeTransportSecurity
  private let state = MeshMutex(Connectivity())
  private let nextWaiter = MeshMutex<UInt64>(0)
  private let shutdownRequested = MeshSignal()
  /// The connection the run loop watches is going away or closed (woken by the loop too).
  private let connections = MeshMutex<[ObjectIdentifier: MeshNativeClientConnection]>([:])

  /// A transport to `host:port`.
  ///
  /// - Parameter security: Plaintext (h2c), or mTLS: the server must present a certificate from
  ///   the mesh CA with an identity the policy accepts (host names are not identities).
  /// - Throws: `MeshInputError` for a host or port that is not one.
  public init(
    host: String,
    port: Int,
    security: MeshNativeTransportSecurity = .plaintext,
    settings: MeshNativeTransportSettings = .defaults,
    eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) throws(MeshInputError) {
    self.host = try MeshHost(host, field: "host")
    self.port = try MeshInput.port(port, field: "port")
    try settings.validate()
    self.settings = settings
    self.group = eventLoopGroup
    self.security = security
  }

  private let made = MeshMutex(0)

  /// Connections made so far (TCP connected).
  public var connectionsMade: Int { self.made.withLock { $0 } }

  public var retryThrottle: RetryThrottle? { nil }

  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? { nil }

  // MARK: Lifecycle

  /// Keeps a connection to the server until ``beginGracefulShutdown()``; returns once every
  /// connection has closed. Cancelling the task is the hard stop: the connections close at once.
  public func connect() async throws {
    try await withTaskCancellationHandler {
      try await self.run()
    } onCancel: {
      self.beginGracefulShutdown()
    }
  }

  private func run() async throws {
    var backoff = MeshNativeBackoff(self.settings.backoff)
    while self.state.withLock({ $0.connecting() }) {
      do {
        let connection = try await self.makeConnection()
        if connection.goingAway.hasFired {
          guard connection.wentAwayCleanly else {
            // Closed, or sent away with an error, as soon as it was made: a failed attempt.
            throw MeshHTTP2Error(
              .unavailable,
              "\(self.host.authority(port: self.port)) closed the connection as soon as it was made."
            )
          }
          // It came up and was sent away cleanly (a server's GOAWAY at its maximum age): not a
          // failure for the waiting RPCs, which wait for the next one, after a backoff (a
          // server that sends every connection away must not be redialled in a loop).
          let delay = backoff.next()
          await self.shutdownRequested.cancelling { try? await Task.sleep(for: delay) }
          continue
        }
        backoff.reset()
        let waiters = self.state.withLock { $0.ready(connection) }
        for waiter in waiters { waiter.resume(returning: connection) }
        if self.state.withLock({ $0.isShutdown }) {
          connection.enqueue(.goAway)
        }
        // Until the connection goes away (or shutdown): then a new one takes new RPCs while
        // this one finishes its streams.
        await withTaskGroup(of: Void.self) { group in
          group.addTask { await connection.goingAway.wait() }
          group.addTask { await self.shutdownRequested.wait() }
          await group.next()
          group.cancelAll()
        }
        self.state.withLock { $0.lost(connection) }
        if self.shutdownRequested.hasFired { connection.enqueue(.goAway) }
      } catch {
        let failure =
          error as? MeshHTTP2Error
          ?? MeshHTTP2Error(
            .unavailable,
            "Could not connect to \(self.host.authority(port: self.port)): \(error)"
          )
        let failing = self.state.withLock { $0.failed(failure) }
        for waiter in failing { waiter.resume(throwing: MeshHTTP2Error.rpcError(failure)) }
        let delay = backoff.next()
        await self.shutdownRequested.cancelling {
          try? await Task.sleep(for: delay)
        }
      }
    }
    // Shut down: every connection drains its streams and closes (at once if cancelled).
    let open = self.connections.withLock { Array($0.values) }
    for connection in open {
      if Task.isCancelled {
        connection.close()
      } else {
        connection.enqueue(.goAway)
      }
      await connection.closed.wait()
      // Cancelled while waiting: the wait ended early; the close does not wait for RPCs.
      if Task.isCancelled { connection.close() }
    }
  }

  /// Stops making connections; RPCs in flight finish, new ones fail.
  public func beginGracefulShutdown() {
    let (connection, failing) = self.state.withLock { $0.shutDown() }
    let error = MeshHTTP2Error(.unavailable, "The transport is shut down.")
    for waiter in failing { waiter.resume(throwing: MeshHTTP2Error.rpcError(error)) }
    connection?.enqueue(.goAway)
    self.shutdownRequested.fire()
  }

  private func makeConnection() async throws -> MeshNativeClientConnection {
    let loop = self.group.next()
    let authority = self.host.authority(port: self.port)
    let tls: (configuration: MeshNativeTLS, outcome: MeshNativeTLSOutcome)?
    switch self.security {
    case .plaintext: tls = nil
    case .mTLS(let configuration): tls = (configuration, MeshNativeTLSOutcome())
    }
    // SNI for a host name (an address is not sent).
    let serverName: String?
    switch self.host {
    case .dns(let name): serverName = name
    case .ipv4, .ipv6: serverName = nil
    }
    let connection = MeshNativeClientConnection(
      settings: self.settings,
      scheme: tls == nil ? "http" : "https",
      secured: tls != nil,
      authority: authority,
      eventLoop: loop,
      allocator: ByteBufferAllocator(),
      // On the event loop, as the GOAWAY (or the close) is read: new RPCs stop picking the
      // connection at once, not when the run loop's task next runs.
      // Weak: the connection may outlive the transport (it closes on its own).
      onGoingAway: { [weak self] connection in self?.state.withLock { $0.lost(connection) } }
    )
    let bootstrap = ClientBootstrap(group: loop)
      .connectTimeout(.nanoseconds(MeshInput.nanoseconds(clamping: self.settings.connectTimeout)))
      .channelOption(.tcpOption(.tcp_nodelay), value: 1)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls {
            let handler = try MeshNativeTLSHandler(
              tls: tls.configuration,
              role: .client,
              serverName: serverName,
              handshakeTimeout: self.settings.connectTimeout,
              outcome: tls.outcome
            )
            try channel.pipeline.syncOperations.addHandler(handler)
          }
          try channel.pipeline.syncOperations.addHandler(connection)
        }
      }
    let channel: any Channel
    switch self.host {
    case .ipv4(let address), .ipv6(let address):
      let socketAddress = try SocketAddress(ipAddress: address, port: self.port)
      channel = try await bootstrap.connect(to: socketAddress).get()
    case .dns(let name):
      channel = try await bootstrap.connect(host: name, port: self.port).get()
    }
    let id = ObjectIdentifier(connection)
    self.connections.withLock { $0[id] = connection }
    self.made.withLock { $0 += 1 }
    channel.closeFuture.whenComplete { [weak self] _ in
      _ = self?.connections.withLock { $0.removeValue(forKey: id) }
    }
    // Ready once the server's SETTINGS arrive; a server that never sends them is a failed
    // attempt after the connect timeout.
    let ready = await withTaskGroup(of: Bool.self) { group in
      group.addTask {
        await withTaskGroup(of: Void.self) { inner in
          inner.addTask { await connection.ready.wait() }
          inner.addTask { await connection.closed.wait() }
          await inner.next()
          inner.cancelAll()
        }
        // Ready, even if it has closed since: the run loop then makes the next one.
        return connection.ready.hasFired
      }
      group.addTask {
        try? await Task.sleep(for: self.settings.connectTimeout)
        return false
      }
      let ready = await group.next() ?? false
      group.cancelAll()
      return ready
    }
    guard ready else {
      channel.close(promise: nil)
      if let failure = tls?.outcome.failure {
        throw MeshHTTP2Error(.unavailable, "TLS with \(authority) failed: \(failure.message)")
      }
      throw MeshHTTP2Error(
        .unavailable,
        "\(authority) did not complete the "
          + (tls == nil ? "HTTP/2 connection preface." : "TLS handshake and HTTP/2 preface.")
      )
    }
    return connection
  }

  // MARK: RPCs

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    // gRPC's default: an RPC waits while the first connection is being made, and fails once an
    // attempt has failed, unless it asked to wait for readiness.
    let connection = try await self.connection(waitForReady: options.waitForReady ?? false)
    return try await self.withStream(
      on: connection,
      descriptor: descriptor,
      options: options,
      closure
    )
  }

  /// ``withStream(descriptor:options:_:)`` only if the transport is connected now: nil, with
  /// nothing opened and `closure` not called, when the RPC would have to wait for a connection.
  /// The mesh's balancer runs an RPC's first attempt in the caller's task through it, where it
  /// must wait for nothing but the stream itself.
  public func withConnectedStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T? {
    let current = self.state.withLock { state -> MeshNativeClientConnection? in
      if case .ready(let connection) = state.state { return connection }
      return nil
    }
    guard let current else { return nil }
    return try await self.withStream(on: current, descriptor: descriptor, options: options, closure)
  }

  private func withStream<T: Sendable>(
    on connection: MeshNativeClientConnection,
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    let stream = connection.makeStream(descriptor: descriptor, options: options)
    defer { stream.release() }
    let rpc = RPCStream(
      descriptor: descriptor,
      inbound: RPCAsyncSequence(wrapping: MeshNativeInboundSequence(inbound: stream.inbound)),
      outbound: RPCWriter.Closable(wrapping: MeshNativeClientStream.Writer(stream: stream))
    )
    let context = ClientContext(
      descriptor: descriptor,
      remotePeer: connection.remotePeer,
      localPeer: connection.localPeer
    )
    return try await closure(rpc, context)
  }

  private func connection(waitForReady: Bool) async throws -> MeshNativeClientConnection {
    // The common case, connected: no continuation, no cancellation handler.
    let current = self.state.withLock { state -> MeshNativeClientConnection? in
      if case .ready(let connection) = state.state { return connection }
      return nil
    }
    if let current { return current }
    let id = self.nextWaiter.withLock { id in
      id &+= 1
      return id
    }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let admission = self.state.withLock { state in
          Task.isCancelled
            ? .fail(MeshHTTP2Error(.cancelled, "The RPC was cancelled."))
            : state.admit(id: id, waiter: continuation, waitForReady: waitForReady)
        }
        switch admission {
        case .use(let connection): continuation.resume(returning: connection)
        case .fail(let error): continuation.resume(throwing: MeshHTTP2Error.rpcError(error))
        case .wait: break
        }
      }
    } onCancel: {
      let waiter = self.state.withLock { $0.withdraw(id: id) }
      waiter?.resume(throwing: RPCError(code: .cancelled, message: "The RPC was cancelled."))
    }
  }
}

/// gRPC's connection backoff (doc/connection-backoff.md): each failed attempt waits longer, up to
/// a maximum, with jitter.
struct MeshNativeBackoff {
  let settings: MeshNativeTransportSettings.Backoff
  private var current: Duration

  init(_ settings: MeshNativeTransportSettings.Backoff) {
    self.settings = settings
    self.current = settings.initial
  }

  mutating func reset() {
    self.current = self.settings.initial
  }

  mutating func next() -> Duration {
    let base = self.current
    self.current = min(self.current * self.settings.multiplier, self.settings.maximum)
    let jitter = Double.random(in: -self.settings.jitter...self.settings.jitter)
    return max(.zero, base * (1 + jitter))
  }
}
