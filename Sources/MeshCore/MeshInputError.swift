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

/// A value that the mesh refused: from outside the process (a flag, a file, the environment, a
/// registry's JSON, an HTTP request), or a setting made in code (a resilience or balancing
/// policy's field, for which `MeshResilienceError` and `MeshBalancingError` are its names).
///
/// Every conversion of untrusted input goes through ``MeshInput`` or ``MeshGoDuration``, which
/// throw this instead of trapping. `field` names where the value came from (a flag, a field path,
/// an environment variable), in the caller's vocabulary; `message` says what is wrong with it.
public struct MeshInputError: MeshError, Hashable {
  /// What kind of problem the value has.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Value: String, Hashable, Sendable {
      case invalid
      case outOfRange
    }

    private let value: Value

    private init(_ value: Value) {
      self.value = value
    }

    /// Not a value of the expected kind (not a number, not a duration, not a host).
    public static let invalid = Self(.invalid)
    /// A value of the right kind, but outside what the field accepts or can represent.
    public static let outOfRange = Self(.outOfRange)

    /// The code's name: `invalid` or `outOfRange`.
    public var description: String {
      self.value.rawValue
    }
  }

  /// What kind of problem the value has.
  public var code: Code
  /// Where the value came from: a flag (`--days`), a field path (`Check.Interval`), a variable.
  /// Empty when the caller names it itself.
  public var field: String
  /// What is wrong with the value, without the field's name.
  public var message: String
  /// The error underneath, if there was one.
  public var cause: (any Error)?

  /// An error of kind `code` about the value of `field`; `message` says what is wrong.
  public init(code: Code, field: String, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.field = field
    self.message = message
    self.cause = cause
  }

  /// The same error, naming `field` (as the caller knows the value).
  public func naming(_ field: String) -> Self {
    var copy = self
    copy.field = field
    return copy
  }

  /// The same error, its field prefixed with `path` (`services.greeter` + `retry.maxAttempts`).
  public func nested(in path: String) -> Self {
    self.naming(path.isEmpty ? self.field : "\(path).\(self.field)")
  }

  package init(_ code: Code, field: String, _ message: String) {
    self.init(code: code, field: field, message: message)
  }

  /// `field: message`, or the message alone when no field is named.
  public var description: String {
    self.field.isEmpty ? self.message : "\(self.field): \(self.message)"
  }

  /// Equal when code, field and message are (the cause is not compared).
  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.code == rhs.code && lhs.field == rhs.field && lhs.message == rhs.message
  }

  /// Hashes the parts that `==` compares.
  public func hash(into hasher: inout Hasher) {
    hasher.combine(self.code)
    hasher.combine(self.field)
    hasher.combine(self.message)
  }
}
