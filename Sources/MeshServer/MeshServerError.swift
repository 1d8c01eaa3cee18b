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

public import GRPCCore
public import MeshCore

/// A mesh server's error: a setting that can't be used, or an address it could not listen on.
public struct MeshServerError: MeshError, Hashable, RPCErrorConvertible {
  /// What kind of problem this is. New codes may be added; switch with a `default`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Value: String, Hashable, Sendable {
      case invalidConfiguration
      case bindFailed
    }

    private let value: Value

    private init(_ value: Value) {
      self.value = value
    }

    /// A setting (in code or from the environment) can't be used.
    public static let invalidConfiguration = Self(.invalidConfiguration)
    /// The server could not listen on its address.
    public static let bindFailed = Self(.bindFailed)

    /// The code's name: `invalidConfiguration` or `bindFailed`.
    public var description: String {
      self.value.rawValue
    }
  }

  /// What kind of problem this is.
  public var code: Code
  /// What was wrong, naming the setting or the address.
  public var message: String
  /// The error underneath: a `MeshInputError` for a bad value, NIO's for a failed bind.
  public var cause: (any Error)?

  /// An error of kind `code`, described by `message`, with the underlying `cause` if any.
  public init(code: Code, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  /// `FAILED_PRECONDITION`: the server can't serve as configured.
  public var rpcErrorCode: RPCError.Code {
    .failedPrecondition
  }

  /// The ``message``.
  public var rpcErrorMessage: String {
    self.message
  }
}
