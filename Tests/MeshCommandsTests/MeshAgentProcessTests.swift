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
import InteropSupport
import Testing

/// The `mesh` executable itself, as an operator runs it.
@Suite("mesh agent as a process", .timeLimit(.minutes(1)))
struct MeshAgentProcessTests {
  /// The `mesh` executable built next to this test bundle.
  static var meshExecutable: URL {
    get throws {
      let bundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
      return URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("mesh")
    }
  }

  @Test(
    "SIGTERM and SIGINT stop 'mesh agent --dev' gracefully (exit 0)",
    arguments: [SIGTERM, SIGINT]
  )
  func stopsOnSignal(_ signal: Int32) async throws {
    let process = Process()
    process.executableURL = try Self.meshExecutable
    process.arguments = ["agent", "--dev", "--port", "0"]
    let output = Pipe()
    process.standardOutput = output
    let (exited, exitedContinuation) = AsyncStream.makeStream(of: Int32.self)
    process.terminationHandler = { process in
      exitedContinuation.yield(process.terminationStatus)
      exitedContinuation.finish()
    }
    try process.run()
    var seen: [String] = []
    var iterator = lines(from: output).makeAsyncIterator()
    while let line = await iterator.next() {
      seen.append(line)
      if line.contains("HTTP API: http://127.0.0.1:") { break }
    }
    #expect(seen.contains { $0.contains("HTTP API") }, "\(seen)")
    kill(process.processIdentifier, signal)
    while let line = await iterator.next() { seen.append(line) }
    var status = exited.makeAsyncIterator()
    #expect(await status.next() == 0)
    #expect(seen.last == "==> Agent stopped", "\(seen)")
  }
}
