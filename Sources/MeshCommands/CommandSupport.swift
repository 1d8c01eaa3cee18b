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

internal import ArgumentParser
internal import Foundation
internal import MeshCore

/// Where a command writes its output: standard output, or a buffer a test reads.
///
/// Each line is written at once (no buffering), so that a script reading a pipe sees it as it
/// happens. Colour is used only on a terminal, and never with `NO_COLOR` set or `TERM=dumb`.
public struct MeshCommandOutput: Sendable {
  private let write: @Sendable (String) -> Void
  /// Whether lines may carry ANSI colour.
  public let usesColour: Bool

  /// Lines given to `write`, with or without colour.
  public init(usesColour: Bool = false, write: @escaping @Sendable (String) -> Void) {
    self.usesColour = usesColour
    self.write = write
  }

  /// The process's standard output.
  public static var standardOutput: Self {
    let environment = ProcessInfo.processInfo.environment
    let colour =
      isatty(STDOUT_FILENO) == 1 && environment["NO_COLOR"] == nil && environment["TERM"] != "dumb"
    return Self(usesColour: colour) { text in
      FileHandle.standardOutput.write(Data(text.utf8))
    }
  }

  /// Writes `text` and a new line.
  public func line(_ text: String = "") {
    self.write(text + "\n")
  }

  /// `value` as JSON with sorted keys: pretty-printed on lines of its own, or (`pretty` false)
  /// on one line, for a stream of objects a script reads line by line.
  func json(_ value: some Encodable, pretty: Bool = true) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting =
      pretty
      ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
      : [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    self.line(String(decoding: try encoder.encode(value), as: UTF8.self))
  }

  enum Colour: String {
    case green = "32"
    case red = "31"
    case yellow = "33"
    case dim = "2"
  }

  /// `text` in `colour` on a terminal, as it is otherwise.
  func paint(_ text: String, _ colour: Colour) -> String {
    self.usesColour ? "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m" : text
  }

  /// Rows as a table: each column as wide as its widest cell, two spaces between columns.
  /// Widths count characters, so colour is applied to whole cells after padding by `paint`.
  func table(_ header: [String], _ rows: [[String]], paint: (Int, Int, String) -> String = { $2 }) {
    let all = [header] + rows
    let count = header.count
    var widths = [Int](repeating: 0, count: count)
    for row in all {
      for (column, cell) in row.prefix(count).enumerated() {
        widths[column] = max(widths[column], cell.count)
      }
    }
    for (index, row) in all.enumerated() {
      var cells: [String] = []
      for (column, cell) in row.prefix(count).enumerated() {
        let padded =
          column == count - 1
          ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
        cells.append(index == 0 ? padded : paint(index - 1, column, padded))
      }
      self.line(cells.joined(separator: "  "))
    }
  }
}

/// A command's failure with the exit status it means (`mesh health`'s 2, 3 and 4, or 1), and
/// what to print to standard error.
public struct MeshCommandFailure: Error, CustomStringConvertible, Sendable {
  /// The process's exit status.
  public var exitCode: Int32
  /// Why, in one line.
  public var message: String

  public init(exitCode: Int32, _ message: String) {
    self.exitCode = exitCode
    self.message = message
  }

  public var description: String { self.message }
}

/// A command that writes to a ``MeshCommandOutput`` and returns its exit status: the `mesh`
/// executable gives it standard output, tests a buffer.
public protocol MeshReportingCommand: MeshAsyncCommand {
  /// Runs the command; returns the exit status (0 for success).
  func execute(_ output: MeshCommandOutput) async throws -> Int32
}

extension MeshReportingCommand {
  public mutating func runAsync() async throws {
    let status = try await self.execute(.standardOutput)
    if status != 0 { throw ExitCode(status) }
  }
}

extension MeshCommand {
  /// Runs `mesh` with `arguments` (the process's own when nil) and returns its exit status:
  /// 0, or 1 for bad flags (ArgumentParser's own status for those is 64; `mesh health` keeps
  /// grpc_health_probe's 1), or a command's own status. Messages go to standard error, help to
  /// standard output.
  public static func main(arguments: [String]? = nil) async -> Int32 {
    do {
      var command = try Self.parseAsRoot(arguments)
      if var asyncCommand = command as? any MeshAsyncCommand {
        try await asyncCommand.runAsync()
      } else {
        try command.run()
      }
      return 0
    } catch let failure as MeshCommandFailure {
      FileHandle.standardError.write(Data("mesh: \(failure.message)\n".utf8))
      return failure.exitCode
    } catch {
      let code = Self.exitCode(for: error)
      let message = Self.fullMessage(for: error)
      if code == .success {
        if !message.isEmpty { FileHandle.standardOutput.write(Data((message + "\n").utf8)) }
        return 0
      }
      if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
      // Usage errors (64) are 1, as every other bad input; an ExitCode keeps its value.
      return code == .validationFailure ? 1 : code.rawValue
    }
  }
}

// MARK: - Flags from outside

/// A `--*-timeout` flag: Go syntax (`1s`, `250ms`) or seconds, more than zero and at most an hour.
func parseTimeout(_ text: String, flag: String) throws -> Duration {
  do {
    let duration = try MeshInput.duration(
      text,
      field: flag,
      bareSeconds: true,
      in: .nanoseconds(1)...(.seconds(3600))
    )
    return duration
  } catch {
    throw ValidationError("\(flag): \(error.message) (use Go syntax such as 1s or 250ms).")
  }
}

/// An address to call: `host:port` or `[ipv6]:port`, both checked before NIO sees them.
func parseAddress(_ text: String, what: String) throws -> (host: MeshHost, port: Int) {
  do {
    return try MeshHost.parseAuthority(text, field: what)
  } catch {
    throw ValidationError("\(what) \(error.message).")
  }
}

/// A base URL to read an HTTP endpoint at: `host:port` or an `http://` URL (with no path),
/// checked as a Consul address is.
func parseHTTPBase(_ text: String, what: String) throws -> URL {
  let withScheme = text.contains("://") ? text : "http://\(text)"
  guard let url = URL(string: withScheme), url.scheme == "http" || url.scheme == "https",
    let host = url.host, !host.isEmpty, url.path.isEmpty || url.path == "/",
    url.query == nil, url.user == nil
  else {
    throw ValidationError(
      "\(what) must be host:port or an http(s) URL with no path, not \(MeshInput.quoted(text))."
    )
  }
  do {
    _ = try MeshHost(host, field: what)
    if let port = url.port { _ = try MeshInput.port(port, field: what) }
  } catch {
    throw ValidationError("\(what) \(MeshInput.quoted(text)): \(error.message).")
  }
  var base = withScheme
  while base.hasSuffix("/") { base.removeLast() }
  return URL(string: base) ?? url
}

/// Runs `operation` for at most `limit`; nil when the time ran out first (the operation is then
/// cancelled, and awaited). However grpc-swift or NIO waits, the command's own limit holds.
func withTimeLimit<T: Sendable>(
  _ limit: Duration,
  _ operation: @escaping @Sendable () async -> T
) async -> T? {
  await withTaskGroup(of: T?.self) { group in
    group.addTask { await operation() }
    group.addTask {
      try? await Task.sleep(for: limit)
      return nil
    }
    let first = await group.next() ?? nil
    group.cancelAll()
    return first
  }
}
