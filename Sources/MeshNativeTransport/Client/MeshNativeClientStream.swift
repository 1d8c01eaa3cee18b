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
internal import Synchronization

/// One RPC's HTTP/2 stream on a ``MeshNativeClientConnection``.
///
/// Shared between the RPC's task (its writer and reader) and the connection's event loop. The
/// task side is ``inbound`` and ``outboundFlow`` (locked); the fields under "Event loop only" are
/// touched by the connection's handler on its event loop and nowhere else, which is what makes
/// the `@unchecked Sendable` sound.
final class MeshNativeClientStream: @unchecked Sendable {
  typealias Bytes = GRPCNIOTransportBytes

  let descriptor: MethodDescriptor
  let timeout: Duration?
  let maxResponseBytes: Int
  /// Strong: a stream outlives its connection's table (its writer and reader may still run after
  /// the connection closed); the table drops the stream when it closes, so no cycle remains.
  let connection: MeshNativeClientConnection
  let inbound: MeshNativeInbound<RPCResponsePart<Bytes>>

  /// Request bytes handed to the loop and not yet framed by nghttp2.
  let outboundFlow = MeshNativeOutboundFlow()

  // MARK: Event loop only

  /// The HTTP/2 stream's ID once opened (0 before).
  var id: Int32 = 0
  /// Framed request messages nghttp2 has not taken yet.
  var data: ByteBuffer?
  /// The request is complete: END_STREAM follows the last data.
  var requestEnded = false
  /// The stream is closed or reset: nothing more is sent or delivered. Written on the event
  /// loop only; ``release()`` reads it from the RPC's task (an atomic, so that it may).
  var closed: Bool {
    get { self.closedFlag.load(ordering: .relaxed) }
    set { self.closedFlag.store(newValue, ordering: .releasing) }
  }
  private let closedFlag = Atomic(false)
  /// The response's status was delivered.
  var responseEnded = false
  /// The response's headers, until their block is complete.
  var headers = Metadata()
  var httpStatus: Int?
  var contentType: String?
  var grpcStatus: String?
  var grpcMessage: String?
  var receivedFirstHeaders = false
  var malformedHeaders: String?
  var deframer: MeshGRPCDeframer
  /// Response bytes received but not yet consumed (the window update is held back).
  var heldBack = 0
  /// Bytes of the response's header blocks so far (limited by maxHeaderListSize).
  var headerBytes = 0

  init(
    descriptor: MethodDescriptor,
    options: CallOptions,
    connection: MeshNativeClientConnection,
    allocator: ByteBufferAllocator
  ) {
    self.descriptor = descriptor
    self.timeout = options.timeout
    self.maxResponseBytes = options.maxResponseMessageBytes ?? 4 * 1024 * 1024
    self.connection = connection
    self.deframer = MeshGRPCDeframer(maxMessageBytes: self.maxResponseBytes, allocator: allocator)
    self.inbound = MeshNativeInbound(drainedBelow: connection.settings.streamWindow / 2)
    // Cleared by `release()`, which ends every stream: no reference cycle outlives it.
    self.inbound.setCallbacks(
      onDrained: { connection.enqueue(.consume(self)) },
      onCancel: { self.cancel(RPCError(code: .cancelled, message: "The RPC was cancelled.")) }
    )
  }

  /// Ends the stream's part in the RPC (its `withStream` returns): a stream still open is reset.
  func release() {
    if !self.inbound.isFinished {
      self.failRequest(RPCError(code: .cancelled, message: "The RPC ended."))
      self.inbound.fail(RPCError(code: .cancelled, message: "The RPC ended."))
    }
    // A stream the loop closed is out of its table already: releasing it there would do
    // nothing but wake the loop (the common case: an RPC that ended with its status).
    if !self.closedFlag.load(ordering: .acquiring) {
      self.connection.enqueue(.release(self))
    }
    self.inbound.setCallbacks(onDrained: nil, onCancel: nil)
  }

  /// The request's side: what the RPC writes.
  struct Writer: ClosableRPCWriterProtocol {
    typealias Element = RPCRequestPart<Bytes>
    let stream: MeshNativeClientStream

    func write(_ element: Element) async throws {
      try await self.stream.write(element)
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
      for element in elements { try await self.stream.write(element) }
    }

    func finish() async {
      self.stream.connection.enqueue(.endRequest(self.stream))
    }

    func finish(throwing error: any Error) async {
      self.stream.cancel(
        RPCError(code: .cancelled, message: "The request failed: \(error)", cause: error)
      )
    }
  }

  private func write(_ part: RPCRequestPart<Bytes>) async throws {
    switch part {
    case .metadata(let metadata):
      if let failure = self.outboundFlow.failure { throw failure }
      self.connection.enqueue(.open(self, metadata))
    case .message(let message):
      var framed = self.connection.allocator.buffer(capacity: message.count + 5)
      MeshGRPCWire.frame(message, into: &framed)
      let over = try self.outboundFlow.queue(framed.readableBytes)
      self.connection.enqueue(.data(self, framed))
      if over { try await self.outboundFlow.waitForRoom() }
    }
  }

  /// `count` queued request bytes were framed (on the loop).
  func framed(_ count: Int) {
    self.outboundFlow.framed(count)
  }

  /// Fails the response at once (what was buffered is dropped): the reader gets `error`, as an
  /// `RPCError`.
  func failResponse(_ error: any Error) {
    self.inbound.fail(MeshHTTP2Error.rpcError(error))
  }

  /// Ends the response with `error` after what was buffered (nothing if it already ended).
  func endResponse(_ error: any Error) {
    self.inbound.finish(.failure(MeshHTTP2Error.rpcError(error)))
  }

  /// Fails the request side: writes throw `error` (as an `RPCError`) from now on.
  func failRequest(_ error: any Error) {
    self.outboundFlow.fail(MeshHTTP2Error.rpcError(error))
  }

  /// Cancels the RPC: the stream is reset and both sides fail with `error`.
  func cancel(_ error: RPCError) {
    self.failRequest(error)
    self.inbound.fail(error)
    self.connection.enqueue(.reset(self))
  }
}
