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
import MeshCore
import MeshProto
import MeshTransport
import Testing
import X509

@Suite("Certificate rotation", .timeLimit(.minutes(2)))
struct CertificateRotationTests {
  @Test("Replaced server files: the next handshake presents the new certificate, no RPC fails")
  func serverRotation() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    let first = try pki.issue("orders")
    try pki.issue("checkout")
    let server = try await pki.credentials(for: "orders")
    let client = try await pki.credentials(for: "checkout")
    let orders = try pki.identity(of: "orders")

    try await withMTLSServer(server) { port in
      let security = try client.clientTransportSecurity(server: .exactly(orders))
      try await withClient(port: port, security: security) { health async throws in
        // RPCs stream over one connection while the files are replaced under the server.
        let (halfway, reachedHalfway) = AsyncStream.makeStream(of: Void.self)
        let failures = Counter()
        let rpcs = 200

        try await withThrowingTaskGroup(of: Void.self) { group in
          group.addTask {
            for index in 0..<rpcs {
              do {
                _ = try await health.checkServer()
              } catch {
                failures.increment()
              }
              if index == rpcs / 2 {
                reachedHalfway.finish()
              }
            }
          }

          for await _ in halfway {}
          let rotated = try pki.issue("orders")
          #expect(try await server.reload())
          #expect(server.certificate.serialNumber == rotated.certificate.serialNumber)

          // A new connection's handshake presents the new certificate...
          let presented = PresentedCertificates()
          try await withClient(
            port: port,
            security: try presented.clientSecurity(presenting: client)
          ) { observer async throws in
            #expect(try await observer.checkServer() == .serving)
          }
          #expect(presented.recorded == [rotated.certificate.serialNumber])
          #expect(presented.recorded != [first.certificate.serialNumber])

          // ...and verifying clients accept it: a fresh verifying client works too.
          try await withClient(port: port, security: security) { fresh async throws in
            #expect(try await fresh.checkServer() == .serving)
          }
          try await group.waitForAll()
        }
        // The connection opened before the rotation finished all its RPCs.
        #expect(failures.value == 0)
      }
    }
  }

  @Test("Replaced client files: the server sees the new client certificate on a new connection")
  func clientRotation() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    let first = try pki.issue("checkout")
    let server = try await pki.credentials(for: "orders")
    let client = try await pki.credentials(for: "checkout")
    let recorder = CallerRecorder()
    let rotated = MeshMutex<MeshIssuedCertificate?>(nil)

    try await withMTLSServer(server, recorder: recorder) { port in
      let security = try client.clientTransportSecurity(
        server: .exactly(pki.identity(of: "orders"))
      )
      try await withClient(port: port, security: security) { health async throws in
        #expect(try await health.checkServer() == .serving)
      }

      let reissued = try pki.issue("checkout")
      rotated.withLock { $0 = reissued }
      #expect(try await client.reload())

      try await withClient(port: port, security: security) { health async throws in
        #expect(try await health.checkServer() == .serving)
      }
    }
    let serials = recorder.recorded.map { $0?.certificate.serialNumber }
    let second = try #require(rotated.withLock { $0 })
    #expect(serials == [first.certificate.serialNumber, second.certificate.serialNumber])
  }

  @Test("A rotated trust bundle is used for the next handshake (CA rotation)")
  func trustBundleRotation() async throws {
    let pki = try TestPKI()
    let next = try TestPKI()
    defer {
      pki.remove()
      next.remove()
    }
    try pki.issue("checkout")
    try next.issue("orders")  // the server already moved to the next CA
    var serverConfiguration = next.configuration(for: "orders")
    let bothCAs =
      try String(contentsOfFile: pki.directory.caCertificatePath, encoding: .utf8)
      + String(contentsOfFile: next.directory.caCertificatePath, encoding: .utf8)
    serverConfiguration.trustBundle = .pem(bothCAs)
    let server = try await MeshCredentials(serverConfiguration)
    let client = try await pki.credentials(for: "checkout")

    try await withMTLSServer(server) { port in
      let security = try client.clientTransportSecurity(server: .anyIdentity)
      try await withClient(port: port, security: security) { health in
        await #expect(throws: RPCError.self) { try await health.checkServer() }
      }
      #expect(client.lastVerificationFailure?.code == .untrustedCertificate)

      // The client's bundle gains the next CA on disk; after a reload, it trusts the server.
      let bundle = pki.directory.caCertificatePath
      try bothCAs.write(toFile: bundle, atomically: true, encoding: .utf8)
      #expect(try await client.reload())
      try await withClient(port: port, security: security) { health async throws in
        #expect(try await health.checkServer() == .serving)
      }
    }
  }
}
