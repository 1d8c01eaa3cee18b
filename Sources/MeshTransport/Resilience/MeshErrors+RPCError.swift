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
public import MeshDiscovery
public import MeshIdentity

// MeshIdentity and MeshDiscovery stay free of gRPC (the CA tool links the one, registries' clients
// the other): their errors' conformances live where they end RPCs, in the transport.

extension MeshDiscoveryError: RPCErrorConvertible {
  /// `INVALID_ARGUMENT` for an invalid target, else `UNAVAILABLE`.
  public var rpcErrorCode: RPCError.Code {
    self.code == .invalidTarget ? .invalidArgument : .unavailable
  }

  /// The ``MeshDiscoveryError/message``.
  public var rpcErrorMessage: String {
    self.message
  }
}

extension MeshTLSError: RPCErrorConvertible {
  /// `FAILED_PRECONDITION` for the process's own TLS material or settings (a missing or
  /// malformed file, a key that doesn't match its certificate, an invalid identity or setting);
  /// `UNAVAILABLE` for a peer that can't be trusted (its chain, validity or identity), which
  /// another endpoint may not share.
  public var rpcErrorCode: RPCError.Code {
    switch self.code {
    case .fileNotFound, .unreadableFile, .malformedPEM, .privateKeyMismatch, .invalidIdentity,
      .invalidConfiguration, .alreadyExists:
      return .failedPrecondition
    default:
      return .unavailable
    }
  }

  /// The ``MeshTLSError/message``.
  public var rpcErrorMessage: String {
    self.message
  }
}

extension RPCError {
  /// `error` as an RPC failure: itself if it is an `RPCError`, its conversion if it is
  /// `RPCErrorConvertible` (a mesh error), else `UNAVAILABLE` (a transport failure another
  /// endpoint may not have) with `error` as its cause, never only its text.
  package init(meshFailure error: any Error, context: String? = nil) {
    if let rpcError = error as? RPCError {
      self = rpcError
    } else if let convertible = error as? any RPCErrorConvertible {
      self.init(convertible)
    } else {
      let text = context.map { "\($0): \(error)" } ?? "\(error)"
      self.init(code: .unavailable, message: text, cause: error)
    }
  }
}
