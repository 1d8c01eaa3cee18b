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
public import GRPCNIOTransportHTTP2Posix
package import MeshCore
public import MeshDiscovery

/// Makes the transport of one endpoint (a subchannel).
///
/// The balancing transport knows endpoints only through this factory, so another HTTP/2
/// transport (the native one on libnghttp2 and OpenSSL) plugs in without touching the
/// policies.
public protocol MeshSubchannelFactory<Subchannel>: Sendable {
  associatedtype Subchannel: ClientTransport

  /// A transport connected to `endpoint` only. The balancing transport validates the endpoint's
  /// host and port first.
  func makeSubchannel(for endpoint: MeshEndpoint) throws -> Subchannel

  /// Why the last connection to `endpoint` failed, where the factory knows more than the
  /// transport's error says (a TLS verification failure, with the identities); nil otherwise.
  func connectionFailure(for endpoint: MeshEndpoint) -> (any Error)?

  /// Whether failing a stream's request (`finish(throwing:)` on its outbound writer) also ends
  /// its response, as an HTTP/2 transport's stream reset does. When it does not, the balancing
  /// transport cancels an attempt it abandons at its per-try timeout as well, which costs a child
  /// task per attempt. Default: false.
  var requestFailureEndsResponse: Bool { get }

  /// Whether ``withConnectedStream(on:descriptor:options:_:)`` can open streams (default:
  /// false). When it can, the balancing transport runs an RPC's first attempt in the caller's
  /// task, with no task of its own between the caller and the stream.
  var opensConnectedStreams: Bool { get }

  /// Opens a stream on `subchannel` only if it is connected now, and runs `closure` with it;
  /// nil, with nothing opened and `closure` not called, when opening it would wait for a
  /// connection (which only the balancing transport's own tasks may wait for, bounded by the
  /// RPC's deadline). Default: nil.
  func withConnectedStream<T: Sendable>(
    on subchannel: Subchannel,
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Subchannel.Inbound, Subchannel.Outbound>, ClientContext) async throws ->
      T
  ) async throws -> T?
}

extension MeshSubchannelFactory {
  public func connectionFailure(for endpoint: MeshEndpoint) -> (any Error)? {
    nil
  }

  public var requestFailureEndsResponse: Bool { false }

  public var opensConnectedStreams: Bool { false }

  public func withConnectedStream<T: Sendable>(
    on subchannel: Subchannel,
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Subchannel.Inbound, Subchannel.Outbound>, ClientContext) async throws ->
      T
  ) async throws -> T? {
    nil
  }
}

/// A balancing transport over grpc-swift's HTTP/2 transport, on the continuous clock: what a
/// ``MeshBalancingTransport`` is in production.
public typealias MeshHTTP2BalancingTransport = MeshBalancingTransport<
  MeshHTTP2SubchannelFactory, ContinuousClock
>

/// Subchannels on grpc-swift's `HTTP2ClientTransport.Posix`, all with the same security (mTLS
/// expecting the target's identity) and settings.
public struct MeshHTTP2SubchannelFactory: MeshSubchannelFactory {
  public var transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity
  public var config: HTTP2ClientTransport.Posix.Config
  /// With mTLS from mesh credentials: the security of one endpoint's subchannel, whose
  /// verification outcomes go to `failures`.
  private var makeSecurity:
    (
      @Sendable (@escaping @Sendable (MeshTLSError?) -> Void) throws ->
        HTTP2ClientTransport.Posix
        .TransportSecurity
    )?
  private let failures = MeshVerificationFailures()

  public init(
    transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity,
    config: HTTP2ClientTransport.Posix.Config = .defaults
  ) {
    self.transportSecurity = transportSecurity
    self.config = config
    self.makeSecurity = nil
  }

  public func makeSubchannel(for endpoint: MeshEndpoint) throws -> HTTP2ClientTransport.Posix {
    let port = try MeshInput.port(endpoint.port, field: "port")
    let target = try MeshHost(endpoint.host, field: "host").resolvableTarget(port: port)
    var security = self.transportSecurity
    if let makeSecurity = self.makeSecurity {
      let failures = self.failures
      let key = "\(endpoint.host):\(port)"
      security = try makeSecurity { failures.record($0, for: key) }
    }
    return try HTTP2ClientTransport.Posix(
      target: target,
      transportSecurity: security,
      config: self.config
    )
  }

  public func connectionFailure(for endpoint: MeshEndpoint) -> (any Error)? {
    self.failures.failure(for: "\(endpoint.host):\(endpoint.port)")
  }

  /// True: grpc-swift's HTTP/2 transport resets a stream whose request fails, which ends its
  /// response (an abandoned attempt needs no cancelling task).
  public var requestFailureEndsResponse: Bool { true }
}

/// grpc-swift's HTTP/2 client transport settings (HTTP/2 frame and window sizes, authority,
/// keepalive, idle time, flush coalescing, compression, connection backoff), as the mesh's
/// layers above the transport name them.
public typealias MeshHTTP2TransportConfig = HTTP2ClientTransport.Posix.Config

extension MeshHTTP2SubchannelFactory {
  /// Plaintext subchannels (for development and tests).
  public static var plaintext: Self {
    Self(transportSecurity: .plaintext)
  }

  /// Plaintext subchannels with `config` (nil: grpc-swift's defaults).
  public static func plaintext(config: MeshHTTP2TransportConfig?) -> Self {
    Self(transportSecurity: .plaintext, config: config ?? .defaults)
  }

  /// mTLS subchannels presenting `credentials` and accepting servers whose identity `server`
  /// accepts, with `config` (nil: grpc-swift's defaults with the credentials' HTTP/2 tuning and
  /// keepalive). A server rejected by verification is reported by ``connectionFailure(for:)``
  /// with the identities it presented.
  public static func mTLS(
    _ credentials: MeshCredentials,
    server: MeshIdentityPolicy,
    config: HTTP2ClientTransport.Posix.Config? = nil
  ) throws(MeshTLSError) -> Self {
    var factory = Self(
      transportSecurity: try credentials.clientTransportSecurity(server: server),
      config: config ?? credentials.clientConfig()
    )
    factory.makeSecurity = { onVerified in
      try credentials.clientTransportSecurity(server: server, onVerified: onVerified)
    }
    return factory
  }
}

/// The last verification failure of each endpoint's server (by `host:port`), until one is
/// accepted.
package final class MeshVerificationFailures: Sendable {
  private let failures = MeshMutex<[String: MeshTLSError]>([:])

  package init() {}

  package func record(_ failure: MeshTLSError?, for key: String) {
    self.failures.withLock { failures in
      if let failure {
        if failures.count >= 4096 { failures.removeAll() }
        failures[key] = failure
      } else {
        failures[key] = nil
      }
    }
  }

  package func failure(for key: String) -> MeshTLSError? {
    self.failures.withLock { $0[key] }
  }
}

extension MeshHost {
  /// The host as grpc-swift's NIO transport resolves it: the one mapping from a classified host
  /// to a `ResolvableTarget` (an address is never looked up as a name).
  package func resolvableTarget(port: Int) -> any ResolvableTarget {
    switch self {
    case .ipv4(let address): .ipv4(address: address, port: port)
    case .ipv6(let address): .ipv6(address: address, port: port)
    case .dns(let host): .dns(host: host, port: port)
    }
  }
}
