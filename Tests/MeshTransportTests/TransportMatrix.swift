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

import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import MeshClient
import MeshDiscovery
import MeshNativeTransport
import MeshTransport
import Testing

/// The HTTP/2 implementation a loopback test runs on, for its servers and for the balancing
/// transport's subchannels alike: the balancer, resilience, chaos, deadline and drain suites run
/// on both, so the native transport is held to the NIO one's behaviour.
enum TestTransport: String, CaseIterable, Sendable, CustomTestStringConvertible {
  /// grpc-swift's HTTP/2 transport on SwiftNIO (NIOSSL for mTLS).
  case nio
  /// The mesh's transport on libnghttp2 (OpenSSL 3 for mTLS).
  case native

  var testDescription: String { self.rawValue }

  /// The transports a matrix test runs on: both, except under a sanitizer
  /// (`MESH_SANITIZED=1`), where the suites run on NIO alone, as before the matrix: both at once
  /// doubled the loopback servers running together at a sanitizer's speed, and timing
  /// expectations failed for no fault of the code. The native transport's own suites run
  /// under both sanitizers.
  static var matrix: [TestTransport] {
    ProcessInfo.processInfo.environment["MESH_SANITIZED"] == "1" ? [.nio] : allCases
  }

  /// Plaintext subchannels on this transport, as a mesh client's balancing transport has them
  /// (erased: its RPCs run the code compiled for those types).
  var plaintextFactory: MeshAnySubchannelFactory {
    MeshAnySubchannelFactory(self.plaintextSubchannels)
  }

  /// Plaintext subchannels on this transport.
  var plaintextSubchannels: MeshClientSubchannelFactory {
    switch self {
    case .nio:
      return .nio(.plaintext)
    case .native:
      return .native(tls: nil, settings: .defaults)
    }
  }

  /// mTLS subchannels presenting `credentials`, accepting servers that `server` accepts.
  func mTLSFactory(
    _ credentials: MeshCredentials,
    server: MeshIdentityPolicy
  ) throws -> MeshAnySubchannelFactory {
    switch self {
    case .nio:
      return MeshAnySubchannelFactory(
        MeshClientSubchannelFactory.nio(try .mTLS(credentials, server: server))
      )
    case .native:
      return MeshAnySubchannelFactory(
        MeshClientSubchannelFactory.native(
          tls: try MeshNativeTLS.mTLS(credentials, peers: server),
          settings: .defaults
        )
      )
    }
  }

  /// Starts a plaintext loopback server of `services` in `group`, at most `maxConcurrentStreams`
  /// streams a connection; returns its port and how to stop it.
  func startServer(
    services: [any RegistrableRPCService],
    interceptors: [any ServerInterceptor] = [],
    maxConcurrentStreams: Int? = nil,
    in group: inout ThrowingTaskGroup<Void, any Error>
  ) async throws -> (port: Int, stop: @Sendable () -> Void) {
    switch self {
    case .nio:
      let transport = HTTP2ServerTransport.Posix(
        address: .ipv4(host: "127.0.0.1", port: 0),
        transportSecurity: .plaintext,
        config: .defaults {
          if let maxConcurrentStreams { $0.http2.maxConcurrentStreams = maxConcurrentStreams }
        }
      )
      let server = GRPCServer(transport: transport, services: services, interceptors: interceptors)
      group.addTask { try await server.serve() }
      let port = try #require(try await transport.listeningAddress.ipv4?.port)
      return (port, { server.beginGracefulShutdown() })
    case .native:
      let transport = try MeshNativeServerTransport(
        host: "127.0.0.1",
        port: 0,
        settings: .defaults {
          if let maxConcurrentStreams { $0.maxConcurrentStreams = maxConcurrentStreams }
        }
      )
      let server = GRPCServer(transport: transport, services: services, interceptors: interceptors)
      group.addTask { try await server.serve() }
      let port = try await transport.listeningPort
      return (port, { server.beginGracefulShutdown() })
    }
  }
}
