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

internal import CMeshOpenSSL
internal import MeshCore
internal import MeshTransport
internal import NIOCore

/// How a connection's TLS ended, for the transport that made it (any thread).
final class MeshNativeTLSOutcome: Sendable {
  private let recorded = MeshMutex<MeshTLSError?>(nil)

  /// Why the handshake or the peer's verification failed; nil if it did not (yet).
  var failure: MeshTLSError? { self.recorded.withLock { $0 } }

  /// Keeps the first failure.
  func record(_ error: MeshTLSError) {
    self.recorded.withLock { $0 = $0 ?? error }
  }
}

/// The TLS layer of a native connection: OpenSSL over memory buffers, between the socket and the
/// HTTP/2 connection handler.
///
/// The handshake starts when the channel becomes active and must end within the handshake
/// timeout. A client's handshake waits for the mesh's verifier to accept the server; a server
/// verifies its client once the handshake completes, reading nothing more from the socket
/// meanwhile. Only then is ``Established`` fired and plaintext passed either way. A failure closes
/// the connection with a ``MeshTLSError``, kept in its outcome.
final class MeshNativeTLSHandler: ChannelDuplexHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer
  typealias OutboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  /// Fired inbound when the peer is verified: the HTTP/2 connection starts on it.
  struct Established {
    let peer: MeshVerifiedPeer
  }

  private enum State {
    case idle
    case handshaking
    case verifying
    case established
    case closed
  }

  private let connection: MeshOpenSSLConnection
  private let tls: MeshNativeTLS
  private let role: MeshOpenSSLContext.Role
  private let handshakeTimeout: Duration
  private let outcome: MeshNativeTLSOutcome
  private var state = State.idle
  private var context: ChannelHandlerContext?
  private var timeout: Scheduled<Void>?
  /// A client's verified server, between the verifier's answer and the handshake's end.
  private var verifiedPeer: MeshVerifiedPeer?
  /// Why a client's verifier refused the server (the handshake then fails with an alert).
  private var rejection: MeshTLSError?
  /// Writes before the peer was verified (none are expected: the HTTP/2 handler starts on
  /// ``Established``).
  private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
  private var flushPending = false
  /// A read asked for while the peer was being verified, issued once it is.
  private var readHeld = false
  private var wasEstablished = false
  private var receivedPlaintext = false
  private var closedLocally = false
  /// Decrypted bytes, reused from read to read.
  private var plaintext = ByteBuffer()

  private static let readChunk = 16 * 1024
  private static let maxPlaintextRead = 64 * 1024

  init(
    tls: MeshNativeTLS,
    role: MeshOpenSSLContext.Role,
    serverName: String?,
    handshakeTimeout: Duration,
    outcome: MeshNativeTLSOutcome = MeshNativeTLSOutcome()
  ) throws(MeshTLSError) {
    let context = try tls.contexts.context(for: role, credentials: tls.credentials)
    self.connection = try context.makeConnection(serverName: serverName)
    self.tls = tls
    self.role = role
    self.handshakeTimeout = handshakeTimeout
    self.outcome = outcome
  }

  private var peerRole: String { self.role == .client ? "server" : "client" }

  // MARK: Channel events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    self.plaintext = context.channel.allocator.buffer(capacity: Self.readChunk)
    if context.channel.isActive { self.startHandshake(context: context) }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.context = nil
    self.timeout?.cancel()
    self.state = .closed
    self.failPendingWrites(ChannelError.ioOnClosedChannel)
  }

  func channelActive(context: ChannelHandlerContext) {
    context.fireChannelActive()
    self.startHandshake(context: context)
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.timeout?.cancel()
    switch self.state {
    case .idle, .handshaking, .verifying:
      self.outcome.record(
        MeshTLSError(
          code: .handshakeFailed,
          message: "The \(self.peerRole) closed the connection during the TLS handshake."
        )
      )
    case .established, .closed:
      // A server refuses a client's certificate after the handshake (OpenSSL 3.0 suspends a
      // handshake for verification only on a client): the client sees it close at once.
      if self.role == .client, self.wasEstablished, !self.receivedPlaintext, !self.closedLocally {
        self.outcome.record(
          MeshTLSError(
            code: .handshakeFailed,
            message: "The server closed the connection right after the TLS handshake, before "
              + "HTTP/2 began: it may not accept this client's certificate or identity."
          )
        )
      }
    }
    self.state = .closed
    self.failPendingWrites(ChannelError.ioOnClosedChannel)
    context.fireChannelInactive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard self.state != .closed else { return }
    guard self.feed(self.unwrapInboundIn(data)) else {
      self.fail(context: context, MeshOpenSSL.error(.handshakeFailed, "OpenSSL's buffer is full"))
      return
    }
    switch self.state {
    case .idle:
      self.startHandshake(context: context)
    case .handshaking:
      self.advanceHandshake(context: context)
    case .verifying, .closed:
      break  // kept, encrypted, until the peer is verified
    case .established:
      self.readPlaintext(context: context)
    }
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    if self.state == .established { context.fireChannelReadComplete() }
  }

  func read(context: ChannelHandlerContext) {
    // Nothing more is read from an unverified peer.
    if self.state == .verifying {
      self.readHeld = true
    } else {
      context.read()
    }
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    let bytes = self.unwrapOutboundIn(data)
    switch self.state {
    case .established:
      self.encrypt(bytes, context: context, promise: promise)
    case .idle, .handshaking, .verifying:
      self.pendingWrites.append((bytes, promise))
    case .closed:
      promise?.fail(ChannelError.ioOnClosedChannel)
    }
  }

  func flush(context: ChannelHandlerContext) {
    if self.state == .established {
      context.flush()
    } else {
      self.flushPending = true
    }
  }

  func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
    if mode == .all {
      self.closedLocally = true
      self.timeout?.cancel()
      if self.state == .established {
        // close_notify, best effort: gRPC does not depend on it.
        self.state = .closed
        ERR_clear_error()
        _ = SSL_shutdown(self.connection.ssl)
        _ = MeshOpenSSL.drainErrors()
        self.writeNetworkBytes(context: context, promise: nil)
        context.flush()
      }
      self.state = .closed
      self.failPendingWrites(ChannelError.ioOnClosedChannel)
    }
    context.close(mode: mode, promise: promise)
  }

  // MARK: Handshake and verification

  private func startHandshake(context: ChannelHandlerContext) {
    guard self.state == .idle else { return }
    self.state = .handshaking
    let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
    let limit = self.handshakeTimeout
    self.timeout = context.eventLoop.scheduleTask(
      in: .nanoseconds(MeshInput.nanoseconds(clamping: limit))
    ) {
      handler.value.timedOut(after: limit)
    }
    self.advanceHandshake(context: context)
  }

  private func timedOut(after limit: Duration) {
    guard self.state == .handshaking || self.state == .verifying, let context = self.context
    else { return }
    self.fail(
      context: context,
      MeshTLSError(
        code: .handshakeFailed,
        message: "The TLS handshake with the \(self.peerRole) did not complete within \(limit)."
      )
    )
  }

  private func advanceHandshake(context: ChannelHandlerContext) {
    ERR_clear_error()
    let result = SSL_do_handshake(self.connection.ssl)
    let code = result == 1 ? SSL_ERROR_NONE : SSL_get_error(self.connection.ssl, result)
    // The reason, read before a write can clear this thread's error queue.
    var failure: MeshTLSError?
    switch code {
    case SSL_ERROR_NONE, SSL_ERROR_WANT_READ, SSL_ERROR_WANT_RETRY_VERIFY:
      break
    default:
      let reasons = MeshOpenSSL.error(
        .handshakeFailed,
        "The TLS handshake with the \(self.peerRole) failed"
      )
      failure = self.rejection ?? reasons
    }
    // Whatever the handshake wrote (its next flight, or the alert it failed with) goes out.
    self.writeNetworkBytes(context: context, promise: nil)
    context.flush()
    guard self.state == .handshaking else { return }  // the write closed the channel
    if let failure {
      self.fail(context: context, failure)
    } else if code == SSL_ERROR_NONE {
      self.handshakeCompleted(context: context)
    } else if code == SSL_ERROR_WANT_RETRY_VERIFY {
      // A client's handshake waits here for the verifier (the server sent its chain).
      self.verify(self.peerChain(), context: context)
    }
  }

  private func handshakeCompleted(context: ChannelHandlerContext) {
    var selected: UnsafePointer<UInt8>?
    var length: UInt32 = 0
    SSL_get0_alpn_selected(self.connection.ssl, &selected, &length)
    let protocolName = selected.map {
      String(decoding: UnsafeBufferPointer(start: $0, count: Int(length)), as: UTF8.self)
    }
    guard protocolName == "h2" else {
      self.fail(
        context: context,
        MeshTLSError(
          code: .handshakeFailed,
          message: "The \(self.peerRole) did not negotiate ALPN h2 (gRPC over TLS requires it); "
            + "it chose \(protocolName.map { "'\($0)'" } ?? "none")."
        )
      )
      return
    }
    switch self.role {
    case .client:
      // Verified during the handshake.
      guard let peer = self.verifiedPeer else {
        self.fail(
          context: context,
          MeshTLSError(
            code: .handshakeFailed,
            message: "The TLS handshake with the server ended without verifying it."
          )
        )
        return
      }
      self.establish(peer, context: context)
    case .server:
      self.verify(self.peerChain(), context: context)
    }
  }

  /// Runs the mesh's verifier on `chain`; the answer comes back to ``verified(_:)``.
  private func verify(_ chain: [[UInt8]]?, context: ChannelHandlerContext) {
    self.state = .verifying
    let credentials = self.tls.credentials
    let policy = self.tls.peers
    let peerRole = self.peerRole
    let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
    let verified = context.eventLoop.makePromise(of: Result<MeshVerifiedPeer, MeshTLSError>.self)
    // swift-certificates' verifier is async: it runs in a task of its own (NIO's
    // `completeWithTask`), and its outcome comes back to this event loop. Nothing is read or
    // written meanwhile; the handler drops the outcome if the connection closed.
    verified.completeWithTask {
      guard let chain, !chain.isEmpty else {
        return .failure(
          MeshTLSError(
            code: chain == nil ? .malformedPEM : .untrustedCertificate,
            message: chain == nil
              ? "OpenSSL could not encode the \(peerRole)'s certificate chain."
              : "The \(peerRole) presented no certificate."
          )
        )
      }
      return await credentials.verifyPeer(derChain: chain, policy: policy, peerRole: peerRole)
    }
    verified.futureResult.whenSuccess { result in
      handler.value.verified(result)
    }
  }

  /// The peer's chain as DER, leaf first (nil if OpenSSL could not encode it).
  private func peerChain() -> [[UInt8]]? {
    let ssl = self.connection.ssl
    var chain: [[UInt8]] = []
    if self.role == .server {
      // On a server the sent chain excludes the leaf.
      guard let leaf = SSL_get1_peer_certificate(ssl) else { return [] }
      defer { X509_free(leaf) }
      guard let der = MeshOpenSSL.der(of: leaf) else { return nil }
      chain.append(der)
    }
    let count = mesh_ssl_chain_count(ssl)
    for index in 0..<max(count, 0) {
      guard let certificate = mesh_ssl_chain_certificate(ssl, index),
        let der = MeshOpenSSL.der(of: certificate)
      else { return nil }
      chain.append(der)
    }
    return chain
  }

  private func verified(_ result: Result<MeshVerifiedPeer, MeshTLSError>) {
    guard self.state == .verifying, let context = self.context else { return }
    self.tls.onPeer?(result)
    switch (self.role, result) {
    case (.client, .success(let peer)):
      self.verifiedPeer = peer
      self.connection.verdict.pointee = MESH_SSL_VERDICT_ACCEPTED
      self.resumeHandshake(context: context)
    case (.client, .failure(let error)):
      // The handshake fails with an alert to the server, and with this error here.
      self.rejection = error
      self.connection.verdict.pointee = MESH_SSL_VERDICT_REJECTED
      self.resumeHandshake(context: context)
    case (.server, .success(let peer)):
      self.establish(peer, context: context)
    case (.server, .failure(let error)):
      self.fail(context: context, error)
    }
  }

  private func resumeHandshake(context: ChannelHandlerContext) {
    self.state = .handshaking
    self.advanceHandshake(context: context)
    self.releaseHeldRead(context: context)
  }

  private func establish(_ peer: MeshVerifiedPeer, context: ChannelHandlerContext) {
    self.timeout?.cancel()
    self.timeout = nil
    self.state = .established
    self.wasEstablished = true
    // Writes made before (none expected) go first, then the HTTP/2 handler starts.
    let pending = self.pendingWrites
    self.pendingWrites.removeAll()
    for (bytes, promise) in pending {
      guard self.state == .established else {
        promise?.fail(ChannelError.ioOnClosedChannel)
        continue
      }
      self.encrypt(bytes, context: context, promise: promise)
    }
    if self.state == .established, self.flushPending || !pending.isEmpty {
      self.flushPending = false
      context.flush()
    }
    guard self.state == .established else { return }
    context.fireUserInboundEventTriggered(Established(peer: peer))
    // What the peer sent meanwhile.
    guard self.state == .established else { return }
    self.readPlaintext(context: context)
    if self.state == .established { context.fireChannelReadComplete() }
    self.releaseHeldRead(context: context)
  }

  private func releaseHeldRead(context: ChannelHandlerContext) {
    guard self.readHeld, self.state != .closed, self.state != .verifying else { return }
    self.readHeld = false
    context.read()
  }

  // MARK: Bytes

  /// Hands bytes from the network to OpenSSL.
  private func feed(_ bytes: ByteBuffer) -> Bool {
    bytes.withUnsafeReadableBytes { buffer in
      var offset = 0
      while offset < buffer.count {
        let count = Int32(clamping: buffer.count - offset)
        let written = BIO_write(self.connection.input, buffer.baseAddress! + offset, count)
        guard written > 0 else { return false }
        offset += Int(written)
      }
      return true
    }
  }

  /// Decrypts what OpenSSL can and passes it on, at most 64 KiB a read.
  private func readPlaintext(context: ChannelHandlerContext) {
    let ssl = self.connection.ssl
    var outcome: Int32 = 1
    while outcome == 1 {
      self.plaintext.clear()
      while outcome == 1, self.plaintext.readableBytes < Self.maxPlaintextRead {
        ERR_clear_error()
        self.plaintext.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readChunk) {
          buffer in
          var read = 0
          outcome = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &read)
          return outcome == 1 ? read : 0
        }
      }
      if self.plaintext.readableBytes > 0 {
        self.receivedPlaintext = true
        context.fireChannelRead(self.wrapInboundOut(self.plaintext))
        guard self.state == .established else { return }
      }
    }
    let code = SSL_get_error(ssl, outcome)
    // The reason, read before a write can clear this thread's error queue.
    let failure: MeshTLSError?
    switch code {
    case SSL_ERROR_WANT_READ, SSL_ERROR_ZERO_RETURN:
      failure = nil
    default:
      failure = MeshOpenSSL.error(.handshakeFailed, "TLS with the \(self.peerRole) failed")
    }
    // Reading can make OpenSSL write (a key update's answer, an alert).
    if BIO_ctrl_pending(self.connection.output) > 0 {
      self.writeNetworkBytes(context: context, promise: nil)
      context.flush()
    }
    guard self.state == .established else { return }
    if let failure {
      self.fail(context: context, failure)
    } else if code == SSL_ERROR_ZERO_RETURN {
      // The peer's close_notify: nothing more will come.
      self.state = .closed
      context.close(promise: nil)
    }
  }

  private func encrypt(
    _ plaintext: ByteBuffer,
    context: ChannelHandlerContext,
    promise: EventLoopPromise<Void>?
  ) {
    let ssl = self.connection.ssl
    var remaining = plaintext
    while remaining.readableBytes > 0 {
      ERR_clear_error()
      var written = 0
      let outcome = remaining.withUnsafeReadableBytes { buffer in
        SSL_write_ex(ssl, buffer.baseAddress, buffer.count, &written)
      }
      guard outcome == 1 else {
        let error = MeshOpenSSL.error(
          .handshakeFailed,
          "TLS could not encrypt for the \(self.peerRole)"
        )
        promise?.fail(error)
        self.fail(context: context, error)
        return
      }
      remaining.moveReaderIndex(forwardBy: written)
    }
    self.writeNetworkBytes(context: context, promise: promise)
  }

  /// Writes what OpenSSL has for the network (not flushed); `promise` completes with it, in order
  /// with the writes before it.
  private func writeNetworkBytes(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
    let output = self.connection.output
    var pending = Int(BIO_ctrl_pending(output))
    var ciphertext = context.channel.allocator.buffer(capacity: pending)
    while pending > 0 {
      let read = ciphertext.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { buffer in
        Int(max(0, BIO_read(output, buffer.baseAddress, Int32(clamping: buffer.count))))
      }
      guard read > 0 else { break }
      pending = Int(BIO_ctrl_pending(output))
    }
    if ciphertext.readableBytes == 0 && promise == nil { return }
    context.write(self.wrapOutboundOut(ciphertext), promise: promise)
  }

  // MARK: Failure

  private func fail(context: ChannelHandlerContext, _ error: MeshTLSError) {
    guard self.state != .closed else { return }
    self.outcome.record(error)
    self.timeout?.cancel()
    self.state = .closed
    self.failPendingWrites(error)
    context.fireErrorCaught(error)
    context.close(promise: nil)
  }

  private func failPendingWrites(_ error: any Error) {
    let pending = self.pendingWrites
    self.pendingWrites.removeAll()
    for (_, promise) in pending { promise?.fail(error) }
  }
}
