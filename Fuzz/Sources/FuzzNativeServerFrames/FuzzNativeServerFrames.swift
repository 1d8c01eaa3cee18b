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
internal import NIOConcurrencyHelpers
internal import NIOCore
internal import NIOEmbedded

@testable internal import MeshNativeTransport

/// The native server transport's connection reading whatever a client sends: the input is the
/// client's bytes (the seeds begin with the connection preface, as grpcio sent it). Each request
/// the connection hands over is answered (headers, a message, a status) while the input is read.
/// Nothing may trap or leak; once the connection is closed, every request's reader has ended.
///
/// The input's first two bytes split the rest into up to three reads, so that frames split
/// across reads are exercised too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
  let input = Array(UnsafeRawBufferPointer(start: start, count: count))
  let bytes = Array(input.dropFirst(2))
  let loop = EmbeddedEventLoop()
  let channel = EmbeddedChannel(loop: loop)
  let accepted = NIOLockedValueBox<[MeshNativeServerConnection.Accepted]>([])
  let connection = MeshNativeServerConnection(
    settings: .defaults,
    maxRequestBytes: 1 << 20,
    secured: false,
    eventLoop: loop,
    onStream: { request in accepted.withLockedValue { $0.append(request) } }
  )
  do {
    try channel.pipeline.syncOperations.addHandler(connection)
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
  } catch {
    fatalError("FuzzNativeServerFrames: the embedded channel did not start: \(error)")
  }

  var answered = 0
  var response = channel.allocator.buffer(capacity: 16)
  MeshGRPCWire.frame([UInt8](repeating: 9, count: 12), into: &response)
  var cuts = [input.first.map { Int($0) } ?? 0, input.dropFirst().first.map { Int($0) * 16 } ?? 0]
  cuts = cuts.map { min($0, bytes.count) }.sorted()
  for (from, to) in [(0, cuts[0]), (cuts[0], cuts[1]), (cuts[1], bytes.count)] where from < to {
    try? channel.writeInbound(channel.allocator.buffer(bytes: bytes[from..<to]))
    loop.run()
    // Answer the requests handed over since the last read, as a handler would.
    let requests = accepted.withLockedValue { $0 }
    for request in requests.dropFirst(answered) {
      connection.enqueue(.headers(request.stream, ["x-fuzz": "answer"]))
      connection.enqueue(.data(request.stream, response))
      connection.enqueue(.status(request.stream, Status(code: .ok, message: ""), [:]))
    }
    answered = requests.count
    loop.run()
    while (try? channel.readOutbound(as: ByteBuffer.self)) ?? nil != nil {}
  }
  _ = try? channel.finish(acceptAlreadyClosed: true)
  // What the server transport does when the channel has closed.
  connection.closedPromise.succeed()
  loop.run()

  // Closed: each request's reader gets what arrived, then the end; none waits.
  for request in accepted.withLockedValue({ $0 }) {
    runBlocking {
      do {
        while try await request.stream.inbound.next() != nil {}
      } catch {
        // An error ends the stream: a peer's bad frames, or the close.
      }
    }
    request.stream.release()
  }
  // The box is the connection's callback's, and its streams hold the connection: let go.
  accepted.withLockedValue { $0.removeAll() }
  loop.run()
  return 0
}
