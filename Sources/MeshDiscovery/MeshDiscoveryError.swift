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

/// An error from discovery: a target that cannot be watched, or a lookup that failed.
///
/// MeshTransport makes it `RPCErrorConvertible` (this module stays free of gRPC): it ends an RPC
/// as `INVALID_ARGUMENT` (a target that can't be watched) or `UNAVAILABLE` (a failed lookup).
public struct MeshDiscoveryError: MeshError, Hashable {
  /// What kind of problem this is. New codes may be added; switch with a `default`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Value: String, Hashable, Sendable {
      case invalidTarget
      case resolutionFailed
    }

    private let value: Value

    private init(_ value: Value) {
      self.value = value
    }

    /// The service or target name cannot be watched (empty, bad port…).
    public static let invalidTarget = Self(.invalidTarget)
    /// A name lookup failed.
    public static let resolutionFailed = Self(.resolutionFailed)

    /// The code's name: `invalidTarget` or `resolutionFailed`.
    public var description: String {
      self.value.rawValue
    }
  }

  /// What kind of problem this is.
  public var code: Code
  /// What went wrong, naming the target or host.
  public var message: String
  /// The error underneath (a ``MeshInputError`` for a malformed target), if there was one.
  public var cause: (any Error)?

  /// An error of kind `code`, described by `message`, with the underlying `cause` if any.
  public init(code: Code, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }
}
