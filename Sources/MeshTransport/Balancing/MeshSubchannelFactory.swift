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
public import MeshDiscovery

/// Makes the transport of one endpoint (a subchannel).
///
/// The balancing transport knows endpoints only through this factory, so another HTTP/2
/// transport (a native one on libnghttp2 and OpenSSL is planned) plugs in without touching the
/// policies.
public protocol MeshSubchannelFactory<Subchannel>: Sendable {
  associatedtype Subchannel: ClientTransport

  /// A transport connected to `endpoint` only.
  func makeSubchannel(for endpoint: MeshEndpoint) throws -> Subchannel
}

/// Subchannels on grpc-swift's `HTTP2ClientTransport.Posix`, all with the same security (mTLS
/// expecting the target's identity) and settings.
public struct MeshHTTP2SubchannelFactory: MeshSubchannelFactory {
  public var transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity
  public var config: HTTP2ClientTransport.Posix.Config

  public init(
    transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity,
    config: HTTP2ClientTransport.Posix.Config = .defaults
  ) {
    self.transportSecurity = transportSecurity
    self.config = config
  }

  public func makeSubchannel(for endpoint: MeshEndpoint) throws -> HTTP2ClientTransport.Posix {
    let target: any ResolvableTarget
    if endpoint.host.contains(":") {
      target = .ipv6(address: endpoint.host, port: endpoint.port)
    } else if endpoint.host.split(separator: ".").count == 4,
      endpoint.host.split(separator: ".").allSatisfy({ UInt8($0) != nil })
    {
      target = .ipv4(address: endpoint.host, port: endpoint.port)
    } else {
      target = .dns(host: endpoint.host, port: endpoint.port)
    }
    return try HTTP2ClientTransport.Posix(
      target: target,
      transportSecurity: self.transportSecurity,
      config: self.config
    )
  }
}

extension MeshHTTP2SubchannelFactory {
  /// Plaintext subchannels (for development and tests).
  public static var plaintext: Self {
    Self(transportSecurity: .plaintext)
  }

  /// mTLS subchannels presenting `credentials` and accepting servers whose identity `server`
  /// accepts, with the credentials' HTTP/2 settings.
  public static func mTLS(
    _ credentials: MeshCredentials,
    server: MeshIdentityPolicy
  ) throws(MeshTLSError) -> Self {
    Self(
      transportSecurity: try credentials.clientTransportSecurity(server: server),
      config: credentials.clientConfig()
    )
  }
}
