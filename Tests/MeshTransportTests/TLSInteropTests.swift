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
import InteropSupport
import MeshCertificates
import MeshProto
import MeshTransport
import Testing

/// One line from `Tests/Interop/tls_peer.py`.
struct TLSPeerReply: Decodable {
  var op: String
  var port: Int?
  var spiffe_id: String?
  var dns: [String]?
  var status: String?
  var code: String?
  var details: String?
}

/// mTLS between our transports and grpcio 1.85.1 (gRPC core's TLS), with certificates made by
/// the mesh CA and written as `mesh certs` writes them; each side verifies the other's identity.
@Suite("mTLS interop with Python grpcio", .timeLimit(.minutes(2)))
struct TLSInteropTests {
  /// A PKI made by the mesh CA with the `mesh certs` defaults, with certificates for `services`
  /// (MeshCommandsTests checks that the tool writes the same).
  func makePKI(_ services: [String]) throws -> MeshCertificateDirectory {
    let path = FileManager.default.temporaryDirectory
      .appendingPathComponent("mesh-interop-\(UUID().uuidString)").path
    let directory = MeshCertificateDirectory(path: path)
    let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    _ = try directory.write(authority, force: false)
    for service in services {
      _ = try directory.write(try authority.issue(service: service), force: false)
    }
    return directory
  }

  func peerArguments(_ pki: MeshCertificateDirectory, service: String) -> [String] {
    [
      "--cert", pki.certificatePath(service: service),
      "--key", pki.keyPath(service: service),
      "--ca", pki.caCertificatePath,
    ]
  }

  func pythonClient(
    _ pki: MeshCertificateDirectory,
    service: String,
    port: Int,
    serverName: String
  ) throws -> PythonPeer<TLSPeerReply> {
    try PythonPeer<TLSPeerReply>(
      script: "tls_peer.py",
      arguments: ["call", "--target", "127.0.0.1:\(port)", "--server-name", serverName]
        + self.peerArguments(pki, service: service)
    )
  }

  @Test("grpcio calls our mTLS server; each side sees the other's identity")
  func grpcioClientOurServer() async throws {
    let pki = try self.makePKI(["orders", "python-client"])
    let rogue = try self.makePKI(["python-client"])
    defer {
      try? FileManager.default.removeItem(atPath: pki.path)
      try? FileManager.default.removeItem(atPath: rogue.path)
    }
    let server = try await MeshCredentials(.directory(pki.path, service: "orders"))
    let recorder = CallerRecorder()

    try await withMTLSServer(server, recorder: recorder) { port in
      // grpcio verifies our DNS identity (its own host name check) and presents its SPIFFE ID.
      let client = try self.pythonClient(
        pki,
        service: "python-client",
        port: port,
        serverName: "orders"
      )
      _ = try await client.next { $0.op == "ready" }
      try client.send(["op": "check", "service": ""])
      let reply = try await client.next { $0.op == "check" }
      #expect(reply.status == "SERVING", "\(reply.details ?? "")")
      #expect(try await client.finish() == 0)

      // grpcio refuses us when it expects another service's name.
      let misdirected = try self.pythonClient(
        pki,
        service: "python-client",
        port: port,
        serverName: "payments"
      )
      _ = try await misdirected.next { $0.op == "ready" }
      try misdirected.send(["op": "check", "service": ""])
      #expect(try await misdirected.next { $0.op == "check" }.code == "UNAVAILABLE")
      #expect(try await misdirected.finish() == 0)

      // We refuse a grpcio client whose certificate is from another CA.
      // It trusts our CA, but its own certificate is signed by another.
      let intruder = try PythonPeer<TLSPeerReply>(
        script: "tls_peer.py",
        arguments: [
          "call", "--target", "127.0.0.1:\(port)", "--server-name", "orders",
          "--cert", rogue.certificatePath(service: "python-client"),
          "--key", rogue.keyPath(service: "python-client"),
          "--ca", pki.caCertificatePath,
        ]
      )
      _ = try await intruder.next { $0.op == "ready" }
      try intruder.send(["op": "check", "service": ""])
      #expect(try await intruder.next { $0.op == "check" }.code == "UNAVAILABLE")
      #expect(try await intruder.finish() == 0)
    }

    #expect(recorder.recorded.count == 1, "only the legitimate client reached a handler")
    let caller = try #require(recorder.recorded.first ?? nil)
    #expect(caller.identity.spiffeID == "spiffe://mesh.local/ns/default/svc/python-client")
    #expect(server.lastVerificationFailure?.code == .untrustedCertificate)
  }

  @Test("Our client calls a grpcio mTLS server; each side sees the other's identity")
  func ourClientGrpcioServer() async throws {
    let pki = try self.makePKI(["inventory", "orders"])
    defer { try? FileManager.default.removeItem(atPath: pki.path) }
    let client = try await MeshCredentials(.directory(pki.path, service: "orders"))
    let inventory = try MeshServiceIdentity.spiffe(trustDomain: "mesh.local", service: "inventory")

    let server = try PythonPeer<TLSPeerReply>(
      script: "tls_peer.py",
      arguments: ["serve"] + self.peerArguments(pki, service: "inventory")
    )
    let port = try #require(try await server.next { $0.op == "listening" }.port)

    // We verify grpcio's SPIFFE identity; grpcio verifies our certificate against the mesh CA.
    let security = try client.clientTransportSecurity(server: .exactly(inventory))
    try await withClient(port: port, security: security) { health async throws in
      #expect(try await health.checkServer() == .serving)
    }
    let peer = try await server.next { $0.op == "peer" }
    #expect(peer.spiffe_id == "spiffe://mesh.local/ns/default/svc/orders")
    #expect(peer.dns?.contains("orders") == true)

    // We refuse grpcio when it is not the service we meant to call.
    let payments = try MeshServiceIdentity.spiffe(trustDomain: "mesh.local", service: "payments")
    let wrong = try client.clientTransportSecurity(server: .exactly(payments))
    try await withClient(port: port, security: wrong) { health in
      await #expect(throws: RPCError.self) { try await health.checkServer() }
    }
    #expect(client.lastVerificationFailure?.code == .identityMismatch)

    try server.send(["op": "quit"])
    #expect(try await server.finish() == 0)
  }
}
