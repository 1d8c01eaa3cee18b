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

import Foundation
import Synchronization

/// The lines `handle` delivers (a child process's output), each as it is completed; the
/// sequence finishes at the end of the file (the child closed it or exited).
func outputLines(of handle: FileHandle) -> AsyncStream<String> {
  let (lines, continuation) = AsyncStream.makeStream(of: String.self)
  let buffer = Mutex(Data())
  handle.readabilityHandler = { handle in
    let data = handle.availableData
    guard !data.isEmpty else {
      handle.readabilityHandler = nil
      continuation.finish()
      return
    }
    let complete: [String] = buffer.withLock { buffer in
      buffer.append(data)
      var complete: [String] = []
      while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
        complete.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
        buffer.removeSubrange(buffer.startIndex...newline)
      }
      return complete
    }
    for line in complete { continuation.yield(line) }
  }
  return lines
}
