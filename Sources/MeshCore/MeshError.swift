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

/// The shape every error of the mesh has: a ``code`` to switch on, a ``message`` for people, and
/// the ``cause`` underneath, kept as it was thrown rather than turned into text.
///
/// Each module has its own error type (``MeshInputError``, `MeshTLSError`, `MeshDiscoveryError`,
/// `MeshConsulError`, `MeshResilienceError`, `MeshBalancingError`, `MeshConfigurationError`,
/// `MeshClientError`, `ConsulAgentError`), and each is a struct of this shape, as grpc-swift's
/// `RPCError` is: its `Code` is a struct of static values, so new codes can be added without
/// breaking a `switch` that has a `default`. Some carry context of their own besides (the field
/// a setting came from, a file, an HTTP status). Errors are equal when their codes, messages and
/// context are; causes are not compared.
///
/// An error that can end an RPC also conforms to GRPCCore's `RPCErrorConvertible`, so that the
/// caller (or, thrown from a handler, the client) sees the status code it means rather than
/// `UNKNOWN`.
public protocol MeshError: Error, CustomStringConvertible, Sendable {
  /// The type of ``code``.
  associatedtype Code: Hashable, Sendable, CustomStringConvertible

  /// What kind of problem this is.
  var code: Code { get }
  /// What was wrong, for people: names the value, file, target or peer concerned.
  var message: String { get }
  /// The error underneath, if there was one.
  var cause: (any Error)? { get }
}

extension MeshError {
  /// `code: message`, and the cause when there is one.
  public var description: String {
    if let cause = self.cause {
      return "\(self.code): \(self.message) (cause: \(cause))"
    }
    return "\(self.code): \(self.message)"
  }
}

extension MeshError where Self: Hashable {
  /// Equal when codes and messages are; causes are not compared. An error with context of its
  /// own (a field, a file, a status) compares that too, in its own `==`.
  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.code == rhs.code && lhs.message == rhs.message
  }

  /// Hashes the code and the message, the parts that `==` compares.
  public func hash(into hasher: inout Hasher) {
    hasher.combine(self.code)
    hasher.combine(self.message)
  }
}
