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
internal import GRPCNIOTransportHTTP2Posix
public import X509

/// The verified caller of an RPC on an mTLS mesh server.
///
/// Read it in a handler with ``current(in:)``, or install ``MeshCallerInterceptor`` and read the
/// task-local ``current`` anywhere below the handler:
///
/// ```swift
/// func placeOrder(request: Order, context: ServerContext) async throws -> Receipt {
///   guard MeshCaller.current(in: context)?.identity == checkoutIdentity else {
///     throw RPCError(code: .permissionDenied, message: "Only checkout may place orders.")
///   }
///   ...
/// }
/// ```
public struct MeshCaller: Sendable, Hashable {
  /// The caller's primary identity: its SPIFFE ID, else its first DNS identity.
  public let identity: MeshServiceIdentity
  /// Every identity the caller's certificate carries.
  public let identities: [MeshServiceIdentity]
  /// The caller's certificate.
  public let certificate: Certificate

  /// The caller of the RPC that `context` describes, or nil if the connection was not mTLS (or
  /// the certificate names no identity).
  ///
  /// The certificate is the one the server's verification accepted: it chains to the mesh CA.
  public static func current(in context: ServerContext) -> MeshCaller? {
    if let verified = context.transportSpecific as? any MeshVerifiedPeerContext {
      return verified.verifiedPeer?.chain.first.flatMap { MeshCaller(certificate: $0) }
    }
    guard let posix = context.transportSpecific as? HTTP2ServerTransport.Posix.Context else {
      return nil
    }
    guard let certificate = posix.peerCertificateChain?.leaf ?? posix.peerCertificate else {
      return nil
    }
    return MeshCaller(certificate: certificate)
  }

  /// The caller set by ``MeshCallerInterceptor`` for the RPC being handled.
  @TaskLocal public static var current: MeshCaller?

  package init?(certificate: Certificate) {
    let identities = MeshServiceIdentity.identities(in: certificate)
    guard let primary = identities.first(where: { $0.spiffeID != nil }) ?? identities.first else {
      return nil
    }
    self.identity = primary
    self.identities = identities
    self.certificate = certificate
  }
}

/// What a server transport that verifies its clients itself (the native transport) tells each
/// RPC about its caller.
package protocol MeshVerifiedPeerContext: ServerContext.TransportSpecific {
  /// The client's verified identity and chain; nil on a plaintext connection.
  var verifiedPeer: MeshVerifiedPeer? { get }
}

/// A server interceptor that makes the verified caller available as ``MeshCaller/current``
/// to the handler and everything it calls.
public struct MeshCallerInterceptor: ServerInterceptor {
  /// Creates the interceptor.
  public init() {}

  /// Runs the rest of the RPC with ``MeshCaller/current`` set to its verified caller (nil when
  /// the connection is not mTLS).
  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    try await MeshCaller.$current.withValue(MeshCaller.current(in: context)) {
      try await next(request, context)
    }
  }
}
