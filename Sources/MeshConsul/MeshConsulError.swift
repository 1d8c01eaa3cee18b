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

/// An error talking to Consul.
///
/// MeshClient makes it `RPCErrorConvertible` (this module stays free of gRPC): it ends an RPC as
/// `UNAVAILABLE`, or as `FAILED_PRECONDITION` when the client's own configuration is unusable.
public struct MeshConsulError: MeshError, Hashable {
  /// What kind of problem this is. New codes may be added; switch with a `default`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Value: String, Hashable, Sendable {
      case unexpectedStatus
      case malformedResponse
      case timeout
      case connectionFailed
      case invalidConfiguration
    }

    private let value: Value

    private init(_ value: Value) {
      self.value = value
    }

    /// Consul answered with a non-2xx status; ``MeshConsulError/status`` and its plain-text
    /// message say why.
    public static let unexpectedStatus = Self(.unexpectedStatus)
    /// The body was not the JSON the endpoint returns.
    public static let malformedResponse = Self(.malformedResponse)
    /// No answer within the request's deadline (a blocking query's wait plus a margin).
    public static let timeout = Self(.timeout)
    /// The agent could not be reached.
    public static let connectionFailed = Self(.connectionFailed)
    /// The client's configuration is unusable (bad address, unreadable CA bundle…).
    public static let invalidConfiguration = Self(.invalidConfiguration)

    /// The code's name (`unexpectedStatus`, `timeout`…).
    public var description: String {
      self.value.rawValue
    }
  }

  /// What kind of problem this is.
  public var code: Code
  /// The HTTP status, for ``Code/unexpectedStatus``.
  public var status: Int?
  /// What went wrong; for a non-2xx answer, Consul's own plain-text message.
  public var message: String
  /// The error underneath (async-http-client's, the JSON decoder's, NIOSSL's), kept as it was
  /// thrown rather than turned into text.
  public var cause: (any Error)?

  /// An error of kind `code`; `status` is the HTTP status of a non-2xx answer.
  public init(code: Code, status: Int? = nil, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.status = status
    self.message = message
    self.cause = cause
  }

  /// Equal when code, status and message are (the cause is not compared).
  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.code == rhs.code && lhs.status == rhs.status && lhs.message == rhs.message
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(self.code)
    hasher.combine(self.status)
    hasher.combine(self.message)
  }

  /// The wording of Consul's Go client for a non-2xx answer (`Unexpected response code: 403 (…)`),
  /// else `code: message`.
  public var description: String {
    if let status = self.status {
      // The wording of Consul's own Go client.
      return "Unexpected response code: \(status) (\(self.message))"
    }
    return "\(self.code): \(self.message)"
  }

  /// Whether retrying may help: everything but a configuration error or a 4xx other than 429.
  public var isRetryable: Bool {
    switch self.code {
    case .invalidConfiguration:
      return false
    case .unexpectedStatus:
      guard let status = self.status else { return true }
      return status >= 500 || status == 429
    default:
      return true
    }
  }
}
