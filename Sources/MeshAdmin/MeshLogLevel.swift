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

public import Logging
internal import Synchronization

/// A log level that can change while the process runs: the admin endpoint's `/logging` sets it,
/// and every logger made by ``controlling(_:)`` follows it at its next line.
///
/// ```swift
/// let level = MeshLogLevel(.info)
/// let logger = level.controlling(Logger(label: "orders"))
/// // POST /logging?level=debug: `logger` logs debug lines from now on.
/// ```
public final class MeshLogLevel: Sendable {
  private let raw: Atomic<Int>

  public init(_ level: Logger.Level = .info) {
    self.raw = Atomic(Self.index(of: level))
  }

  /// The level now.
  public var level: Logger.Level {
    Self.levels[self.raw.load(ordering: .relaxed)]
  }

  /// Sets the level for every logger this controls.
  public func set(_ level: Logger.Level) {
    self.raw.store(Self.index(of: level), ordering: .relaxed)
  }

  /// `logger`, writing through its handler, with its level read from here at each line.
  public func controlling(_ logger: Logger) -> Logger {
    if logger.handler is MeshLevelControlledLogHandler { return logger }
    var wrapped = logger.handler
    // The wrapper decides; the handler it wraps writes whatever reaches it.
    wrapped.logLevel = .trace
    let handler = MeshLevelControlledLogHandler(wrapped: wrapped, control: self)
    return Logger(label: logger.label, factory: { _ in handler })
  }

  /// The levels by name, as `/logging` reads them: trace, debug, info, notice, warning, error,
  /// critical.
  public static func parse(_ name: String) -> Logger.Level? {
    Logger.Level(rawValue: name.lowercased())
  }

  private static let levels = Logger.Level.allCases

  private static func index(of level: Logger.Level) -> Int {
    Self.levels.firstIndex(of: level) ?? 2
  }
}

/// A handler that takes its level from a ``MeshLogLevel`` and writes through another handler.
/// A copy whose level is set (`logger.logLevel = …`) keeps that level for itself; the shared one
/// changes only through ``MeshLogLevel/set(_:)`` (`/logging`).
struct MeshLevelControlledLogHandler: LogHandler {
  var wrapped: any LogHandler
  let control: MeshLogLevel
  var override: Logger.Level?

  var logLevel: Logger.Level {
    get { self.override ?? self.control.level }
    set { self.override = newValue }
  }

  var metadata: Logger.Metadata {
    get { self.wrapped.metadata }
    set { self.wrapped.metadata = newValue }
  }

  var metadataProvider: Logger.MetadataProvider? {
    get { self.wrapped.metadataProvider }
    set { self.wrapped.metadataProvider = newValue }
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { self.wrapped[metadataKey: key] }
    set { self.wrapped[metadataKey: key] = newValue }
  }

  func log(event: LogEvent) {
    self.wrapped.log(event: event)
  }
}
