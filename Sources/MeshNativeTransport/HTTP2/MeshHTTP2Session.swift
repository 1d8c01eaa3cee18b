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

internal import CMeshNGHTTP2
internal import GRPCCore
internal import NIOCore

/// What a ``MeshHTTP2Session`` reports, on the thread that drives it (its channel's event loop).
///
/// Every method is called from inside `receive(_:)` or `flush()`; none may call back into the
/// session except through the methods documented as safe there (`consume`, `resumeData`).
protocol MeshHTTP2SessionDelegate: AnyObject {
  /// A header of a HEADERS frame (`first` is true for the frame's first one). Returns false to
  /// reset the stream (a malformed header block).
  func session(stream: Int32, header name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
    -> Bool

  /// A whole header block was received; `endStream` when it ends the peer's side.
  func session(stream: Int32, headersEndingStream endStream: Bool, category: MeshHTTP2Session.Block)

  /// DATA payload bytes of `stream`.
  func session(stream: Int32, data: UnsafeRawBufferPointer)

  /// A DATA frame ended the peer's side of `stream`.
  func session(streamEndedByData stream: Int32)

  /// `stream` is closed (`errorCode` 0: both sides ended normally; else the RST_STREAM's code or
  /// the session's reason).
  func session(streamClosed stream: Int32, errorCode: UInt32)

  /// The peer sent GOAWAY: streams above `lastStreamID` were not and will not be processed.
  func session(goAwayWithLastStream lastStreamID: Int32, errorCode: UInt32)

  /// Fills `buffer` with `stream`'s next request or response bytes: how many, and whether they
  /// are the last ones. `nil`: nothing to send now (the stream is resumed with `resumeData`).
  func session(stream: Int32, readInto buffer: UnsafeMutableRawBufferPointer)
    -> (count: Int, end: MeshHTTP2Session.DataEnd)?

  /// A new stream from the peer begins (servers only).
  func session(streamOpenedByPeer stream: Int32)

  /// The peer's SETTINGS arrived (the first one completes its connection preface).
  func sessionReceivedSettings()

  /// The peer answered one of our PINGs.
  func sessionReceivedPingAcknowledgement()

  /// The peer sent a PING (nghttp2 answers it).
  func sessionReceivedPing()
}

extension MeshHTTP2SessionDelegate {
  func session(streamOpenedByPeer stream: Int32) {}
  func sessionReceivedPingAcknowledgement() {}
  func sessionReceivedPing() {}
}

/// An nghttp2 session: HTTP/2 framing, HPACK and flow control over bytes read from and written to
/// a connection.
///
/// Owned by one connection handler and used only on its event loop. The session owns the
/// `nghttp2_session` and frees it in `deinit`; the C callbacks reach the session through an
/// unretained pointer, valid because they run only inside the session's own calls.
final class MeshHTTP2Session {
  enum Role {
    case client
    case server
  }

  /// What ends a stream's data.
  enum DataEnd {
    /// More data follows.
    case more
    /// The last data, with END_STREAM.
    case endStream
    /// The last data; trailers (submitted with `submitTrailers`) end the stream.
    case trailers
  }

  /// What a received header block is.
  enum Block {
    /// A request (server) or the response's first headers (client).
    case first
    /// A later block: trailers, or an informational response's headers.
    case later
  }

  /// The session's settings.
  struct Settings {
    var maxConcurrentStreams: Int
    /// The initial window of each stream the peer sends on (SETTINGS_INITIAL_WINDOW_SIZE).
    var streamWindow: Int
    /// The whole connection's receive window.
    var connectionWindow: Int
    var maxFrameSize: Int
    var maxHeaderListSize: Int
  }

  private let pointer: OpaquePointer
  unowned let delegate: any MeshHTTP2SessionDelegate
  let role: Role
  /// Bytes the session has framed, waiting for the channel.
  private(set) var outbound: ByteBuffer

  init(
    role: Role,
    settings: Settings,
    delegate: any MeshHTTP2SessionDelegate,
    allocator: ByteBufferAllocator
  ) throws(MeshHTTP2Error) {
    self.delegate = delegate
    self.role = role
    self.outbound = allocator.buffer(capacity: 16 * 1024)

    var callbacks: OpaquePointer?
    guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else {
      throw MeshHTTP2Error(.resourceExhausted, "nghttp2 could not allocate its callbacks")
    }
    defer { nghttp2_session_callbacks_del(callbacks) }
    Self.install(callbacks)

    var option: OpaquePointer?
    guard nghttp2_option_new(&option) == 0, let option else {
      throw MeshHTTP2Error(.resourceExhausted, "nghttp2 could not allocate its options")
    }
    defer { nghttp2_option_del(option) }
    // Flow control follows the reader: a stream's window opens as its messages are read.
    nghttp2_option_set_no_auto_window_update(option, 1)
    // Header blocks this side sends are at most this long (what it receives is limited by the
    // delegates, against SETTINGS_MAX_HEADER_LIST_SIZE: nghttp2 only advertises that).
    nghttp2_option_set_max_send_header_block_length(option, 64 * 1024)
    // Closed streams are not kept for priority bookkeeping (gRPC does not use priorities).
    nghttp2_option_set_no_closed_streams(option, 1)

    var session: OpaquePointer?
    let created =
      switch role {
      case .client: nghttp2_session_client_new2(&session, callbacks, nil, option)
      case .server: nghttp2_session_server_new2(&session, callbacks, nil, option)
      }
    guard created == 0, let session else {
      throw MeshHTTP2Error(.resourceExhausted, "nghttp2 could not create a session (\(created))")
    }

    var entries = [
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
        value: UInt32(clamping: settings.maxConcurrentStreams)
      ),
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
        value: UInt32(clamping: min(settings.streamWindow, Int(Int32.max)))
      ),
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue),
        value: UInt32(clamping: min(max(settings.maxFrameSize, 16_384), 16_777_215))
      ),
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
        value: UInt32(clamping: settings.maxHeaderListSize)
      ),
    ]
    if role == .client {
      entries.append(
        nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0)
      )
    }
    let submitted = nghttp2_submit_settings(
      session,
      UInt8(NGHTTP2_FLAG_NONE.rawValue),
      entries,
      entries.count
    )
    let window = Int32(clamping: min(settings.connectionWindow, Int(Int32.max)))
    guard
      submitted == 0,
      nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, window)
        == 0
    else {
      nghttp2_session_del(session)
      throw MeshHTTP2Error(.internalError, "nghttp2 refused the settings (\(submitted))")
    }
    self.pointer = session
    // The callbacks' user data: this session, for as long as it lives (it owns the session).
    nghttp2_session_set_user_data(session, Unmanaged.passUnretained(self).toOpaque())
  }

  deinit {
    nghttp2_session_del(self.pointer)
  }

  // MARK: Input and output

  /// Feeds bytes read from the connection to the session; the delegate hears what they carry.
  ///
  /// - Throws: a connection error (the connection must be closed after flushing the GOAWAY the
  ///   session queued).
  func receive(_ bytes: ByteBuffer) throws(MeshHTTP2Error) {
    let result = bytes.withUnsafeReadableBytes { raw -> Int in
      guard let base = raw.baseAddress else { return 0 }
      return nghttp2_session_mem_recv(
        self.pointer,
        base.assumingMemoryBound(to: UInt8.self),
        raw.count
      )
    }
    if result < 0 {
      throw MeshHTTP2Error.nghttp2(Int32(clamping: result), during: "reading the peer's frames")
    }
  }

  /// Frames everything the session has to send into ``outbound``.
  func flush() throws(MeshHTTP2Error) {
    let result = nghttp2_session_send(self.pointer)
    if result != 0 {
      throw MeshHTTP2Error.nghttp2(result, during: "framing")
    }
  }

  /// Takes the framed bytes (empty if none).
  func takeOutbound() -> ByteBuffer? {
    guard self.outbound.readableBytes > 0 else { return nil }
    let taken = self.outbound
    // The storage just taken is referenced by the write: clearing gives this buffer new storage
    // rather than copying the old.
    self.outbound.clear()
    return taken
  }

  /// True while the session wants to read or write (false once GOAWAY went both ways and no
  /// stream is open).
  var isAlive: Bool {
    nghttp2_session_want_read(self.pointer) != 0 || nghttp2_session_want_write(self.pointer) != 0
  }

  // MARK: Streams

  /// Sends a request's headers (clients): returns the new stream's ID.
  func submitRequest(_ headers: MeshHTTP2Headers, endStream: Bool) throws(MeshHTTP2Error) -> Int32 {
    let id = headers.withNameValues { nva, count in
      if endStream {
        nghttp2_submit_request(self.pointer, nil, nva, count, nil, nil)
      } else {
        withUnsafePointer(to: Self.makeDataProvider()) { provider in
          nghttp2_submit_request(self.pointer, nil, nva, count, provider, nil)
        }
      }
    }
    guard id > 0 else { throw MeshHTTP2Error.nghttp2(id, during: "opening a stream") }
    return id
  }

  /// Sends a response's headers (servers); its data comes from the delegate unless `endStream`.
  func submitResponse(
    stream: Int32,
    _ headers: MeshHTTP2Headers,
    endStream: Bool
  ) throws(MeshHTTP2Error) {
    let result = headers.withNameValues { nva, count in
      if endStream {
        nghttp2_submit_headers(
          self.pointer,
          UInt8(NGHTTP2_FLAG_END_STREAM.rawValue),
          stream,
          nil,
          nva,
          count,
          nil
        )
      } else {
        withUnsafePointer(to: Self.makeDataProvider()) { provider in
          nghttp2_submit_response(self.pointer, stream, nva, count, provider)
        }
      }
    }
    guard result >= 0 else { throw MeshHTTP2Error.nghttp2(result, during: "answering a stream") }
  }

  /// Sends trailers ending `stream` (after its data provider reported `.trailers`).
  func submitTrailers(stream: Int32, _ headers: MeshHTTP2Headers) throws(MeshHTTP2Error) {
    let result = headers.withNameValues { nva, count in
      nghttp2_submit_trailer(self.pointer, stream, nva, count)
    }
    guard result == 0 else { throw MeshHTTP2Error.nghttp2(result, during: "ending a stream") }
  }

  /// Resets `stream` with `code` (an HTTP/2 error code).
  func reset(stream: Int32, code: MeshHTTP2ErrorCode) {
    _ = nghttp2_submit_rst_stream(
      self.pointer,
      UInt8(NGHTTP2_FLAG_NONE.rawValue),
      stream,
      code.rawValue
    )
  }

  /// Tells the session `stream` has data again.
  func resumeData(stream: Int32) {
    _ = nghttp2_session_resume_data(self.pointer, stream)
  }

  /// `count` bytes of `stream`'s data were read by the application: its window (and the
  /// connection's) opens by that much.
  func consume(stream: Int32, count: Int) {
    guard count > 0 else { return }
    _ = nghttp2_session_consume(self.pointer, stream, count)
  }

  /// `count` bytes of a stream the application no longer follows were received: the connection's
  /// window opens by that much.
  func consumeConnection(count: Int) {
    guard count > 0 else { return }
    _ = nghttp2_session_consume_connection(self.pointer, count)
  }

  /// Sends GOAWAY: no stream above the last the peer opened will be processed (servers), or no
  /// new stream will be opened (clients).
  func goAway(code: MeshHTTP2ErrorCode = .noError, graceful: Bool, debugData: String = "") {
    if graceful, self.role == .server {
      // A first GOAWAY with the largest ID; streams already on their way are still served.
      _ = nghttp2_submit_shutdown_notice(self.pointer)
    } else {
      let last = nghttp2_session_get_last_proc_stream_id(self.pointer)
      // nghttp2 copies the debug data.
      var debug = Array(debugData.utf8)
      _ = debug.withUnsafeMutableBufferPointer { bytes in
        nghttp2_submit_goaway(
          self.pointer,
          UInt8(NGHTTP2_FLAG_NONE.rawValue),
          last,
          code.rawValue,
          bytes.baseAddress,
          bytes.count
        )
      }
    }
  }

  /// Sends a PING (its ACK comes from the peer; nghttp2 answers the peer's pings itself).
  func ping() {
    _ = nghttp2_submit_ping(self.pointer, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
  }

  // MARK: Callbacks

  /// Every stream's data comes from the delegate (nghttp2 copies the provider on submission).
  private static func makeDataProvider() -> nghttp2_data_provider {
    nghttp2_data_provider(
      source: nghttp2_data_source(ptr: nil),
      read_callback: { _, stream, buffer, length, flags, _, context in
        guard let context, let buffer, let flags else {
          return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
        }
        let session = MeshHTTP2Session.from(context)
        guard
          let (count, end) = session.delegate.session(
            stream: stream,
            readInto: UnsafeMutableRawBufferPointer(start: buffer, count: length)
          )
        else { return Int(NGHTTP2_ERR_DEFERRED.rawValue) }
        switch end {
        case .more:
          break
        case .endStream:
          flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        case .trailers:
          flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
        }
        return count
      }
    )
  }

  private static func from(_ context: UnsafeMutableRawPointer) -> MeshHTTP2Session {
    Unmanaged<MeshHTTP2Session>.fromOpaque(context).takeUnretainedValue()
  }

  private static func install(_ callbacks: OpaquePointer) {
    nghttp2_session_callbacks_set_send_callback(callbacks) { _, data, length, _, context in
      guard let context, let data else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
      let session = MeshHTTP2Session.from(context)
      session.outbound.writeBytes(UnsafeRawBufferPointer(start: data, count: length))
      return length
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, context in
      guard let context, let frame else { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
      let session = MeshHTTP2Session.from(context)
      if session.role == .server, frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
        session.delegate.session(streamOpenedByPeer: frame.pointee.hd.stream_id)
      }
      return 0
    }
    nghttp2_session_callbacks_set_on_header_callback(callbacks) {
      _,
      frame,
      name,
      nameLength,
      value,
      valueLength,
      _,
      context in
      guard let context, let frame else { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
      let session = MeshHTTP2Session.from(context)
      let accepted = session.delegate.session(
        stream: frame.pointee.hd.stream_id,
        header: UnsafeRawBufferPointer(start: name, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: valueLength)
      )
      return accepted ? 0 : Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, context in
      guard let context, let frame else { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
      let session = MeshHTTP2Session.from(context)
      let header = frame.pointee.hd
      let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
      switch UInt32(header.type) {
      case NGHTTP2_HEADERS.rawValue:
        let category = frame.pointee.headers.cat
        let block: Block =
          category == NGHTTP2_HCAT_REQUEST || category == NGHTTP2_HCAT_RESPONSE ? .first : .later
        session.delegate.session(
          stream: header.stream_id,
          headersEndingStream: endStream,
          category: block
        )
      case NGHTTP2_DATA.rawValue:
        if endStream { session.delegate.session(streamEndedByData: header.stream_id) }
      case NGHTTP2_SETTINGS.rawValue:
        if header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 {
          session.delegate.sessionReceivedSettings()
        }
      case NGHTTP2_PING.rawValue:
        if header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 {
          session.delegate.sessionReceivedPingAcknowledgement()
        } else {
          session.delegate.sessionReceivedPing()
        }
      case NGHTTP2_GOAWAY.rawValue:
        let goAway = frame.pointee.goaway
        session.delegate.session(
          goAwayWithLastStream: goAway.last_stream_id,
          errorCode: goAway.error_code
        )
      default:
        break
      }
      return 0
    }
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) {
      _,
      _,
      stream,
      data,
      length,
      context in
      guard let context else { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
      let session = MeshHTTP2Session.from(context)
      session.delegate.session(
        stream: stream,
        data: UnsafeRawBufferPointer(start: data, count: length)
      )
      return 0
    }
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) {
      _,
      stream,
      errorCode,
      context in
      guard let context else { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
      MeshHTTP2Session.from(context).delegate.session(streamClosed: stream, errorCode: errorCode)
      return 0
    }
  }
}
