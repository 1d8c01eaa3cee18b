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

internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix

#if Native
  public import MeshNativeTransport
#endif

/// Which HTTP/2 implementation a mesh server listens with
/// (``MeshServerConfiguration/transportKind``).
public enum MeshServerTransportKind: Sendable {
  /// grpc-swift's HTTP/2 server transport on SwiftNIO (NIOSSL for mTLS). The default without
  /// the Native trait.
  case nio
  #if Native
    /// The mesh's native transport on libnghttp2 and OpenSSL 3 (`MeshNativeTransport`), with
    /// these settings and ``MeshServerConfiguration/connections``' limits (streams, idle time,
    /// age and its grace, message size).
    case native(MeshNativeTransportSettings)
  #endif

  /// The native transport with its default settings where the package is built with its
  /// Native trait (which it enables by default); grpc-swift's NIO transport otherwise.
  public static var `default`: Self {
    #if Native
      .native(.defaults)
    #else
      .nio
    #endif
  }
}

/// The server transport a mesh server runs on: grpc-swift's or the native one.
enum MeshServerListener: ServerTransport {
  typealias Bytes = GRPCNIOTransportBytes

  case nio(HTTP2ServerTransport.Posix)
  #if Native
    case native(MeshNativeServerTransport)
  #endif

  func configure(context: GRPCServerContext) {
    switch self {
    case .nio(let transport): transport.configure(context: context)
    #if Native
      case .native(let transport): transport.configure(context: context)
    #endif
    }
  }

  func listen(
    streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
  ) async throws {
    switch self {
    case .nio(let transport): try await transport.listen(streamHandler: streamHandler)
    #if Native
      case .native(let transport): try await transport.listen(streamHandler: streamHandler)
    #endif
    }
  }

  func beginGracefulShutdown() {
    switch self {
    case .nio(let transport): transport.beginGracefulShutdown()
    #if Native
      case .native(let transport): transport.beginGracefulShutdown()
    #endif
    }
  }

  /// The bound address, as `host:port` text, and its port (nil if not an IP port).
  var listeningPort: (described: String, port: Int?) {
    get async throws {
      switch self {
      case .nio(let transport):
        let address = try await transport.listeningAddress
        return ("\(address)", address.ipv4?.port ?? address.ipv6?.port)
      #if Native
        case .native(let transport):
          let port = try await transport.listeningPort
          return ("port \(port)", port)
      #endif
      }
    }
  }
}
