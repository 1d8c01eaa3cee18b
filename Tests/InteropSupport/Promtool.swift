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

internal import Foundation

/// Debian's `promtool` (package `prometheus`), which the test command's CI installs.
public enum Promtool {
  public static let path = "/usr/bin/promtool"

  public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: Self.path) }

  /// Runs promtool with `arguments`, `input` as its standard input; returns its exit status and
  /// what it printed (both streams).
  public static func run(
    _ arguments: [String],
    input: String = ""
  ) throws -> (status: Int32, output: String) {
    // The input goes through a file: a pipe could fill while promtool has not read it yet.
    let inputFile = FileManager.default.temporaryDirectory
      .appendingPathComponent("promtool-\(UUID().uuidString)")
    try Data(input.utf8).write(to: inputFile)
    defer { try? FileManager.default.removeItem(at: inputFile) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Self.path)
    process.arguments = arguments
    process.standardInput = try FileHandle(forReadingFrom: inputFile)
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
  }
}
