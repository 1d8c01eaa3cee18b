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
import InteropSupport
import MeshCertificates
import MeshServer
import MeshTransport
import Testing

/// One line from `Tests/Interop/tls_peer.py`.
struct TLSPeerReply: Decodable {
  var op: String
  var status: String?
  var code: String?
  var details: String?
}

@Suite("Authorization with grpcio callers", .timeLimit(.minutes(2)))
struct AuthorizationInteropTests {
  @Test("grpcio clients over mTLS: the allowed identity is served, the denied one refused")
  func grpcioCallers() async throws {
    let directory = try MeshServerTests.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    var configuration = MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0)
    configuration.tls = .init(credentials: .directory(directory.path, service: "echo"))
    configuration.drain = .init(delay: .zero, gracePeriod: .seconds(5))
    // The health service is open to verified callers unless a rule denies it: billing is denied.
    configuration.authorization = MeshAuthorizationPolicy(
      rules: [.deny(from: .service("billing"), to: .service("grpc.health.v1.Health"))],
      defaultAction: .deny
    )
    try await withMeshServer(configuration, services: []) { server in
      let port = try await server.listeningPort
      func check(as service: String) async throws -> TLSPeerReply {
        let peer = try PythonPeer<TLSPeerReply>(
          script: "tls_peer.py",
          arguments: [
            "call", "--target", "127.0.0.1:\(port)", "--server-name", "echo",
            "--cert", directory.certificatePath(service: service),
            "--key", directory.keyPath(service: service),
            "--ca", directory.caCertificatePath,
          ]
        )
        _ = try await peer.next { $0.op == "ready" }
        try peer.send(["op": "check", "service": ""])
        let reply = try await peer.next { $0.op == "check" }
        try peer.send(["op": "quit"])
        #expect(try await peer.finish() == 0)
        return reply
      }
      #expect(try await check(as: "checkout").status == "SERVING")
      let denied = try await check(as: "billing")
      #expect(denied.code == "PERMISSION_DENIED")
      #expect(denied.details?.contains("deny service:billing -> grpc.health.v1.Health") == true)
    }
  }
}
