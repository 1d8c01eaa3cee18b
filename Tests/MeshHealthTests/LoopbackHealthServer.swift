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

import GRPCCore
import GRPCNIOTransportHTTP2Posix
import MeshHealth
import MeshProto

/// A health client over a real HTTP/2 connection.
typealias LoopbackHealthClient = Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>

/// Runs `body` with the port of a plaintext HTTP/2 server on 127.0.0.1 that hosts `health`.
///
/// The server binds port 0; the port is learnt from the bound socket, so tests never race for one.
/// When `body` returns, the server shuts down gracefully.
func withLoopbackHealthServer(
  _ health: MeshHealthService,
  _ body: (_ port: Int) async throws -> Void
) async throws {
  let transport = HTTP2ServerTransport.Posix(
    address: .ipv4(host: "127.0.0.1", port: 0),
    transportSecurity: .plaintext
  )
  try await withGRPCServer(transport: transport, services: [health]) { _ in
    guard let port = try await transport.listeningAddress.ipv4?.port else {
      throw RPCError(code: .internalError, message: "The server did not bind an IPv4 address.")
    }
    try await body(port)
  }
}

/// Runs `body` with a health client connected to 127.0.0.1:`port` over plaintext HTTP/2.
func withLoopbackHealthClient(
  port: Int,
  _ body: (LoopbackHealthClient) async throws -> Void
) async throws {
  let transport = try HTTP2ClientTransport.Posix(
    target: .ipv4(address: "127.0.0.1", port: port),
    transportSecurity: .plaintext
  )
  try await withGRPCClient(transport: transport) { client in
    try await body(LoopbackHealthClient(wrapping: client))
  }
}
