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

internal import CMeshNGHTTP2
public import GRPCCore

/// An error of the native HTTP/2 transport: a connection or stream that failed, or a peer that
/// broke the protocol. It becomes an `RPCError` with ``code``.
public struct MeshHTTP2Error: Error, Sendable, CustomStringConvertible, RPCErrorConvertible {
  /// The RPC status code the error is reported with.
  public var code: RPCError.Code
  /// What went wrong.
  public var message: String

  init(_ code: RPCError.Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// nghttp2's error `value` from `operation`.
  static func nghttp2(_ value: Int32, during operation: String) -> Self {
    let text = String(cString: nghttp2_strerror(value))
    let code: RPCError.Code =
      value == NGHTTP2_ERR_NOMEM.rawValue ? .resourceExhausted : .unavailable
    return Self(code, "HTTP/2 error while \(operation): \(text) (\(value))")
  }

  public var description: String { "\(self.code): \(self.message)" }

  /// `error` as gRPC's callers expect it: an `RPCError` (this error's code and message).
  static func rpcError(_ error: any Error) -> any Error {
    switch error {
    case let error as MeshHTTP2Error: RPCError(code: error.code, message: error.message)
    default: error
    }
  }

  public var rpcErrorCode: RPCError.Code { self.code }
  public var rpcErrorMessage: String { self.message }
}

/// HTTP/2's error codes (RFC 9113 §7).
struct MeshHTTP2ErrorCode: RawRepresentable, Hashable, Sendable {
  var rawValue: UInt32

  static let noError = Self(rawValue: 0x0)
  static let protocolError = Self(rawValue: 0x1)
  static let internalError = Self(rawValue: 0x2)
  static let flowControlError = Self(rawValue: 0x3)
  static let streamClosed = Self(rawValue: 0x5)
  static let refusedStream = Self(rawValue: 0x7)
  static let cancel = Self(rawValue: 0x8)
  static let enhanceYourCalm = Self(rawValue: 0xb)
  static let inadequateSecurity = Self(rawValue: 0xc)

  /// The RPC status of a stream reset with this code (gRPC's HTTP/2 mapping, doc/PROTOCOL-HTTP2).
  var rpcCode: RPCError.Code {
    switch self {
    case .refusedStream: .unavailable
    case .cancel: .cancelled
    case .enhanceYourCalm: .resourceExhausted
    case .inadequateSecurity: .permissionDenied
    default: .internalError
    }
  }
}
