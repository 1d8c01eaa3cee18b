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
/// The handshake starts when the channel becomes active. Once it completes, the peer's chain is
/// verified (asynchronously: swift-certificates' verifier); only then is ``Established`` fired
/// and plaintext passed either way. Bytes the peer sends meanwhile wait, encrypted, in OpenSSL's
/// input buffer. A failure closes the connection with a ``MeshTLSError``, kept in its outcome.
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
  private var state = State.idle
  private var context: ChannelHandlerContext?
  /// Writes before the peer was verified (none are expected: the HTTP/2 handler starts on
  /// ``Established``).
  private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
  private var flushPending = false
  /// Whether the peer was verified, and whether any plaintext came from it since.
  private var wasEstablished = false
  private var receivedPlaintext = false
  private let outcome: MeshNativeTLSOutcome

  private static let readChunk = 16 * 1024

  init(
    tls: MeshNativeTLS,
    role: MeshOpenSSLContext.Role,
    serverName: String?,
    outcome: MeshNativeTLSOutcome = MeshNativeTLSOutcome()
  ) throws(MeshTLSError) {
    let context = try tls.contexts.context(for: role, credentials: tls.credentials)
    self.connection = try context.makeConnection(serverName: serverName)
    self.tls = tls
    self.role = role
    self.outcome = outcome
  }

  private var peerRole: String { self.role == .client ? "server" : "client" }

  // MARK: Channel events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if context.channel.isActive { self.startHandshake(context: context) }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.context = nil
    self.state = .closed
    self.failPendingWrites(ChannelError.ioOnClosedChannel)
  }

  func channelActive(context: ChannelHandlerContext) {
    context.fireChannelActive()
    self.startHandshake(context: context)
  }

  func channelInactive(context: ChannelHandlerContext) {
    switch self.state {
    case .idle, .handshaking, .verifying:
      self.record(
        MeshTLSError(
          code: .handshakeFailed,
          message: "The \(self.peerRole) closed the connection during the TLS handshake."
        )
      )
    case .established, .closed:
      // A server refuses a client's certificate after the handshake (OpenSSL 3.0 suspends a
      // handshake for verification only on a client): the client sees it close at once.
      if self.role == .client, self.wasEstablished, !self.receivedPlaintext {
        self.record(
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
    let bytes = self.unwrapInboundIn(data)
    guard self.feed(bytes) else {
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
      if self.state == .established {
        // close_notify, best effort: gRPC does not depend on it.
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
    self.advanceHandshake(context: context)
  }

  private func advanceHandshake(context: ChannelHandlerContext) {
    ERR_clear_error()
    let result = SSL_do_handshake(self.connection.ssl)
    if result == 1 {
      self.writeNetworkBytes(context: context, promise: nil)
      context.flush()
      self.handshakeCompleted(context: context)
      return
    }
    let code = SSL_get_error(self.connection.ssl, result)
    // Whatever the handshake wrote (its next flight, or the alert it failed with) goes out.
    self.writeNetworkBytes(context: context, promise: nil)
    context.flush()
    if code == SSL_ERROR_WANT_READ { return }
    self.fail(
      context: context,
      MeshOpenSSL.error(.handshakeFailed, "The TLS handshake with the \(self.peerRole) failed")
    )
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
    let chain = self.peerChain()
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
      guard let chain else {
        return .failure(
          MeshTLSError(
            code: .malformedPEM,
            message: "OpenSSL could not encode the \(peerRole)'s certificate chain."
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
    switch result {
    case .success(let peer):
      self.state = .established
      self.wasEstablished = true
      context.fireUserInboundEventTriggered(Established(peer: peer))
      // Writes made before (none expected), then what the peer sent meanwhile.
      let pending = self.pendingWrites
      self.pendingWrites.removeAll()
      for (bytes, promise) in pending {
        guard self.state == .established else {
          promise?.fail(ChannelError.ioOnClosedChannel)
          continue
        }
        self.encrypt(bytes, context: context, promise: promise)
      }
      if self.flushPending || !pending.isEmpty {
        self.flushPending = false
        context.flush()
      }
      if self.state == .established {
        self.readPlaintext(context: context)
        if self.state == .established { context.fireChannelReadComplete() }
      }
    case .failure(let error):
      self.fail(context: context, error)
    }
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

  /// Decrypts what OpenSSL can and passes it on in one read.
  private func readPlaintext(context: ChannelHandlerContext) {
    let ssl = self.connection.ssl
    var plaintext = context.channel.allocator.buffer(capacity: Self.readChunk)
    var outcome: Int32 = 1
    while outcome == 1 {
      ERR_clear_error()
      plaintext.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readChunk) { buffer in
        var read = 0
        outcome = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &read)
        return outcome == 1 ? read : 0
      }
    }
    let code = SSL_get_error(ssl, outcome)
    if plaintext.readableBytes > 0 {
      self.receivedPlaintext = true
      context.fireChannelRead(self.wrapInboundOut(plaintext))
    }
    // Reading can make OpenSSL write (a key update's answer, an alert).
    if BIO_ctrl_pending(self.connection.output) > 0 {
      self.writeNetworkBytes(context: context, promise: nil)
      context.flush()
    }
    guard self.state == .established else { return }
    switch code {
    case SSL_ERROR_WANT_READ:
      return
    case SSL_ERROR_ZERO_RETURN:
      // The peer's close_notify: nothing more will come.
      self.state = .closed
      context.close(promise: nil)
    default:
      self.fail(
        context: context,
        MeshOpenSSL.error(.handshakeFailed, "TLS with the \(self.peerRole) failed")
      )
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

  /// Writes what OpenSSL has for the network (not flushed); `promise` completes with it.
  private func writeNetworkBytes(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
    let output = self.connection.output
    var pending = Int(BIO_ctrl_pending(output))
    guard pending > 0 else {
      promise?.succeed()
      return
    }
    var ciphertext = context.channel.allocator.buffer(capacity: pending)
    while pending > 0 {
      let read = ciphertext.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { buffer in
        Int(max(0, BIO_read(output, buffer.baseAddress, Int32(clamping: buffer.count))))
      }
      guard read > 0 else { break }
      pending = Int(BIO_ctrl_pending(output))
    }
    context.write(self.wrapOutboundOut(ciphertext), promise: promise)
  }

  // MARK: Failure

  private func record(_ error: MeshTLSError) {
    self.outcome.record(error)
  }

  private func fail(context: ChannelHandlerContext, _ error: MeshTLSError) {
    guard self.state != .closed else { return }
    self.record(error)
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
