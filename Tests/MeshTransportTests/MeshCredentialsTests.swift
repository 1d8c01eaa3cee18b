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
import InMemoryLogging
import Logging
import MeshCertificates
import MeshTestKit
import MeshTransport
import Testing
import X509

@Suite("MeshServiceIdentity")
struct MeshServiceIdentityTests {
  @Test("SPIFFE IDs that follow the rules are accepted")
  func validSPIFFE() throws {
    let identity = try MeshServiceIdentity.spiffe("spiffe://mesh.local/ns/default/svc/orders")
    #expect(identity.spiffeID == "spiffe://mesh.local/ns/default/svc/orders")
    #expect(identity.trustDomain == "mesh.local")
    #expect(identity.dnsName == nil)
    #expect(
      try MeshServiceIdentity.spiffe(trustDomain: "mesh.local", service: "orders") == identity
    )
    #expect(try MeshServiceIdentity.spiffe("spiffe://example.org").trustDomain == "example.org")
  }

  @Test(
    "SPIFFE IDs that break the rules are rejected with invalidIdentity",
    arguments: [
      "http://mesh.local/svc", "SPIFFE://mesh.local/a", "spiffe://", "spiffe:///path",
      "spiffe://Mesh.Local/a", "spiffe://mesh.local:8080/a", "spiffe://user@mesh.local/a",
      "spiffe://mesh.local/a//b", "spiffe://mesh.local/a/", "spiffe://mesh.local/./a",
      "spiffe://mesh.local/a/..", "spiffe://mesh.local/a?b=c", "spiffe://mesh.local/a#b",
      "spiffe://mesh.local/a b",
    ]
  )
  func invalidSPIFFE(_ id: String) {
    #expect(throws: MeshTLSError.self) { try MeshServiceIdentity.spiffe(id) }
    do {
      _ = try MeshServiceIdentity.spiffe(id)
    } catch {
      #expect(error.code == .invalidIdentity)
    }
  }

  @Test("DNS identities compare case-insensitively and reject bad names")
  func dnsIdentities() throws {
    #expect(try MeshServiceIdentity.dns("Orders.Internal") == .dns("orders.internal"))
    #expect(try MeshServiceIdentity.dns("orders.") == .dns("orders"))
    for bad in [
      "", "-orders", "orders-", "ord_ers", "*.orders", "a..b", String(repeating: "a", count: 64),
    ] {
      #expect(throws: MeshTLSError.self, "\(bad)") { try MeshServiceIdentity.dns(bad) }
    }
  }

  @Test("Text forms parse back")
  func parsing() throws {
    let spiffe = try MeshServiceIdentity(parsing: "spiffe://mesh.local/ns/a/svc/b")
    #expect(try MeshServiceIdentity(parsing: spiffe.description) == spiffe)
    let dns = try MeshServiceIdentity(parsing: "orders")
    #expect(try MeshServiceIdentity(parsing: dns.description) == dns)
  }

  @Test("A certificate's identities are its SPIFFE URI and DNS SANs")
  func identitiesInCertificate() throws {
    let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    let issued = try authority.issue(service: "orders", dnsNames: ["orders.internal"])
    #expect(
      MeshServiceIdentity.identities(in: issued.certificate) == [
        try .spiffe("spiffe://mesh.local/ns/default/svc/orders"), try .dns("orders"),
        try .dns("localhost"), try .dns("orders.internal"),
      ]
    )
  }

  @Test("Identity policies match exactly")
  func policies() throws {
    let orders = try MeshServiceIdentity.spiffe(trustDomain: "mesh.local", service: "orders")
    let legacy = try MeshServiceIdentity.dns("orders")
    let other = try MeshServiceIdentity.spiffe(trustDomain: "other.local", service: "orders")
    #expect(MeshIdentityPolicy.exactly(orders).match([other, legacy, orders]) == orders)
    #expect(MeshIdentityPolicy.exactly(orders).match([other, legacy]) == nil)
    #expect(MeshIdentityPolicy.oneOf([orders, legacy]).match([legacy]) == legacy)
    #expect(MeshIdentityPolicy.trustDomain("mesh.local").match([other, orders]) == orders)
    #expect(MeshIdentityPolicy.anyIdentity.match([legacy, orders]) == orders)
    #expect(MeshIdentityPolicy.anyIdentity.match([]) == nil)
  }
}

@Suite("MeshCredentials loading")
struct MeshCredentialsLoadingTests {
  /// Loads `configuration` and returns the error code it fails with.
  func failure(
    _ configuration: MeshTLSConfiguration,
    now: Date = Date()
  ) async -> MeshTLSError.Code? {
    do {
      _ = try await MeshCredentials(configuration, now: now)
      return nil
    } catch {
      return error.code
    }
  }

  @Test("Good files load, with the certificate's identities and expiry")
  func loads() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    let issued = try pki.issue("orders")
    let credentials = try await pki.credentials(for: "orders")
    #expect(credentials.identities.first == issued.identity)
    #expect(credentials.notValidAfter == issued.certificate.notValidAfter)
    #expect(credentials.certificate.serialNumber == issued.certificate.serialNumber)
    #expect(credentials.trustRoots == [pki.authority.certificate])
    #expect(credentials.timeUntilExpiry() > .seconds(300 * 86_400))
  }

  @Test("In-memory PEM loads too")
  func inMemory() async throws {
    let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    let issued = try authority.issue(service: "orders")
    let credentials = try await MeshCredentials(
      MeshTLSConfiguration(
        certificateChain: .pem(try issued.certificatePEM()),
        privateKey: .pem(try issued.privateKeyPEM()),
        trustBundle: .pem(try authority.certificatePEM())
      )
    )
    #expect(credentials.identities.first == issued.identity)
  }

  @Test("A missing file is fileNotFound")
  func missingFile() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    #expect(await self.failure(pki.configuration(for: "never-issued")) == .fileNotFound)
  }

  @Test("A file that cannot be read is unreadableFile")
  func unreadableFile() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    var configuration = pki.configuration(for: "orders")
    configuration.trustBundle = .file(pki.directory.servicesPath)  // a folder, not a file
    #expect(await self.failure(configuration) == .unreadableFile)
  }

  @Test("Garbage, empty files and the wrong kind of PEM are malformedPEM")
  func malformedPEM() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    let good = pki.configuration(for: "orders")
    let keyPEM = String(decoding: try good.privateKey.load(), as: UTF8.self)
    let certificatePEM = String(decoding: try good.certificateChain.load(), as: UTF8.self)

    var garbage = good
    garbage.certificateChain = .pem("this is not PEM")
    #expect(await self.failure(garbage) == .malformedPEM)

    var empty = good
    empty.trustBundle = .pem("")
    #expect(await self.failure(empty) == .malformedPEM)

    var keyAsCertificate = good
    keyAsCertificate.certificateChain = .pem(keyPEM)
    #expect(await self.failure(keyAsCertificate) == .malformedPEM)

    var certificateAsKey = good
    certificateAsKey.privateKey = .pem(certificatePEM)
    #expect(await self.failure(certificateAsKey) == .malformedPEM)

    var truncated = good
    truncated.certificateChain = .pem(String(certificatePEM.prefix(200)))
    #expect(await self.failure(truncated) == .malformedPEM)

    var corrupted = good
    corrupted.certificateChain = .pem(
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    #expect(await self.failure(corrupted) == .malformedPEM)
  }

  @Test("Another certificate's key is privateKeyMismatch")
  func keyMismatch() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    try pki.issue("payments")
    var configuration = pki.configuration(for: "orders")
    configuration.privateKey = .file(pki.directory.keyPath(service: "payments"))
    #expect(await self.failure(configuration) == .privateKeyMismatch)
  }

  @Test("Expired and not-yet-valid certificates are refused")
  func validity() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    let now = Date()
    try pki.issue(
      "old",
      notValidBefore: now.addingTimeInterval(-3 * 86_400),
      notValidAfter: now.addingTimeInterval(-86_400)
    )
    try pki.issue(
      "early",
      notValidBefore: now.addingTimeInterval(86_400),
      notValidAfter: now.addingTimeInterval(3 * 86_400)
    )
    #expect(await self.failure(pki.configuration(for: "old")) == .certificateExpired)
    #expect(await self.failure(pki.configuration(for: "early")) == .certificateNotYetValid)
  }

  @Test("A certificate from another CA is untrustedCertificate")
  func otherCA() async throws {
    let pki = try TestPKI()
    let other = try TestPKI()
    defer {
      pki.remove()
      other.remove()
    }
    try other.issue("orders")
    var configuration = other.configuration(for: "orders")
    configuration.trustBundle = .file(pki.directory.caCertificatePath)
    #expect(await self.failure(configuration) == .untrustedCertificate)
  }

  @Test("A certificate without SPIFFE or DNS SANs is missingIdentity")
  func noIdentity() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("anonymous", uriNames: [], includeDefaultDNSNames: false)
    #expect(await self.failure(pki.configuration(for: "anonymous")) == .missingIdentity)
  }

  @Test("Out-of-range settings are invalidConfiguration, naming the field")
  func badSettings() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    var configuration = pki.configuration(for: "orders")
    configuration.http2.maxFrameSize = 1_000
    do {
      _ = try await MeshCredentials(configuration)
      Issue.record("expected an error")
    } catch {
      #expect(error.code == .invalidConfiguration)
      #expect(error.message.contains("http2.maxFrameSize"))
    }
    configuration = pki.configuration(for: "orders")
    configuration.keepalive.pingTimeout = .zero
    #expect(await self.failure(configuration) == .invalidConfiguration)
  }

  @Test("A certificate near its expiry is logged as a warning, at load and at each reload")
  func expiryWarning() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    // Whole seconds, as X.509 times are.
    let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
    try pki.issue("orders", notValidAfter: now.addingTimeInterval(3 * 86_400))
    let logs = InMemoryLogHandler()
    let logger = Logger(label: "test", factory: { _ in logs })

    var configuration = pki.configuration(for: "orders")
    configuration.expiryWarningWindow = .seconds(7 * 86_400)
    let credentials = try await MeshCredentials(configuration, logger: logger, now: now)
    #expect(credentials.timeUntilExpiry(now: now) == .seconds(3 * 86_400))

    func warnings() -> [InMemoryLogHandler.Entry] {
      logs.entries.filter { $0.level == .warning && $0.metadata["mesh.tls.seconds_left"] != nil }
    }
    #expect(warnings().count == 1)
    #expect(warnings().first?.metadata["mesh.tls.seconds_left"] == "\(3 * 86_400)")
    try await credentials.reload(now: now)
    #expect(warnings().count == 2)

    // Far from expiry: no warning.
    try pki.issue("orders")
    try await credentials.reload(now: now)
    #expect(warnings().count == 2)
  }

  @Test("run() reloads every reloadInterval of its clock and stops when cancelled")
  func runReloadsOnTheClock() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    try pki.issue("orders")
    var configuration = pki.configuration(for: "orders")
    configuration.reloadInterval = .seconds(30)
    let credentials = try await MeshCredentials(configuration)
    let clock = MeshManualClock()

    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await credentials.run(clock: clock) }
      await clock.waitForSleepers(1)

      let rotated = try pki.issue("orders")
      clock.advance(by: .seconds(29))
      #expect(credentials.certificate.serialNumber != rotated.certificate.serialNumber)

      clock.advance(by: .seconds(1))
      // The loop sleeps again only after its reload finished.
      await clock.waitForSleepers(1)
      #expect(credentials.certificate.serialNumber == rotated.certificate.serialNumber)

      group.cancelAll()
      clock.cancelSleepers()
      try await group.waitForAll()
    }
  }

  @Test("A reload with bad files keeps the current certificate")
  func badReloadKeepsCurrent() async throws {
    let pki = try TestPKI()
    defer { pki.remove() }
    let issued = try pki.issue("orders")
    let credentials = try await pki.credentials(for: "orders")
    try Data("garbage".utf8).write(
      to: URL(fileURLWithPath: pki.directory.certificatePath(service: "orders"))
    )
    await #expect(throws: MeshTLSError.self) { try await credentials.reload() }
    #expect(credentials.certificate.serialNumber == issued.certificate.serialNumber)

    let reissued = try pki.issue("orders")
    #expect(try await credentials.reload())
    #expect(credentials.certificate.serialNumber == reissued.certificate.serialNumber)
    #expect(try await credentials.reload() == false, "unchanged files are not a rotation")
  }
}

@Suite("MeshPeerVerifier")
struct MeshPeerVerifierTests {
  @Test("Each reason to refuse a peer has its code")
  func verdicts() async throws {
    let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    let other = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    let now = Date()
    let orders = try authority.issue(service: "orders")
    let roots = [authority.certificate]

    func verdict(
      _ chain: [Certificate],
      policy: MeshIdentityPolicy = .anyIdentity,
      role: String = "server"
    ) async -> MeshTLSError.Code? {
      switch await MeshPeerVerifier.verify(
        peerChain: chain,
        trustRoots: roots,
        policy: policy,
        peerRole: role,
        now: now
      ) {
      case .success:
        return nil
      case .failure(let error):
        return error.code
      }
    }

    #expect(await verdict([orders.certificate], policy: .exactly(orders.identity)) == nil)
    #expect(await verdict([], role: "client") == .missingClientCertificate)
    #expect(
      await verdict([try other.issue(service: "orders").certificate]) == .untrustedCertificate
    )
    #expect(
      await verdict(
        [orders.certificate],
        policy: .exactly(try .spiffe(trustDomain: "mesh.local", service: "payments"))
      ) == .identityMismatch
    )
    let expired = try authority.issue(
      service: "old",
      notValidBefore: now.addingTimeInterval(-3 * 86_400),
      notValidAfter: now.addingTimeInterval(-86_400)
    )
    #expect(await verdict([expired.certificate]) == .certificateExpired)
    let anonymous = try authority.issue(
      service: "anon",
      uriNames: [],
      includeDefaultDNSNames: false
    )
    #expect(await verdict([anonymous.certificate]) == .missingIdentity)
  }
}
