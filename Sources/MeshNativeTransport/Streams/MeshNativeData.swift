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

internal import GRPCNIOTransportHTTP2Posix
internal import NIOCore

/// What the client's and the server's connections do alike with a stream's DATA: received bytes
/// into messages under flow control, queued bytes out to nghttp2.
enum MeshNativeData {
  /// Hands the messages `data` completes to `inbound` (as `part(message)`), and opens the
  /// stream's window at once while the reader keeps up; otherwise holds the window update back
  /// (in `heldBack`) until the reader catches up.
  ///
  /// - Throws: the deframer's error (the bytes are consumed; the caller ends the stream).
  static func receive<Part: Sendable>(
    _ data: UnsafeRawBufferPointer,
    stream id: Int32,
    deframer: inout MeshGRPCDeframer,
    heldBack: inout Int,
    inbound: MeshNativeInbound<Part>,
    session: MeshHTTP2Session,
    part: (GRPCNIOTransportBytes) -> Part
  ) throws(MeshHTTP2Error) {
    deframer.append(data)
    // What the reader has not taken yet, before and after these bytes' messages.
    var buffered = inbound.bufferedBytes
    do {
      while let message = try deframer.next(as: GRPCNIOTransportBytes.self) {
        buffered = inbound.append(part(message), bytes: message.count + 5)
      }
    } catch {
      session.consume(stream: id, count: data.count)
      throw error
    }
    if buffered <= inbound.drainedBelow {
      session.consume(stream: id, count: data.count + heldBack)
      heldBack = 0
    } else {
      // The reader is behind: its window stays closed until it catches up.
      heldBack += data.count
      inbound.holdBack()
    }
  }

  /// Moves up to `buffer.count` bytes of `data` into `buffer` (nghttp2's frame); `data` becomes
  /// nil once empty. Returns how many.
  static func move(from data: inout ByteBuffer?, into buffer: UnsafeMutableRawBufferPointer) -> Int
  {
    guard let available = data?.readableBytes, available > 0 else { return 0 }
    let count = min(available, buffer.count)
    data!.withUnsafeReadableBytes { source in
      buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source.prefix(count)))
    }
    data!.moveReaderIndex(forwardBy: count)
    if data!.readableBytes == 0 { data = nil }
    return count
  }

  /// Frames what `session` has to send and writes it to `context` with one flush; closes the
  /// channel once that write is done if `thenClose`, or if the session is over or failed (closing
  /// at once would drop the bytes still queued in the channel).
  static func flush(
    _ session: MeshHTTP2Session,
    to context: ChannelHandlerContext,
    thenClose: Bool = false
  ) {
    var close = thenClose
    do {
      try session.flush()
    } catch {
      close = true
    }
    let bytes = session.takeOutbound()
    close = close || !session.isAlive
    guard close else {
      if let bytes { context.writeAndFlush(NIOAny(bytes), promise: nil) }
      return
    }
    let channel = context.channel
    if let bytes {
      context.writeAndFlush(NIOAny(bytes)).whenComplete { _ in channel.close(promise: nil) }
    } else {
      channel.close(promise: nil)
    }
  }
}
