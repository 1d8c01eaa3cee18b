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

public import MeshCore

/// A configuration file (or an environment variable) that cannot be used: the field's path
/// (`services.orders.retry_policy.num_retries`) and why. Nothing of the file is applied.
public struct MeshConfigurationError: MeshError, Hashable {
  /// What kind of problem this is. New codes may be added; switch with a `default`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Value: String, Hashable, Sendable {
      case unreadable
      case malformed
      case invalidValue
    }

    private let value: Value

    private init(_ value: Value) {
      self.value = value
    }

    /// The file could not be read, or is not UTF-8 text.
    public static let unreadable = Self(.unreadable)
    /// The file is not valid JSON or YAML.
    public static let malformed = Self(.malformed)
    /// A field is unknown, missing, of the wrong type, or out of range.
    public static let invalidValue = Self(.invalidValue)

    /// The code's name: `unreadable`, `malformed` or `invalidValue`.
    public var description: String {
      self.value.rawValue
    }
  }

  /// The ``file`` of a setting read from an environment variable (its ``field``).
  public static let environment = "<environment>"

  /// What kind of problem this is.
  public var code: Code
  /// The file the error is in; ``environment`` for an environment variable.
  public var file: String
  /// The field's path in the file; empty for the file as a whole.
  public var field: String
  /// What is wrong with the field, without its name.
  public var message: String
  /// The error underneath: the policy type's check (a `MeshResilienceError`), a
  /// ``MeshInputError``, the YAML or JSON decoder's or the file system's error.
  public var cause: (any Error)?

  /// An error of kind `code` about `field` of `file`; `message` says what is wrong.
  public init(
    code: Code,
    file: String,
    field: String,
    message: String,
    cause: (any Error)? = nil
  ) {
    self.code = code
    self.file = file
    self.field = field
    self.message = message
    self.cause = cause
  }

  /// `file: field: message` (`file: message` for the file as a whole).
  public var description: String {
    self.field.isEmpty
      ? "\(self.file): \(self.message)" : "\(self.file): \(self.field): \(self.message)"
  }

  /// Equal when code, file, field and message are (the cause is not compared).
  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.code == rhs.code && lhs.file == rhs.file && lhs.field == rhs.field
      && lhs.message == rhs.message
  }

  /// Hashes the parts that `==` compares.
  public func hash(into hasher: inout Hasher) {
    hasher.combine(self.code)
    hasher.combine(self.file)
    hasher.combine(self.field)
    hasher.combine(self.message)
  }
}
