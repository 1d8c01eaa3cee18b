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
internal import MeshCore
public import MeshDiscovery
public import MeshTransport

#if Native
  public import MeshNativeTransport
#endif

/// Which HTTP/2 implementation carries a mesh client's connections
/// (``MeshClientConfiguration/transportKind``).
public enum MeshTransportKind: Sendable {
  /// grpc-swift's HTTP/2 transport on SwiftNIO (NIOSSL for mTLS), with
  /// ``MeshClientConfiguration/transport``'s settings. The default without the Native trait.
  case nio
  #if Native
    /// The mesh's native transport on libnghttp2 and OpenSSL 3 (`MeshNativeTransport`), with
    /// these settings (under mTLS, tuned by the TLS configuration's HTTP/2 values where they
    /// depart from its defaults, and with its keepalive unless these have one). The mTLS
    /// identity checks are the same. The default (`.native(.defaults)`) with the Native trait,
    /// which the package enables by default: it beats the NIO transport in throughput and p99
    /// on both sides (the README's figures).
    case native(MeshNativeTransportSettings)
  #endif

  /// The native transport with its default settings where the package is built with its
  /// Native trait; grpc-swift's NIO transport otherwise.
  public static var `default`: Self {
    #if Native
      .native(.defaults)
    #else
      .nio
    #endif
  }
}

/// One endpoint's connection, on the transport the client's configuration chose.
public enum MeshSubchannel: ClientTransport {
  public typealias Bytes = GRPCNIOTransportBytes

  case nio(HTTP2ClientTransport.Posix)
  #if Native
    case native(MeshNativeClientTransport)
  #endif

  public var retryThrottle: RetryThrottle? {
    switch self {
    case .nio(let transport): transport.retryThrottle
    #if Native
      case .native(let transport): transport.retryThrottle
    #endif
    }
  }

  public func connect() async throws {
    switch self {
    case .nio(let transport): try await transport.connect()
    #if Native
      case .native(let transport): try await transport.connect()
    #endif
    }
  }

  public func beginGracefulShutdown() {
    switch self {
    case .nio(let transport): transport.beginGracefulShutdown()
    #if Native
      case .native(let transport): transport.beginGracefulShutdown()
    #endif
    }
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    switch self {
    case .nio(let transport):
      try await transport.withStream(descriptor: descriptor, options: options, closure)
    #if Native
      case .native(let transport):
        try await transport.withStream(descriptor: descriptor, options: options, closure)
    #endif
    }
  }

  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    switch self {
    case .nio(let transport): transport.config(forMethod: descriptor)
    #if Native
      case .native(let transport): transport.config(forMethod: descriptor)
    #endif
    }
  }
}

/// A mesh client's subchannels: grpc-swift's NIO transport or the native one, plaintext or mTLS
/// expecting the target's identity.
public struct MeshClientSubchannelFactory: MeshSubchannelFactory {
  private enum Kind: Sendable {
    case nio(MeshHTTP2SubchannelFactory)
    #if Native
      case native(tls: MeshNativeTLS?, settings: MeshNativeTransportSettings)
    #endif
  }

  private let kind: Kind
  private let failures = MeshVerificationFailures()

  /// Subchannels on grpc-swift's NIO transport.
  public static func nio(_ factory: MeshHTTP2SubchannelFactory) -> Self {
    Self(kind: .nio(factory))
  }

  #if Native
    /// Subchannels on the native transport: mTLS with `tls` (the server's identity checked by its
    /// policy), plaintext without.
    public static func native(tls: MeshNativeTLS?, settings: MeshNativeTransportSettings) -> Self {
      Self(kind: .native(tls: tls, settings: settings))
    }
  #endif

  private init(kind: Kind) {
    self.kind = kind
  }

  public func makeSubchannel(for endpoint: MeshEndpoint) throws -> MeshSubchannel {
    switch self.kind {
    case .nio(let factory):
      return .nio(try factory.makeSubchannel(for: endpoint))
    #if Native
      case .native(let tls, let settings):
        let port = try MeshInput.port(endpoint.port, field: "port")
        var security = MeshNativeTransportSecurity.plaintext
        if let tls {
          // Each verification of this endpoint's server, kept for connectionFailure(for:).
          let failures = self.failures
          let key = "\(endpoint.host):\(port)"
          security = .mTLS(
            tls.reporting { outcome in
              switch outcome {
              case .success: failures.record(nil, for: key)
              case .failure(let error): failures.record(error, for: key)
              }
            }
          )
        }
        return .native(
          try MeshNativeClientTransport(
            host: endpoint.host,
            port: port,
            security: security,
            settings: settings
          )
        )
    #endif
    }
  }

  public func connectionFailure(for endpoint: MeshEndpoint) -> (any Error)? {
    switch self.kind {
    case .nio(let factory):
      factory.connectionFailure(for: endpoint)
    #if Native
      case .native:
        self.failures.failure(for: "\(endpoint.host):\(endpoint.port)")
    #endif
    }
  }

  /// True: both transports reset a stream whose request fails, which ends its response.
  public var requestFailureEndsResponse: Bool { true }

  /// True on the native transport, which says whether it is connected without waiting;
  /// grpc-swift's NIO transport does not (its RPCs' first attempts run in the balancer's tasks).
  public var opensConnectedStreams: Bool {
    switch self.kind {
    case .nio: false
    #if Native
      case .native: true
    #endif
    }
  }

  public func withConnectedStream<T: Sendable>(
    on subchannel: MeshSubchannel,
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<MeshSubchannel.Inbound, MeshSubchannel.Outbound>, ClientContext)
      async throws -> T
  ) async throws -> T? {
    switch subchannel {
    case .nio:
      return nil
    #if Native
      case .native(let transport):
        return try await transport.withConnectedStream(
          descriptor: descriptor,
          options: options,
          closure
        )
    #endif
    }
  }
}
