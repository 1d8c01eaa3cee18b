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

/// One accepted HTTP/2 connection of the native server transport: an nghttp2 session in a NIO
/// channel handler. Each request stream becomes an RPC handed to ``onStream``; handlers' writes
/// come back as batched commands, as on the client.
///
/// Confined to the channel's event loop except the command queue and the immutable fields
/// (`@unchecked Sendable` on that discipline).
final class MeshNativeServerConnection: ChannelInboundHandler, MeshHTTP2SessionDelegate,
  @unchecked Sendable
{
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  enum Command: Sendable {
    case headers(MeshNativeServerStream, Metadata)
    case data(MeshNativeServerStream, ByteBuffer)
    case status(MeshNativeServerStream, Status, Metadata)
    case finish(MeshNativeServerStream)
    case reset(MeshNativeServerStream)
    case consume(MeshNativeServerStream)
    case release(MeshNativeServerStream)
    case goAway
  }

  /// A request whose headers are complete: its stream, the method, and the peers.
  struct Accepted: Sendable {
    var stream: MeshNativeServerStream
    var descriptor: MethodDescriptor
    var remotePeer: String
    var localPeer: String
    /// The client's verified identity (mTLS).
    var peer: MeshVerifiedPeer?
  }

  let settings: MeshNativeTransportSettings
  let maxRequestBytes: Int
  /// The server's methods by path; others get a descriptor made from the path.
  let methods: [String: MethodDescriptor]
  /// Over TLS: the connection starts when the TLS handler has verified the client.
  let secured: Bool
  let eventLoop: any EventLoop
  let allocator = ByteBufferAllocator()
  private let queue = MeshNativeCommandQueue<Command>()
  private let onStream: @Sendable (Accepted) -> Void
  /// Completed once the channel has closed (by the transport).
  let closedPromise: EventLoopPromise<Void>
  var closedFuture: EventLoopFuture<Void> { self.closedPromise.futureResult }

  // MARK: Event loop only

  private var context: ChannelHandlerContext?
  private var session: MeshHTTP2Session?
  private var streams: [Int32: MeshNativeServerStream] = [:]
  private var readPending = false
  private var draining = false
  private var finalGoAwaySent = false
  /// The connection's age and idle limits, and the grace after its age.
  private var ageTimer: Scheduled<Void>?
  private var graceTimer: Scheduled<Void>?
  private var idleTimer: Scheduled<Void>?
  /// The client's pings, policed (gRFC A8).
  private var pings: MeshNativePingStrikes
  /// Sent away for pinging too often: the GOAWAY is out and the channel closing.
  private var calmed = false
  private var remotePeer = "unknown"
  private var localPeer = "unknown"
  private var verifiedPeer: MeshVerifiedPeer?

  init(
    settings: MeshNativeTransportSettings,
    maxRequestBytes: Int,
    methods: [String: MethodDescriptor] = [:],
    secured: Bool,
    eventLoop: any EventLoop,
    onStream: @escaping @Sendable (Accepted) -> Void
  ) {
    self.settings = settings
    self.maxRequestBytes = maxRequestBytes
    self.methods = methods
    self.pings = MeshNativePingStrikes(settings.permittedPings)
    self.secured = secured
    self.eventLoop = eventLoop
    self.onStream = onStream
    self.closedPromise = eventLoop.makePromise()
  }

  // MARK: From any task

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

  /// Closes the connection now: every stream's RPC is cancelled.
  func close() {
    self.eventLoop.execute { self.context?.close(promise: nil) }
  }

  private static func refuse(_ command: Command, _ error: MeshHTTP2Error) {
    switch command {
    case .headers(let stream, _), .data(let stream, _), .status(let stream, _, _):
      stream.cancel(MeshHTTP2Error.rpcError(error))
    case .finish, .reset, .consume, .release, .goAway:
      break
    }
  }

  // MARK: Channel events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if context.channel.isActive, !self.secured { self.start(context: context) }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.cancelTimers()
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
    if self.secured, let established = event as? MeshNativeTLSHandler.Established {
      self.verifiedPeer = established.peer
      self.start(context: context)
    }
    context.fireUserInboundEventTriggered(event)
  }

  private func start(context: ChannelHandlerContext) {
    guard self.session == nil else { return }
    self.remotePeer = context.channel.remoteAddress.map { MeshNativePeer.describe($0) } ?? "unknown"
    self.localPeer = context.channel.localAddress.map { MeshNativePeer.describe($0) } ?? "unknown"
    do {
      self.session = try MeshHTTP2Session(
        role: .server,
        settings: self.settings.http2,
        delegate: self,
        allocator: context.channel.allocator
      )
      self.flushSession()
      self.startTimers()
    } catch {
      context.close(promise: nil)
    }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard let session = self.session else { return }
    do {
      try session.receive(self.unwrapInboundIn(data))
    } catch {
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
    self.cancelTimers()
    let error = MeshHTTP2Error(.unavailable, "The client's connection closed.")
    for command in self.queue.close(error) { Self.refuse(command, error) }
    let streams = self.streams.values
    self.streams.removeAll()
    for stream in streams {
      stream.closed = true
      stream.cancel(MeshHTTP2Error.rpcError(error))
      if !stream.handed { stream.forget() }
    }
    self.session = nil
    self.context = nil
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }

  // MARK: Commands (event loop)

  private func runCommands() {
    let commands = self.queue.take()
    guard let session = self.session else {
      let error = MeshHTTP2Error(.unavailable, "The client's connection closed.")
      for command in commands { Self.refuse(command, error) }
      // Told to go away before HTTP/2 started (still in its TLS handshake): it carries no RPC,
      // so it closes now.
      if commands.contains(where: { if case .goAway = $0 { true } else { false } }) {
        self.context?.close(promise: nil)
      }
      return
    }
    for command in commands { self.run(command, on: session) }
    self.flushSession()
  }

  private func run(_ command: Command, on session: MeshHTTP2Session) {
    switch command {
    case .headers(let stream, let metadata):
      guard !stream.closed, !stream.responseStarted else { return }
      if stream.holdsResponse {
        stream.heldMetadata = metadata
        return
      }
      self.startResponse(stream, metadata: metadata, on: session)
    case .data(let stream, var bytes):
      let count = bytes.readableBytes
      guard !stream.closed, !stream.responseEnded else {
        stream.framed(count)
        return
      }
      // A held response's first message waits for its status; a second starts the response.
      let holding = stream.holdsResponse && !stream.responseStarted && stream.data == nil
      if stream.data == nil {
        stream.data = bytes
      } else {
        stream.data!.writeBuffer(&bytes)
      }
      guard !holding else { return }
      if !stream.responseStarted {
        guard self.startHeldResponse(stream, on: session) else { return }
      }
      session.resumeData(stream: stream.id)
    case .status(let stream, let status, let metadata):
      guard !stream.closed, !stream.responseEnded else { return }
      if !stream.responseStarted, stream.heldMetadata != nil || stream.data != nil {
        // A held response: its headers, message and trailers, together.
        guard self.startHeldResponse(stream, on: session) else { return }
      }
      self.endResponse(stream, status: status, metadata: metadata, on: session)
    case .finish(let stream):
      // A response must end with a status: a handler that wrote none is reset.
      if !stream.closed, stream.trailers == nil, !stream.responseEnded {
        self.reset(stream, code: .internalError, on: session)
      }
    case .reset(let stream):
      if !stream.closed { self.reset(stream, code: .internalError, on: session) }
    case .consume(let stream):
      guard stream.heldBack > 0 else { return }
      // A closed stream's held-back bytes went back to the connection when it was removed.
      session.consume(stream: stream.id, count: stream.heldBack)
      stream.heldBack = 0
    case .release(let stream):
      // The handler returned: a stream whose response is done but whose request is still
      // coming is ended (its remaining DATA is not wanted).
      if !stream.closed, stream.responseEnded, !stream.requestEnded {
        self.resetAfterResponse(stream)
      } else if !stream.closed, !stream.responseEnded, stream.trailers == nil {
        self.reset(stream, code: .internalError, on: session)
      }
    case .goAway:
      self.beginDraining(on: session)
    }
  }

  /// Starts `stream`'s response with the metadata it holds (none if it holds none); false if
  /// that failed and the stream was reset.
  private func startHeldResponse(
    _ stream: MeshNativeServerStream,
    on session: MeshHTTP2Session
  ) -> Bool {
    self.startResponse(stream, metadata: stream.heldMetadata ?? [:], on: session)
    stream.heldMetadata = nil
    return !stream.closed
  }

  private func startResponse(
    _ stream: MeshNativeServerStream,
    metadata: Metadata,
    on session: MeshHTTP2Session
  ) {
    var headers = MeshHTTP2Headers()
    headers.add(":status", "200")
    headers.add("content-type", "application/grpc")
    do {
      try headers.add(metadata: metadata)
      try session.submitResponse(stream: stream.id, headers, endStream: false)
      stream.responseStarted = true
      self.pings.reset()
    } catch {
      self.reset(stream, code: .internalError, on: session)
    }
  }

  private func endResponse(
    _ stream: MeshNativeServerStream,
    status: Status,
    metadata: Metadata,
    on session: MeshHTTP2Session
  ) {
    var trailers = MeshHTTP2Headers()
    if !stream.responseStarted {
      // Trailers-only: one HEADERS frame with the status.
      trailers.add(":status", "200")
      trailers.add("content-type", "application/grpc")
    }
    trailers.add("grpc-status", "\(status.code.rawValue)")
    if !status.message.isEmpty {
      trailers.add("grpc-message", MeshGRPCWire.encodeMessage(status.message))
    }
    do {
      try trailers.add(metadata: metadata)
    } catch {
      // Metadata a header cannot carry: the status goes without it.
      trailers = MeshHTTP2Headers()
      if !stream.responseStarted {
        trailers.add(":status", "200")
        trailers.add("content-type", "application/grpc")
      }
      trailers.add("grpc-status", "\(Status.Code.internalError.rawValue)")
      trailers.add("grpc-message", MeshGRPCWire.encodeMessage("\(error)"))
    }
    if !stream.responseStarted {
      do {
        try session.submitResponse(stream: stream.id, trailers, endStream: true)
        stream.responseStarted = true
        stream.responseEnded = true
      } catch {
        self.reset(stream, code: .internalError, on: session)
      }
    } else {
      // Sent by the data provider once the data before it has gone.
      stream.trailers = trailers
      session.resumeData(stream: stream.id)
    }
  }

  private func reset(
    _ stream: MeshNativeServerStream,
    code: MeshHTTP2ErrorCode,
    on session: MeshHTTP2Session
  ) {
    stream.closed = true
    session.reset(stream: stream.id, code: code)
    self.remove(stream, on: session)
    stream.cancel(RPCError(code: .cancelled, message: "The stream was reset."))
  }

  /// Takes `stream` out of the table: the bytes it held back go back to the connection's window,
  /// and a stream no handler has is forgotten.
  private func remove(_ stream: MeshNativeServerStream, on session: MeshHTTP2Session) {
    self.streams[stream.id] = nil
    self.updateIdleTimer()
    if stream.heldBack > 0 {
      session.consumeConnection(count: stream.heldBack)
      stream.heldBack = 0
    }
    if !stream.handed { stream.forget() }
  }

  /// Ends a stream whose response is complete but whose request is still coming, after the
  /// response has been written (a reset submitted with it would make nghttp2 drop it).
  private func resetAfterResponse(_ stream: MeshNativeServerStream) {
    self.eventLoop.execute {
      guard let session = self.session, !stream.closed, !stream.requestEnded else { return }
      self.reset(stream, code: .noError, on: session)
      self.flushSession()
    }
  }

  // MARK: Age and idle limits (event loop)

  private func startTimers() {
    if let age = self.settings.maxConnectionAge {
      self.ageTimer = self.eventLoop.scheduleTask(in: Self.timeAmount(age)) {
        self.drainForLimit()
      }
    }
    self.updateIdleTimer()
  }

  /// Idle (no stream) for `maxConnectionIdle`: the connection goes away.
  private func updateIdleTimer() {
    guard let idle = self.settings.maxConnectionIdle, self.session != nil else { return }
    if self.streams.isEmpty {
      guard self.idleTimer == nil else { return }
      self.idleTimer = self.eventLoop.scheduleTask(in: Self.timeAmount(idle)) {
        self.idleTimer = nil
        if self.streams.isEmpty { self.drainForLimit() }
      }
    } else {
      self.idleTimer?.cancel()
      self.idleTimer = nil
    }
  }

  private func drainForLimit() {
    guard let session = self.session else { return }
    self.beginDraining(on: session)
    self.flushSession()
  }

  private func cancelTimers() {
    for timer in [self.ageTimer, self.graceTimer, self.idleTimer] { timer?.cancel() }
    self.ageTimer = nil
    self.graceTimer = nil
    self.idleTimer = nil
  }

  private static func timeAmount(_ duration: Duration) -> TimeAmount {
    .nanoseconds(MeshInput.nanoseconds(clamping: duration))
  }

  /// Graceful shutdown: a GOAWAY announcing it; streams in flight finish, then a final GOAWAY and
  /// the close.
  private func beginDraining(on session: MeshHTTP2Session) {
    guard !self.draining else { return }
    self.draining = true
    session.goAway(graceful: true)
    if let grace = self.settings.maxConnectionAgeGrace {
      // However the drain began (age, idleness, the server's stop), the streams in flight get
      // the grace; then the close cancels those still open.
      self.graceTimer = self.eventLoop.scheduleTask(in: Self.timeAmount(grace)) {
        self.context?.close(promise: nil)
      }
    }
    // Streams the client opened before it saw the notice are still served; a second later the
    // final GOAWAY names the last one.
    self.eventLoop.scheduleTask(in: .seconds(1)) {
      guard let session = self.session, !self.finalGoAwaySent else { return }
      self.finalGoAwaySent = true
      session.goAway(graceful: false)
      self.flushSession()
      self.closeIfDrained()
    }
    self.closeIfDrained()
  }

  /// Sends the final GOAWAY and closes once draining with no stream left: checked after the
  /// current call returns (never from inside nghttp2, which must not be re-entered).
  private func closeIfDrained() {
    guard self.draining, self.streams.isEmpty else { return }
    self.eventLoop.execute {
      guard self.draining, self.streams.isEmpty, let session = self.session else { return }
      if !self.finalGoAwaySent {
        self.finalGoAwaySent = true
        session.goAway(graceful: false)
      }
      self.flushSession(thenClose: true)
    }
  }

  /// Frames and writes what the session has to send; closes the channel after that write if
  /// `thenClose` (or the session is over).
  private func flushSession(thenClose: Bool = false) {
    guard let session = self.session, let context = self.context else { return }
    MeshNativeData.flush(session, to: context, thenClose: thenClose)
  }

  // MARK: Session events (event loop)

  func sessionReceivedSettings() {}

  func sessionReceivedPing() {
    guard self.pings.received(at: .now, callsOpen: !self.streams.isEmpty) else { return }
    // Too many: GOAWAY ENHANCE_YOUR_CALM, then the close (after this callback: nghttp2 must not
    // be re-entered). Streams still open are cancelled by the close.
    self.eventLoop.execute {
      guard !self.calmed, let session = self.session else { return }
      self.calmed = true
      session.goAway(code: .enhanceYourCalm, graceful: false, debugData: "too_many_pings")
      self.flushSession(thenClose: true)
    }
  }

  func session(streamOpenedByPeer id: Int32) {
    self.streams[id] = MeshNativeServerStream(
      id: id,
      connection: self,
      maxRequestBytes: self.maxRequestBytes
    )
    self.updateIdleTimer()
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
    if stream.headersComplete {
      // Request trailers: gRPC has none worth reading.
      return true
    }
    switch name {
    case ":path": stream.path = value
    case ":method": stream.method = value
    case "content-type": stream.contentType = value
    case "grpc-encoding": stream.encoding = value
    case "te", "user-agent", "grpc-accept-encoding": break
    default:
      if name.hasPrefix(":") { return true }
      if !MeshGRPCWire.addReceived(name: name, value: value, to: &stream.metadata) {
        stream.malformed = "The value of \(name) is not base64."
      }
    }
    return true
  }

  func session(
    stream id: Int32,
    headersEndingStream endStream: Bool,
    category: MeshHTTP2Session.Block
  ) {
    guard let stream = self.streams[id], let session = self.session else { return }
    if stream.headersComplete {
      // Trailers end the request.
      if endStream { self.requestEnded(stream) }
      return
    }
    stream.headersComplete = true
    if let refusal = self.refusal(of: stream) {
      self.answer(stream, refusal, on: session)
      return
    }
    guard let path = stream.path, let descriptor = self.methods[path] ?? Self.descriptor(path)
    else {
      self.answer(
        stream,
        .grpc(.unimplemented, "Malformed method name: '\(stream.path ?? "")'."),
        on: session
      )
      return
    }
    stream.holdsResponse = descriptor.type.map { !$0.isResponseStreaming } ?? false
    stream.inbound.append(.metadata(stream.metadata))
    if endStream { self.requestEnded(stream) }
    stream.handed = true
    self.onStream(
      Accepted(
        stream: stream,
        descriptor: descriptor,
        remotePeer: self.remotePeer,
        localPeer: self.localPeer,
        peer: self.verifiedPeer
      )
    )
  }

  private enum Refusal {
    case http(Int)
    case grpc(Status.Code, String)
  }

  private func refusal(of stream: MeshNativeServerStream) -> Refusal? {
    if self.draining, self.finalGoAwaySent { return .grpc(.unavailable, "The server is stopping.") }
    guard stream.method == "POST" else { return .http(405) }
    guard let contentType = stream.contentType, contentType.hasPrefix("application/grpc") else {
      return .http(415)
    }
    if let encoding = stream.encoding, encoding != "identity" {
      return .grpc(.unimplemented, "Compression (\(encoding)) is not supported.")
    }
    if let malformed = stream.malformed { return .grpc(.internalError, malformed) }
    return nil
  }

  /// Ends `stream` at once with `refusal`, as the status of a trailers-only response.
  private func answer(
    _ stream: MeshNativeServerStream,
    _ refusal: Refusal,
    on session: MeshHTTP2Session
  ) {
    var headers = MeshHTTP2Headers()
    switch refusal {
    case .http(let status):
      headers.add(":status", "\(status)")
    case .grpc(let code, let message):
      headers.add(":status", "200")
      headers.add("content-type", "application/grpc")
      headers.add("grpc-status", "\(code.rawValue)")
      headers.add("grpc-message", MeshGRPCWire.encodeMessage(message))
    }
    stream.responseStarted = true
    stream.responseEnded = true
    do {
      try session.submitResponse(stream: stream.id, headers, endStream: true)
    } catch {
      self.reset(stream, code: .internalError, on: session)
    }
    stream.inbound.finish(
      .failure(RPCError(code: .cancelled, message: "The request was refused."))
    )
    if !stream.requestEnded { self.resetAfterResponse(stream) }
  }

  /// `/package.Service/Method` as a method descriptor.
  private static func descriptor(_ path: String) -> MethodDescriptor? {
    guard path.first == "/" else { return nil }
    let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
    return MethodDescriptor(fullyQualifiedService: String(parts[0]), method: String(parts[1]))
  }

  private func requestEnded(_ stream: MeshNativeServerStream) {
    stream.requestEnded = true
    if stream.deframer.pendingBytes > 0 {
      stream.inbound.fail(
        RPCError(code: .internalError, message: "The request ended inside a message.")
      )
    } else {
      stream.inbound.finish()
    }
  }

  func session(stream id: Int32, data: UnsafeRawBufferPointer) {
    guard let session = self.session else { return }
    guard let stream = self.streams[id], !stream.closed, !stream.requestEnded else {
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
      stream.inbound.fail(RPCError(code: error.code, message: error.message))
      // A status the handler wrote already (its trailers waiting for the data) stands.
      if !stream.responseEnded, stream.trailers == nil {
        let status = Status(code: Status.Code(error.code), message: error.message)
        self.endResponse(stream, status: status, metadata: [:], on: session)
      }
    }
  }

  func session(streamEndedByData id: Int32) {
    guard let stream = self.streams[id] else { return }
    self.requestEnded(stream)
  }

  func session(streamClosed id: Int32, errorCode: UInt32) {
    if let stream = self.streams[id], let session = self.session {
      self.remove(stream, on: session)
      let wasClosed = stream.closed
      stream.closed = true
      if !stream.responseEnded, !wasClosed {
        // The client reset the stream (or the session closed it) before the response ended.
        stream.cancel(
          RPCError(
            code: .cancelled,
            message: "The client cancelled the RPC (HTTP/2 error \(errorCode))."
          )
        )
      }
    }
    self.closeIfDrained()
  }

  func session(goAwayWithLastStream lastStreamID: Int32, errorCode: UInt32) {
    // The client is leaving: it opens no more streams; those in flight finish.
  }

  func session(stream id: Int32, readInto buffer: UnsafeMutableRawBufferPointer)
    -> (count: Int, end: MeshHTTP2Session.DataEnd)?
  {
    guard let stream = self.streams[id], let session = self.session else { return (0, .endStream) }
    let count = MeshNativeData.move(from: &stream.data, into: buffer)
    if count > 0 {
      stream.framed(count)
      self.pings.reset()
    }
    guard stream.data == nil, let trailers = stream.trailers else {
      return count == 0 ? nil : (count, .more)
    }
    // The data is all out: the trailers end the stream (submitted from inside this callback, as
    // nghttp2 documents).
    stream.trailers = nil
    stream.responseEnded = true
    do {
      try session.submitTrailers(stream: id, trailers)
      return (count, .trailers)
    } catch {
      return (count, .endStream)
    }
  }
}

/// Peers as gRPC describes them.
enum MeshNativePeer {
  static func describe(_ address: NIOCore.SocketAddress) -> String {
    switch address {
    case .v4(let v4): "ipv4:\(v4.host):\(address.port ?? 0)"
    case .v6(let v6): "ipv6:[\(v6.host)]:\(address.port ?? 0)"
    case .unixDomainSocket: "unix:\(address.pathname ?? "")"
    }
  }
}
