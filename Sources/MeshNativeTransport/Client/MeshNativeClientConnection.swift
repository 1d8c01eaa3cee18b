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

internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import MeshCore
internal import MeshTransport
internal import NIOCore

/// One HTTP/2 connection of the native client transport: an nghttp2 session in a NIO channel
/// handler, with RPC streams multiplexed on it.
///
/// Tasks reach the connection only through ``enqueue(_:)``: commands are queued under a lock and
/// the event loop is woken once per batch, however many RPCs wrote meanwhile; the loop runs them
/// all, then frames and writes everything with one flush. Responses go the other way: the bytes
/// of one read are parsed at once and each stream's parts are handed over together.
///
/// Everything but the command queue, the ready/closed signals and the immutable fields is
/// confined to the channel's event loop (`@unchecked Sendable` on that discipline).
final class MeshNativeClientConnection: ChannelInboundHandler, MeshHTTP2SessionDelegate,
  @unchecked Sendable
{
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  enum Command: Sendable {
    case open(MeshNativeClientStream, Metadata)
    case data(MeshNativeClientStream, ByteBuffer)
    case endRequest(MeshNativeClientStream)
    case reset(MeshNativeClientStream)
    case consume(MeshNativeClientStream)
    case release(MeshNativeClientStream)
    case goAway
  }

  let settings: MeshNativeTransportSettings
  let scheme: String
  /// Over TLS: the connection starts when the TLS handler has verified the server.
  let secured: Bool
  let authority: String
  let eventLoop: any EventLoop
  let allocator: ByteBufferAllocator
  private let queue = MeshNativeCommandQueue<Command>()
  /// Fired when the peer's first SETTINGS arrived: the connection can carry RPCs.
  let ready = MeshSignal()
  /// Fired when the connection will take no new streams (GOAWAY either way, or closed).
  let goingAway = MeshSignal()
  /// Fired once the channel is closed and every stream ended.
  let closed = MeshSignal()
  private let peers = MeshMutex((remote: "unknown", local: "unknown"))
  /// The error code of the peer's first GOAWAY, if it sent one.
  private let peerGoAway = MeshMutex<UInt32?>(nil)

  /// Whether the peer ended the connection cleanly: a GOAWAY with NO_ERROR (a server's maximum
  /// age, or its graceful stop), rather than an error GOAWAY or a bare close.
  var wentAwayCleanly: Bool { self.peerGoAway.withLock { $0 } == 0 }

  // MARK: Event loop only

  private var context: ChannelHandlerContext?
  private var session: MeshHTTP2Session?
  private var streams: [Int32: MeshNativeClientStream] = [:]
  private var closeError: MeshHTTP2Error?
  private var isGoingAway = false
  private var readPending = false
  /// The next keepalive ping, or the wait for its answer.
  private var keepaliveTimer: Scheduled<Void>?
  private var pingOutstanding = false

  init(
    settings: MeshNativeTransportSettings,
    scheme: String,
    secured: Bool,
    authority: String,
    eventLoop: any EventLoop,
    allocator: ByteBufferAllocator,
    onGoingAway: @escaping @Sendable (MeshNativeClientConnection) -> Void
  ) {
    self.settings = settings
    self.scheme = scheme
    self.secured = secured
    self.authority = authority
    self.eventLoop = eventLoop
    self.allocator = allocator
    self.onGoingAway = onGoingAway
  }

  /// Called once, on the event loop, when the connection stops taking new streams.
  private let onGoingAway: @Sendable (MeshNativeClientConnection) -> Void

  private func wentAway() {
    guard !self.goingAway.hasFired else { return }
    self.onGoingAway(self)
    self.goingAway.fire()
  }

  /// The peer as gRPC describes it (`ipv4:127.0.0.1:443`), and this side.
  var remotePeer: String { self.peers.withLock { $0.remote } }
  var localPeer: String { self.peers.withLock { $0.local } }

  // MARK: From any task

  /// Queues `command` for the event loop, waking it if this is the batch's first.
  func enqueue(_ command: Command) {
    switch self.queue.enqueue(command) {
    case .schedule:
      self.eventLoop.execute { self.runCommands() }
    case .queued:
      break
    case .refused(let error):
      Self.refuse(command, error)
    }
  }

  /// A stream for an RPC on this connection (nothing is sent until its metadata is written).
  func makeStream(descriptor: MethodDescriptor, options: CallOptions) -> MeshNativeClientStream {
    MeshNativeClientStream(
      descriptor: descriptor,
      options: options,
      connection: self,
      allocator: self.allocator
    )
  }

  /// Closes the connection now: streams in flight fail with `reason`.
  func close() {
    self.eventLoop.execute {
      self.context?.close(promise: nil)
    }
  }

  private static func refuse(_ command: Command, _ error: MeshHTTP2Error) {
    switch command {
    case .open(let stream, _):
      // Never sent: the server did not see it, and the mesh may send it elsewhere at once.
      let unprocessed = Self.unprocessed(error.code, error.message)
      stream.failRequest(unprocessed)
      stream.failResponse(unprocessed)
    case .data(let stream, _), .endRequest(let stream):
      stream.failRequest(error)
      stream.failResponse(error)
    case .reset, .consume, .release, .goAway:
      break
    }
  }

  /// The error of an RPC the server never processed (``MeshUnprocessedRPC`` its cause).
  private static func unprocessed(_ code: RPCError.Code, _ message: String) -> RPCError {
    RPCError(code: code, message: message, cause: MeshUnprocessedRPC(message))
  }

  // MARK: Channel events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if context.channel.isActive, !self.secured { self.start(context: context) }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.keepaliveTimer?.cancel()
    // The pipeline is torn down (also for a channel that never became active): no reference
    // to it may outlive it.
    self.context = nil
    self.session = nil
  }

  func channelActive(context: ChannelHandlerContext) {
    if !self.secured { self.start(context: context) }
    context.fireChannelActive()
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if self.secured, event is MeshNativeTLSHandler.Established {
      self.start(context: context)
    }
    context.fireUserInboundEventTriggered(event)
  }

  private func start(context: ChannelHandlerContext) {
    guard self.session == nil else { return }
    let remote = context.channel.remoteAddress.map { MeshNativePeer.describe($0) } ?? "unknown"
    let local = context.channel.localAddress.map { MeshNativePeer.describe($0) } ?? "unknown"
    self.peers.withLock { $0 = (remote, local) }
    do {
      self.session = try MeshHTTP2Session(
        role: .client,
        settings: self.settings.http2,
        delegate: self,
        allocator: context.channel.allocator
      )
      self.flushSession()
      self.scheduleKeepalive()
    } catch {
      self.closeError = error
      context.close(promise: nil)
    }
  }

  // MARK: Keepalive (event loop)

  private func scheduleKeepalive() {
    guard let keepalive = self.settings.keepalive else { return }
    self.keepaliveTimer = self.eventLoop.scheduleTask(
      in: .nanoseconds(MeshInput.nanoseconds(clamping: keepalive.interval))
    ) {
      self.sendKeepalive(keepalive)
    }
  }

  private func sendKeepalive(_ keepalive: MeshNativeTransportSettings.Keepalive) {
    guard let session = self.session else { return }
    guard keepalive.withoutCalls || !self.streams.isEmpty else {
      self.scheduleKeepalive()
      return
    }
    session.ping()
    self.pingOutstanding = true
    self.flushSession()
    self.keepaliveTimer = self.eventLoop.scheduleTask(
      in: .nanoseconds(MeshInput.nanoseconds(clamping: keepalive.timeout))
    ) {
      // No answer: the peer (or the path to it) is gone; its streams fail and RPCs move on.
      self.closeError = MeshHTTP2Error(
        .unavailable,
        "\(self.authority) did not answer a keepalive ping within \(keepalive.timeout)."
      )
      self.context?.close(promise: nil)
    }
  }

  func sessionReceivedPingAcknowledgement() {
    // An answer to our ping; one we did not send (a peer's stray ACK) changes nothing.
    guard self.pingOutstanding else { return }
    self.pingOutstanding = false
    self.keepaliveTimer?.cancel()
    self.scheduleKeepalive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let bytes = self.unwrapInboundIn(data)
    guard let session = self.session else { return }
    do {
      try session.receive(bytes)
    } catch {
      self.closeError = error
      self.flushSession()
      context.close(promise: nil)
      return
    }
    self.readPending = true
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    if self.readPending {
      self.readPending = false
      self.flushSession()
    }
    context.fireChannelReadComplete()
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.keepaliveTimer?.cancel()
    let error =
      self.closeError
      ?? MeshHTTP2Error(.unavailable, "The connection to \(self.authority) closed.")
    let commands = self.queue.close(error)
    for command in commands { Self.refuse(command, error) }
    let streams = self.streams.values
    self.streams.removeAll()
    for stream in streams { self.end(stream, with: error) }
    self.session = nil
    self.context = nil
    self.wentAway()
    self.closed.fire()
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if self.closeError == nil {
      self.closeError = MeshHTTP2Error(
        .unavailable,
        "The connection to \(self.authority) failed: \(error)"
      )
    }
    context.close(promise: nil)
  }

  // MARK: Commands (event loop)

  private func runCommands() {
    let commands = self.queue.take()
    guard let session = self.session else {
      let error =
        self.closeError ?? MeshHTTP2Error(.unavailable, "The connection is not open.")
      for command in commands { Self.refuse(command, error) }
      // Told to go away before HTTP/2 started (still in its TLS handshake): it carries no RPC,
      // so it closes now.
      if commands.contains(where: { if case .goAway = $0 { true } else { false } }) {
        self.context?.close(promise: nil)
      }
      return
    }
    for command in commands {
      self.run(command, on: session)
    }
    self.flushSession()
  }

  private func run(_ command: Command, on session: MeshHTTP2Session) {
    switch command {
    case .open(let stream, let metadata):
      guard stream.id == 0, !stream.closed else { return }
      if self.isGoingAway {
        let error = Self.unprocessed(
          .unavailable,
          "The connection was going away: the RPC was not sent."
        )
        stream.failRequest(error)
        stream.failResponse(error)
        stream.closed = true
        return
      }
      do {
        let headers = try MeshGRPCWire.requestHeaders(
          path: "/" + stream.descriptor.fullyQualifiedMethod,
          scheme: self.scheme,
          authority: self.authority,
          timeout: stream.timeout,
          metadata: metadata
        )
        stream.id = try session.submitRequest(headers, endStream: false)
        self.streams[stream.id] = stream
      } catch {
        stream.closed = true
        stream.failRequest(error)
        stream.failResponse(error)
      }
    case .data(let stream, var bytes):
      let count = bytes.readableBytes
      guard !stream.closed, !stream.requestEnded else {
        stream.framed(count)
        return
      }
      if stream.data == nil {
        stream.data = bytes
      } else {
        stream.data!.writeBuffer(&bytes)
      }
      if stream.id != 0 { session.resumeData(stream: stream.id) }
    case .endRequest(let stream):
      guard !stream.closed, !stream.requestEnded else { return }
      stream.requestEnded = true
      if stream.id != 0 { session.resumeData(stream: stream.id) }
    case .reset(let stream):
      guard !stream.closed else { return }
      stream.closed = true
      if stream.id != 0 {
        session.reset(stream: stream.id, code: .cancel)
        self.remove(stream, on: session)
      }
    case .consume(let stream):
      // A closed stream's held-back bytes went back to the connection when it was removed.
      guard stream.heldBack > 0 else { return }
      session.consume(stream: stream.id, count: stream.heldBack)
      stream.heldBack = 0
    case .release(let stream):
      if !stream.closed {
        stream.closed = true
        if stream.id != 0 {
          session.reset(stream: stream.id, code: .cancel)
          self.remove(stream, on: session)
        }
      }
    case .goAway:
      guard !self.isGoingAway else { return }
      self.isGoingAway = true
      session.goAway(graceful: true)
      self.wentAway()
      self.closeIfIdle()
    }
  }

  /// Frames what the session has to send and writes it with one flush.
  /// Frames and writes what the session has to send; closes the channel after that write if
  /// `thenClose` (or the session is over).
  private func flushSession(thenClose: Bool = false) {
    guard let session = self.session, let context = self.context else { return }
    MeshNativeData.flush(session, to: context, thenClose: thenClose)
  }

  /// Closes the connection once it is going away and has no stream left: checked after the
  /// current call returns (never from inside nghttp2, which must not be re-entered), after what
  /// is queued has been written.
  private func closeIfIdle() {
    guard self.isGoingAway, self.streams.isEmpty else { return }
    self.eventLoop.execute {
      guard self.isGoingAway, self.streams.isEmpty else { return }
      self.flushSession(thenClose: true)
    }
  }

  /// Takes `stream` out of the table: the bytes it held back go back to the connection's window.
  private func remove(_ stream: MeshNativeClientStream, on session: MeshHTTP2Session) {
    self.streams[stream.id] = nil
    if stream.heldBack > 0 {
      session.consumeConnection(count: stream.heldBack)
      stream.heldBack = 0
    }
  }

  /// Ends `stream` with `error` (unless its response already ended).
  private func end(_ stream: MeshNativeClientStream, with error: any Error) {
    stream.closed = true
    stream.failRequest(error)
    stream.endResponse(error)
  }

  // MARK: Session events (event loop)

  func sessionReceivedSettings() {
    self.ready.fire()
  }

  func session(stream id: Int32, header name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
    -> Bool
  {
    guard let stream = self.streams[id] else { return true }
    // SETTINGS_MAX_HEADER_LIST_SIZE is only advertised by nghttp2: it is enforced here (RFC 9113
    // §6.5.2's size: name, value and 32 per field). Past it, nghttp2 resets the stream.
    stream.headerBytes += name.count + value.count + 32
    guard stream.headerBytes <= self.settings.maxHeaderListSize else { return false }
    let name = String(decoding: name, as: UTF8.self)
    let value = String(decoding: value, as: UTF8.self)
    switch name {
    case ":status":
      stream.httpStatus = Int(value)
    case "content-type":
      stream.contentType = value
    case "grpc-status":
      stream.grpcStatus = value
    case "grpc-message":
      stream.grpcMessage = value
    case "grpc-encoding":
      if value != "identity" {
        stream.malformedHeaders = "The server compressed the response with \(value), not asked for."
      }
    default:
      if name.hasPrefix(":") { return true }
      if !MeshGRPCWire.addReceived(name: name, value: value, to: &stream.headers) {
        stream.malformedHeaders = "The value of \(name) is not base64."
      }
    }
    return true
  }

  func session(
    stream id: Int32,
    headersEndingStream endStream: Bool,
    category: MeshHTTP2Session.Block
  ) {
    guard let stream = self.streams[id], !stream.closed else { return }
    let first = !stream.receivedFirstHeaders
    stream.receivedFirstHeaders = true
    defer {
      stream.headers = Metadata()
      stream.grpcStatus = nil
      stream.grpcMessage = nil
    }
    if let malformed = stream.malformedHeaders {
      self.fail(stream, RPCError(code: .internalError, message: malformed))
      return
    }
    if first {
      // An informational response (1xx) is not the response; its headers are dropped.
      if let status = stream.httpStatus, (100..<200).contains(status) {
        stream.receivedFirstHeaders = false
        stream.httpStatus = nil
        return
      }
      guard stream.httpStatus == 200 else {
        let status = stream.httpStatus ?? 0
        self.fail(
          stream,
          RPCError(
            code: MeshGRPCWire.code(forHTTPStatus: status),
            message: "The server answered with HTTP status \(status)."
          )
        )
        return
      }
      guard let contentType = stream.contentType, contentType.hasPrefix("application/grpc")
      else {
        self.fail(
          stream,
          RPCError(
            code: .unknown,
            message: "The server answered with content-type \(stream.contentType ?? "none")."
          )
        )
        return
      }
      if endStream {
        // Trailers-only: the status and its metadata in one block.
        self.deliverStatus(stream)
      } else {
        stream.inbound.append(.metadata(stream.headers))
      }
    } else {
      // Trailers: the status.
      guard endStream else {
        self.fail(stream, RPCError(code: .internalError, message: "Headers after the response's."))
        return
      }
      self.deliverStatus(stream)
    }
  }

  private func deliverStatus(_ stream: MeshNativeClientStream) {
    if stream.deframer.pendingBytes > 0 {
      self.fail(
        stream,
        RPCError(code: .internalError, message: "The response ended inside a message.")
      )
      return
    }
    let status: Status
    if let text = stream.grpcStatus, let value = Int(text), let code = Status.Code(rawValue: value)
    {
      status = Status(
        code: code,
        message: stream.grpcMessage.map(MeshGRPCWire.decodeMessage) ?? ""
      )
    } else {
      status = Status(
        code: .unknown,
        message: stream.grpcStatus.map { "Invalid grpc-status '\($0)'." }
          ?? "The response ended without a grpc-status."
      )
    }
    stream.inbound.append(.status(status, stream.headers))
    stream.inbound.finish()
    stream.responseEnded = true
  }

  func session(stream id: Int32, data: UnsafeRawBufferPointer) {
    guard let session = self.session else { return }
    guard let stream = self.streams[id], !stream.closed else {
      // A stream this side has given up on: its bytes still count against the connection.
      session.consumeConnection(count: data.count)
      return
    }
    do {
      try MeshNativeData.receive(
        data,
        stream: id,
        deframer: &stream.deframer,
        heldBack: &stream.heldBack,
        inbound: stream.inbound,
        session: session,
        part: { .message($0) }
      )
    } catch {
      self.fail(stream, RPCError(code: error.code, message: error.message))
    }
  }

  func session(streamEndedByData id: Int32) {
    guard let stream = self.streams[id], !stream.closed else { return }
    // A response must end with trailers.
    self.fail(
      stream,
      RPCError(code: .internalError, message: "The response ended without trailers.")
    )
  }

  func session(streamClosed id: Int32, errorCode: UInt32) {
    guard let stream = self.streams[id], let session = self.session else {
      self.closeIfIdle()
      return
    }
    self.remove(stream, on: session)
    if !stream.closed {
      stream.closed = true
      if stream.responseEnded {
        // Both sides ended: writes after the response are refused quietly.
        stream.failRequest(RPCError(code: .cancelled, message: "The RPC has ended."))
      } else {
        let code = MeshHTTP2ErrorCode(rawValue: errorCode)
        let error: RPCError
        if code == .refusedStream {
          // RST_STREAM(REFUSED_STREAM), or a stream above the last one a GOAWAY lets through
          // (nghttp2 closes those so): the server did not process it (RFC 9113 §8.7).
          error = Self.unprocessed(
            .unavailable,
            "The server refused the stream (REFUSED_STREAM): the RPC was not processed."
          )
        } else {
          error = RPCError(
            code: code == .noError ? .internalError : code.rpcCode,
            message: code == .noError
              ? "The stream closed before the response ended."
              : "The server reset the stream (HTTP/2 error \(errorCode))."
          )
        }
        stream.failRequest(error)
        stream.endResponse(error)
      }
    }
    self.closeIfIdle()
  }

  func session(goAwayWithLastStream lastStreamID: Int32, errorCode: UInt32) {
    self.peerGoAway.withLock { $0 = $0 ?? errorCode }
    self.isGoingAway = true
    self.wentAway()
    self.closeIfIdle()
  }

  func session(stream id: Int32, readInto buffer: UnsafeMutableRawBufferPointer)
    -> (count: Int, end: MeshHTTP2Session.DataEnd)?
  {
    guard let stream = self.streams[id] else { return (0, .endStream) }
    let count = MeshNativeData.move(from: &stream.data, into: buffer)
    if count == 0 {
      return stream.requestEnded ? (0, .endStream) : nil
    }
    stream.framed(count)
    let last = stream.requestEnded && stream.data == nil
    return (count, last ? .endStream : .more)
  }

  /// Fails `stream` with `error` and resets it.
  private func fail(_ stream: MeshNativeClientStream, _ error: RPCError) {
    stream.closed = true
    stream.failRequest(error)
    stream.failResponse(error)
    guard let session = self.session else { return }
    session.reset(stream: stream.id, code: .cancel)
    self.remove(stream, on: session)
  }
}
