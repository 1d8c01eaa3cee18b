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

public import Foundation

/// The lines a child process writes to `pipe`, read until it closes its end.
///
/// Read by blocking reads on a thread of its own, not by `FileHandle.readabilityHandler`: that
/// handler is a libdispatch source on the pipe's descriptor, and a source torn down while the
/// process's other descriptors come and go by the thousand (every test's sockets) crashed
/// libdispatch's event thread under ThreadSanitizer (`_dispatch_event_loop_drain`).
public func lines(from pipe: Pipe) -> AsyncStream<String> {
  let (lines, continuation) = AsyncStream.makeStream(of: String.self)
  let handle = pipe.fileHandleForReading
  // A thread, not a task: the reads block until the child writes or exits.
  let reader = Thread {
    var buffer = Data()
    while true {
      let chunk = handle.availableData
      if chunk.isEmpty { break }
      buffer.append(chunk)
      while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
        continuation.yield(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
        buffer.removeSubrange(buffer.startIndex...newline)
      }
    }
    if !buffer.isEmpty {
      continuation.yield(String(decoding: buffer, as: UTF8.self))
    }
    continuation.finish()
  }
  reader.name = "child-output"
  reader.start()
  return lines
}
