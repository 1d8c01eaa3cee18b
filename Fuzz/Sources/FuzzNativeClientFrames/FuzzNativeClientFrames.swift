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

internal import FuzzSupport
internal import GRPCCore
internal import NIOCore
internal import NIOEmbedded

@testable internal import MeshNativeTransport

/// The native client transport's connection reading whatever a server sends: the input is the
/// server's bytes, after the client opened two streams (one with its request sent whole, one
/// still sending). Nothing may trap or leak; once the connection is closed, every stream has
/// ended (its parts then a status, or an error).
///
/// The input is split at its first two bytes' values into up to three reads, so that frames
/// split across reads are exercised too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
  let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
  let loop = EmbeddedEventLoop()
  let channel = EmbeddedChannel(loop: loop)
  let connection = MeshNativeClientConnection(
    settings: .defaults,
    scheme: "http",
    secured: false,
    authority: "fuzz.local:443",
    eventLoop: loop,
    allocator: channel.allocator,
    onGoingAway: { _ in }
  )
  do {
    try channel.pipeline.syncOperations.addHandler(connection)
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
  } catch {
    fatalError("FuzzNativeClientFrames: the embedded channel did not start: \(error)")
  }
  let method = MethodDescriptor(fullyQualifiedService: "fuzz.Service", method: "Call")
  let streams = (0..<2).map { _ in connection.makeStream(descriptor: method, options: .defaults) }
  var request = channel.allocator.buffer(capacity: 16)
  MeshGRPCWire.frame([UInt8](repeating: 7, count: 10), into: &request)
  for (index, stream) in streams.enumerated() {
    connection.enqueue(.open(stream, ["x-fuzz": "\(index)"]))
    connection.enqueue(.data(stream, request))
    if index == 0 { connection.enqueue(.endRequest(stream)) }
  }
  loop.run()

  var cuts = [bytes.first.map { Int($0) } ?? 0, bytes.dropFirst().first.map { Int($0) * 16 } ?? 0]
  cuts = cuts.map { min($0, bytes.count) }.sorted()
  for (from, to) in [(0, cuts[0]), (cuts[0], cuts[1]), (cuts[1], bytes.count)] where from < to {
    try? channel.writeInbound(channel.allocator.buffer(bytes: bytes[from..<to]))
    loop.run()
    while (try? channel.readOutbound(as: ByteBuffer.self)) ?? nil != nil {}
  }
  _ = try? channel.finish(acceptAlreadyClosed: true)
  loop.run()

  // Closed: each stream's reader gets what arrived, then the end; none waits.
  for stream in streams {
    runBlocking {
      var parts = 0
      do {
        while try await stream.inbound.next() != nil { parts += 1 }
      } catch {
        // An error ends the stream: a peer's bad frames, or the close.
      }
      _ = parts
    }
    stream.release()
  }
  loop.run()
  return 0
}
