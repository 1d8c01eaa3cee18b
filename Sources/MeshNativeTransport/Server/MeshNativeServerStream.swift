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
internal import NIOCore

/// One RPC's HTTP/2 stream on a ``MeshNativeServerConnection``: the request the peer sends, the
/// response the handler writes.
///
/// As with the client's streams, the fields under "Event loop only" belong to the connection's
/// event loop; the rest is locked or immutable (`@unchecked Sendable` on that discipline).
final class MeshNativeServerStream: @unchecked Sendable {
  typealias Bytes = GRPCNIOTransportBytes

  /// Strong: a stream's handler may outlive the connection; the connection's table drops the
  /// stream when it closes, so no cycle remains.
  let connection: MeshNativeServerConnection
  let inbound: MeshNativeInbound<RPCRequestPart<Bytes>>

  private struct Cancellation {
    var handle: ServerContext.RPCCancellationHandle?
    var cancelled = false
  }
  private let cancellation = MeshMutex(Cancellation())
  /// Response bytes handed to the loop and not yet framed by nghttp2.
  private let outboundFlow = MeshNativeOutboundFlow()
  /// Response messages the handler wrote (its writer's task only).
  private var messagesWritten = 0

  // MARK: Event loop only

  let id: Int32
  var path: String?
  var method: String?
  var contentType: String?
  var encoding: String?
  var metadata = Metadata()
  var malformed: String?
  var headersComplete = false
  var deframer: MeshGRPCDeframer
  var heldBack = 0
  /// The response's headers were submitted.
  var responseStarted = false
  /// A unary response (the method's type says so): its headers and message are held until its
  /// status, and all three go out in one write (grpc-swift's NIO server flushes them once, at the
  /// status, likewise). A peer never sees the response start before it is whole, so a server that
  /// dies mid-response leaves the RPC uncommitted, and a client's retry policy may send it
  /// elsewhere. Only the first message is held: a handler that writes more (which a unary method
  /// should not) has its response started at the second. Set before a handler has the stream,
  /// and not changed after.
  var holdsResponse = false
  /// A held response's metadata.
  var heldMetadata: Metadata?
  /// Framed response messages nghttp2 has not taken yet.
  var data: ByteBuffer?
  /// The trailers, once the handler has written its status (sent after the data).
  var trailers: MeshHTTP2Headers?
  var responseEnded = false
  var closed = false
  var requestEnded = false
  /// A handler has the stream (it releases it); else the connection forgets it when it ends.
  var handed = false
  /// Bytes of the header block received so far (limited by maxHeaderListSize).
  var headerBytes = 0

  init(id: Int32, connection: MeshNativeServerConnection, maxRequestBytes: Int) {
    self.id = id
    self.connection = connection
    self.deframer = MeshGRPCDeframer(
      maxMessageBytes: maxRequestBytes,
      allocator: connection.allocator
    )
    self.inbound = MeshNativeInbound(drainedBelow: connection.settings.streamWindow / 2)
    // Cleared when the handler is done with the stream (`release()`), or when the stream ends
    // without reaching one (`forget()`).
    self.inbound.setCallbacks(
      onDrained: { connection.enqueue(.consume(self)) },
      onCancel: {
        // The handler's task was cancelled while it waited for the request: the stream is
        // reset and the wait ends.
        let error = RPCError(code: .cancelled, message: "The RPC was cancelled.")
        self.inbound.fail(error)
        connection.enqueue(.reset(self))
      }
    )
  }

  /// The stream ends without a handler ever having it (refused, or cut off in its headers): its
  /// callbacks, and with them its references, go.
  func forget() {
    self.inbound.setCallbacks(onDrained: nil, onCancel: nil)
  }

  /// The RPC's cancellation handle, once its handler runs: cancelled at once if the peer already
  /// reset the stream.
  func setCancellation(_ handle: ServerContext.RPCCancellationHandle) {
    let cancelled = self.cancellation.withLock { cancellation -> Bool in
      cancellation.handle = handle
      return cancellation.cancelled
    }
    if cancelled { handle.cancel() }
  }

  /// The peer reset the stream or the connection closed: the handler's RPC is cancelled and its
  /// writes fail.
  func cancel(_ error: any Error) {
    let handle = self.cancellation.withLock { cancellation in
      cancellation.cancelled = true
      return cancellation.handle
    }
    self.outboundFlow.fail(error)
    self.inbound.fail(error)
    handle?.cancel()
  }

  /// The handler is done with the stream.
  func release() {
    self.connection.enqueue(.release(self))
    self.inbound.setCallbacks(onDrained: nil, onCancel: nil)
  }

  /// The response's side: what the handler writes.
  struct Writer: ClosableRPCWriterProtocol {
    typealias Element = RPCResponsePart<Bytes>
    let stream: MeshNativeServerStream

    func write(_ element: Element) async throws {
      try await self.stream.write(element)
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
      for element in elements { try await self.stream.write(element) }
    }

    func finish() async {
      // The status part ends the response; a handler that ends without one is reset.
      self.stream.connection.enqueue(.finish(self.stream))
    }

    func finish(throwing error: any Error) async {
      self.stream.connection.enqueue(.reset(self.stream))
    }
  }

  private func write(_ part: RPCResponsePart<Bytes>) async throws {
    if let failure = self.outboundFlow.failure { throw failure }
    switch part {
    case .metadata(let metadata):
      self.connection.enqueue(.headers(self, metadata))
    case .message(let message):
      var framed = self.connection.allocator.buffer(capacity: message.count + 5)
      MeshGRPCWire.frame(message, into: &framed)
      let over = try self.outboundFlow.queue(framed.readableBytes)
      self.connection.enqueue(.data(self, framed))
      self.messagesWritten += 1
      // A held response's first message goes out with its status, which this handler writes
      // next: waiting for it to go first would never end. (A second one starts the response.)
      if over, !self.holdsResponse || self.messagesWritten > 1 {
        try await self.outboundFlow.waitForRoom()
      }
    case .status(let status, let metadata):
      self.connection.enqueue(.status(self, status, metadata))
    }
  }

  /// `count` queued response bytes were framed (on the loop).
  func framed(_ count: Int) {
    self.outboundFlow.framed(count)
  }
}
