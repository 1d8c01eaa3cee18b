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

/// A real gRPC peer written in Python (grpcio from PyPI), driven over stdin/stdout.
///
/// The script reads one JSON command per line and answers with one JSON object per line; see
/// `Tests/Interop/*.py`. Replies may arrive in any order (a Watch thread prints as messages come),
/// so ``next(where:)`` keeps the replies it skipped for later calls.
///
/// Use it from one task; it is not `Sendable`.
public final class PythonPeer<Reply: Decodable> {
  /// Why a peer could not be used.
  public struct Failure: Error, CustomStringConvertible {
    public let description: String
  }

  private let process: Process
  private let input: FileHandle
  private var lines: AsyncStream<String>.AsyncIterator
  private var skipped: [Reply] = []
  private let exited: AsyncStream<Int32>

  /// The repository's root folder, found from this file's path.
  public static var repositoryRoot: URL {
    URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent()  // InteropSupport
      .deletingLastPathComponent()  // Tests
      .deletingLastPathComponent()
  }

  /// The Python that has the interop requirements: `$MESH_INTEROP_PYTHON`, else `.venv/bin/python`
  /// in the repository (made by `scripts/test.sh`).
  public static func locatePython() throws -> String {
    if let python = ProcessInfo.processInfo.environment["MESH_INTEROP_PYTHON"], !python.isEmpty {
      return python
    }
    let venvPython = Self.repositoryRoot.appendingPathComponent(".venv/bin/python").path
    guard FileManager.default.isExecutableFile(atPath: venvPython) else {
      throw Failure(
        description: """
          No Python for the interop tests: run ./scripts/test.sh, which makes .venv from \
          Tests/Interop/requirements.txt, or set MESH_INTEROP_PYTHON.
          """
      )
    }
    return venvPython
  }

  /// Starts `Tests/Interop/<script>` with `arguments`.
  public init(script: String, arguments: [String]) throws {
    let scriptPath = Self.repositoryRoot.appendingPathComponent("Tests/Interop/\(script)").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try Self.locatePython())
    process.arguments = ["-u", scriptPath] + arguments
    let stdin = Pipe()
    let stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = FileHandle.standardError

    let (exited, exitedContinuation) = AsyncStream.makeStream(of: Int32.self)
    process.terminationHandler = { process in
      exitedContinuation.yield(process.terminationStatus)
      exitedContinuation.finish()
    }

    try process.run()
    self.process = process
    self.input = stdin.fileHandleForWriting
    self.lines = InteropSupport.lines(from: stdout).makeAsyncIterator()
    self.exited = exited
  }

  deinit {
    if self.process.isRunning {
      self.process.terminate()
    }
  }

  /// Sends one command.
  public func send(_ command: [String: String]) throws {
    var line = try JSONSerialization.data(withJSONObject: command, options: [.sortedKeys])
    line.append(UInt8(ascii: "\n"))
    try self.input.write(contentsOf: line)
  }

  /// The next reply that matches `predicate`; replies it passes over are kept for later calls.
  public func next(where predicate: (Reply) -> Bool) async throws -> Reply {
    if let index = self.skipped.firstIndex(where: predicate) {
      return self.skipped.remove(at: index)
    }
    while let line = await self.lines.next() {
      let reply: Reply
      do {
        reply = try JSONDecoder().decode(Reply.self, from: Data(line.utf8))
      } catch {
        throw Failure(description: "The peer wrote a line that is not a reply: \(line)")
      }
      if predicate(reply) {
        return reply
      }
      self.skipped.append(reply)
    }
    throw Failure(description: "The peer exited before the expected reply.")
  }

  /// Kills the peer at once (SIGKILL), as a crashed process dies; returns its exit status.
  public func kill() async -> Int32 {
    _ = Foundation.kill(self.process.processIdentifier, SIGKILL)
    var exited = self.exited.makeAsyncIterator()
    return await exited.next() ?? self.process.terminationStatus
  }

  /// Closes the peer's input and waits for it to exit; returns its exit status.
  public func finish() async throws -> Int32 {
    try self.input.close()
    var exited = self.exited.makeAsyncIterator()
    return await exited.next() ?? self.process.terminationStatus
  }
}
