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
import Testing

@testable import mesh_demo

/// The built `mesh-demo`, beside this test bundle in the build folder.
private let demo = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
  .deletingLastPathComponent().appendingPathComponent("mesh-demo")

/// Bytes a pipe's handler appends to while the test reads them.
private final class Collected: Sendable {
  private let data = Mutex(Data())

  func append(_ bytes: Data) { self.data.withLock { $0.append(bytes) } }

  var text: String { self.data.withLock { String(decoding: $0, as: UTF8.self) } }
}

/// A run of the demo: its output, line by line, as it comes.
private final class DemoRun {
  let process: Process
  let lines: AsyncStream<String>
  private let errorOutput = Collected()

  init(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = demo
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    let lines = outputLines(of: output.fileHandleForReading)
    let errorOutput = self.errorOutput
    errors.fileHandleForReading.readabilityHandler = { handle in
      let data = handle.availableData
      if data.isEmpty {
        handle.readabilityHandler = nil
      } else {
        errorOutput.append(data)
      }
    }
    self.process = process
    self.lines = lines
    try process.run()
  }

  /// Every line of output, once the demo has closed its output (it exited).
  func allLines() async -> [String] {
    var all: [String] = []
    for await line in self.lines { all.append(line) }
    return all
  }

  /// Waits for the process to end; its status and standard error.
  func finish() async -> (reason: Process.TerminationReason, status: Int32, errors: String) {
    _ = await self.allLines()
    self.process.waitUntilExit()
    return (
      self.process.terminationReason,
      self.process.terminationStatus,
      self.errorOutput.text
    )
  }
}

@Suite("mesh-demo", .timeLimit(.minutes(2)))
struct MeshDemoTests {
  @Test("Flags in range are read: seconds, Go durations, workers")
  func goodFlags() throws {
    let options = try DemoOptions(["--duration", "4", "--concurrency", "16"])
    #expect(options.duration == .seconds(4))
    #expect(options.concurrency == 16)
    #expect(try DemoOptions(["--duration", "1m30s"]).duration == .seconds(90))
    #expect(try DemoOptions(["--duration", "0.5"]).duration == .milliseconds(500))
    #expect(try DemoOptions(["--duration", "24h"]).duration == .seconds(86_400))
    #expect(try DemoOptions([]).duration == .seconds(15))
    #expect(try DemoOptions(["--help"]).help)
  }

  @Test(
    "Bad flags are a clear error and exit status 1, before anything starts",
    arguments: [
      (["--duration", "1e308"], "--duration"), (["--duration", "inf"], "--duration"),
      (["--duration", "nan"], "--duration"), (["--duration", "-1"], "--duration"),
      (["--duration", "0"], "--duration"), (["--duration", "soon"], "--duration"),
      (["--duration", "9223372036854775807"], "--duration"), (["--duration"], "--duration"),
      (["--duration", "25h"], "--duration"), (["--concurrency", "0"], "--concurrency"),
      (["--concurrency", "99999999999999999999"], "--concurrency"),
      (["--concurrency", "1000000"], "--concurrency"), (["--concurrency", "2.5"], "--concurrency"),
      (["--frobnicate"], "unknown argument"),
    ]
  )
  func badFlags(arguments: [String], mention: String) async throws {
    let run = try DemoRun(arguments)
    let lines = await run.allLines()
    let (reason, status, errors) = await run.finish()
    #expect(reason == .exit, "\(arguments): ended by a signal (a trap?)")
    #expect(status == 1, "\(arguments)")
    #expect(errors.hasPrefix("mesh-demo: "), "\(errors)")
    #expect(errors.contains(mention), "\(errors)")
    #expect(lines.isEmpty, "\(arguments) started: \(lines)")
  }

  @Test(
    "SIGINT and SIGTERM remove the temporary folder with the CA key",
    arguments: [SIGINT, SIGTERM]
  )
  func signalsRemoveTheFolder(signal: Int32) async throws {
    let run = try DemoRun(["--duration", "60"])
    var folder: String?
    var iterator = run.lines.makeAsyncIterator()
    // Waits for the demo to say where its certificates are, then for its first instance.
    while let line = await iterator.next() {
      if line.hasPrefix("demo: made a mesh CA"), let range = line.range(of: " in /") {
        folder = String(line[line.index(before: range.upperBound)...])
      }
      if line.hasPrefix("demo: greeter-0 ") { break }
    }
    let path = try #require(folder)
    #expect(FileManager.default.fileExists(atPath: path + "/ca-key.pem"))
    kill(run.process.processIdentifier, signal)
    var rest: [String] = []
    while let line = await iterator.next() { rest.append(line) }
    run.process.waitUntilExit()
    #expect(run.process.terminationReason == .exit)
    #expect(run.process.terminationStatus == 128 + signal)
    #expect(!FileManager.default.fileExists(atPath: path), "left behind: \(path)")
    #expect(rest.contains { $0.hasPrefix("demo: stopped by") }, "\(rest)")
  }
}
