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
import MeshCertificates
import MeshProto
import MeshTransport
import Testing

/// Real TLS handshakes between our server and client transports on loopback.
@Suite("mTLS handshakes", .timeLimit(.minutes(2)))
struct MTLSHandshakeTests {
  @Test("Valid both ways: the call succeeds and the handler sees the caller's identity")
  func validBothWays() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    try pki.issue("checkout")
    let server = try await pki.credentials(for: "orders")
    let client = try await pki.credentials(for: "checkout")
    let recorder = CallerRecorder()

    try await withMTLSServer(
      server,
      clients: .exactly(try pki.identity(of: "checkout")),
      recorder: recorder
    ) { port in
      let security = try client.clientTransportSecurity(
        server: .exactly(try pki.identity(of: "orders"))
      )
      try await withClient(port: port, security: security, config: client.clientConfig()) {
        health async throws in
        #expect(try await health.checkServer() == .serving)
      }
    }
    let caller = try #require(recorder.recorded.first ?? nil)
    #expect(caller.identity == (try pki.identity(of: "checkout")))
    #expect(caller.identities.contains(try .dns("checkout")))
  }

  @Test("A DNS identity (the seed's certificates) is accepted when the client expects it")
  func dnsIdentity() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders", uriNames: [])  // DNS SANs only, as the seed made them
    try pki.issue("checkout")
    let server = try await pki.credentials(for: "orders")
    let client = try await pki.credentials(for: "checkout")

    try await withMTLSServer(server) { port in
      let security = try client.clientTransportSecurity(server: .exactly(try .dns("orders")))
      try await withClient(port: port, security: security) { health async throws in
        #expect(try await health.checkServer() == .serving)
      }
    }
  }

  @Test("A server from another CA is refused by the client")
  func wrongCAServer() async throws {
    let pki = try TestPKI()
    let rogue = try TestPKI()
    defer {
      pki.remove()
      rogue.remove()
    }
    try rogue.issue("orders")
    try pki.issue("checkout")
    let server = try await rogue.credentials(for: "orders")
    let client = try await pki.credentials(for: "checkout")

    try await withMTLSServer(server) { port in
      let security = try client.clientTransportSecurity(server: .anyIdentity)
      try await withClient(port: port, security: security) { health in
        await #expect(throws: RPCError.self) { try await health.checkServer() }
      }
    }
    #expect(client.lastVerificationFailure?.code == .untrustedCertificate)
  }

  @Test("A client from another CA is refused by the server")
  func wrongCAClient() async throws {
    let pki = try TestPKI()
    let rogue = try TestPKI()
    defer {
      pki.remove()
      rogue.remove()
    }
    try pki.issue("orders")
    try rogue.issue("checkout")
    var roguesView = rogue.configuration(for: "checkout")
    roguesView.trustBundle = .file(pki.directory.caCertificatePath)  // it trusts our server...
    let server = try await pki.credentials(for: "orders")
    // ...but its own certificate is not from our CA, so loading it must fail first:
    await #expect(throws: MeshTLSError.self) { try await MeshCredentials(roguesView) }

    // A client that presents it anyway, trusting both CAs.
    let bothCAs =
      try String(contentsOfFile: pki.directory.caCertificatePath, encoding: .utf8)
      + String(contentsOfFile: rogue.directory.caCertificatePath, encoding: .utf8)
    roguesView.trustBundle = .pem(bothCAs)
    let client = try await MeshCredentials(roguesView)

    let recorder = CallerRecorder()
    try await withMTLSServer(server, recorder: recorder) { port in
      let security = try client.clientTransportSecurity(server: .anyIdentity)
      try await withClient(port: port, security: security) { health in
        await #expect(throws: RPCError.self) { try await health.checkServer() }
      }
    }
    #expect(server.lastVerificationFailure?.code == .untrustedCertificate)
    #expect(recorder.recorded.isEmpty, "no RPC reached a handler")
  }

  @Test("A server with another identity is refused: signed by the CA is not enough")
  func wrongIdentity() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    try pki.issue("checkout")
    let server = try await pki.credentials(for: "orders")
    let client = try await pki.credentials(for: "checkout")

    try await withMTLSServer(server) { port in
      let security = try client.clientTransportSecurity(
        server: .exactly(try pki.identity(of: "payments"))
      )
      try await withClient(port: port, security: security) { health in
        await #expect(throws: RPCError.self) { try await health.checkServer() }
      }
    }
    #expect(client.lastVerificationFailure?.code == .identityMismatch)
  }

  @Test("A client whose identity the server does not accept is refused")
  func clientNotAllowed() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    try pki.issue("intruder")
    let server = try await pki.credentials(for: "orders")
    let client = try await pki.credentials(for: "intruder")

    try await withMTLSServer(server, clients: .exactly(try pki.identity(of: "checkout"))) { port in
      let security = try client.clientTransportSecurity(server: .anyIdentity)
      try await withClient(port: port, security: security) { health in
        await #expect(throws: RPCError.self) { try await health.checkServer() }
      }
    }
    #expect(server.lastVerificationFailure?.code == .identityMismatch)
  }

  @Test("An expired server certificate is refused")
  func expiredServer() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    let now = Date()
    try pki.issue(
      "orders",
      notValidBefore: now.addingTimeInterval(-3 * 86_400),
      notValidAfter: now.addingTimeInterval(-86_400)
    )
    try pki.issue("checkout")
    // Loaded as of two days ago, when it was valid; it is served today.
    let server = try await pki.credentials(for: "orders", now: now.addingTimeInterval(-2 * 86_400))
    let client = try await pki.credentials(for: "checkout")

    try await withMTLSServer(server) { port in
      let security = try client.clientTransportSecurity(server: .anyIdentity)
      try await withClient(port: port, security: security) { health in
        await #expect(throws: RPCError.self) { try await health.checkServer() }
      }
    }
    #expect(client.lastVerificationFailure?.code == .certificateExpired)
  }

  @Test("A client with no certificate is refused")
  func clientWithoutCertificate() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    let server = try await pki.credentials(for: "orders")
    let recorder = CallerRecorder()

    try await withMTLSServer(server, recorder: recorder) { port in
      // TLS, trusting the mesh CA, but presenting no certificate.
      let security = HTTP2ClientTransport.Posix.TransportSecurity.tls { config in
        config.trustRoots = .certificates([
          .file(path: pki.directory.caCertificatePath, format: .pem)
        ])
        config.serverCertificateVerification = .noHostnameVerification
      }
      try await withClient(port: port, security: security) { health in
        await #expect(throws: RPCError.self) { try await health.checkServer() }
      }
    }
    #expect(recorder.recorded.isEmpty, "no RPC reached a handler")
  }

  @Test("A plaintext client is refused by an mTLS server")
  func plaintextClient() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    let server = try await pki.credentials(for: "orders")
    let recorder = CallerRecorder()

    try await withMTLSServer(server, recorder: recorder) { port in
      try await withClient(port: port, security: .plaintext) { health in
        await #expect(throws: RPCError.self) { try await health.checkServer() }
      }
    }
    #expect(recorder.recorded.isEmpty, "no RPC reached a handler")
  }
}
