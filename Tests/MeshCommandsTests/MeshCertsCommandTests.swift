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

import ArgumentParser
import Foundation
import MeshCertificates
import MeshCommands
import MeshTransport
import Testing

/// `mesh certs` run in process, as a user would run it.
@Suite("mesh certs")
struct MeshCertsCommandTests {
  let directory = FileManager.default.temporaryDirectory
    .appendingPathComponent("mesh-certs-\(UUID().uuidString)").path

  func mesh(_ arguments: String...) throws {
    var command = try MeshCommand.parseAsRoot(arguments)
    try command.run()
  }

  func contents(_ path: String) throws -> Data {
    try Data(contentsOf: URL(fileURLWithPath: path))
  }

  func mode(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
  }

  /// Runs `openssl` with `arguments`; returns its exit status and output.
  func openssl(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["openssl"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
  }

  @Test("init and issue write the seed's layout, keys 0600, accepted by openssl verify")
  func initAndIssue() async throws {
    defer { try? FileManager.default.removeItem(atPath: self.directory) }
    try self.mesh("certs", "init", "--dir", self.directory, "--trust-domain", "prod.example")
    try self.mesh(
      "certs",
      "issue",
      "orders",
      "--dir",
      self.directory,
      "--dns",
      "orders.internal",
      "--ip",
      "127.0.0.1",
      "--ip",
      "::1",
      "--days",
      "30"
    )

    let layout = MeshCertificateDirectory(path: self.directory)
    #expect(try self.mode(layout.caKeyPath) == 0o600)
    #expect(try self.mode(layout.keyPath(service: "orders")) == 0o600)
    #expect(try self.mode(layout.caCertificatePath) == 0o644)
    #expect(try self.mode(layout.certificatePath(service: "orders")) == 0o644)

    let verify = try self.openssl([
      "verify", "-CAfile", layout.caCertificatePath, layout.certificatePath(service: "orders"),
    ])
    #expect(verify.status == 0, "\(verify.output)")
    #expect(verify.output.contains(": OK"))

    let text = try self.openssl([
      "x509", "-noout", "-text", "-in", layout.certificatePath(service: "orders"),
    ])
    #expect(text.output.contains("URI:spiffe://prod.example/ns/default/svc/orders"))
    #expect(text.output.contains("DNS:orders, DNS:localhost, DNS:orders.internal"))
    #expect(text.output.contains("IP Address:127.0.0.1"))

    // And the mesh loads what the tool wrote.
    let credentials = try await MeshCredentials(.directory(self.directory, service: "orders"))
    #expect(credentials.identities.first?.spiffeID == "spiffe://prod.example/ns/default/svc/orders")
    let days = credentials.timeUntilExpiry().components.seconds / 86_400
    #expect((29...30).contains(days))
  }

  @Test("Nothing is overwritten without --force, and nothing is lost when refused")
  func refusesToOverwrite() throws {
    defer { try? FileManager.default.removeItem(atPath: self.directory) }
    let layout = MeshCertificateDirectory(path: self.directory)
    try self.mesh("certs", "init", "--dir", self.directory)
    try self.mesh("certs", "issue", "orders", "--dir", self.directory)
    let ca = try self.contents(layout.caCertificatePath)
    let caKey = try self.contents(layout.caKeyPath)
    let certificate = try self.contents(layout.certificatePath(service: "orders"))

    #expect {
      try self.mesh("certs", "init", "--dir", self.directory)
    } throws: { ($0 as? MeshTLSError)?.code == .alreadyExists }
    #expect {
      try self.mesh("certs", "issue", "orders", "--dir", self.directory)
    } throws: { ($0 as? MeshTLSError)?.code == .alreadyExists }
    #expect(try self.contents(layout.caCertificatePath) == ca)
    #expect(try self.contents(layout.caKeyPath) == caKey)
    #expect(try self.contents(layout.certificatePath(service: "orders")) == certificate)

    try self.mesh("certs", "issue", "orders", "--dir", self.directory, "--force")
    #expect(try self.contents(layout.certificatePath(service: "orders")) != certificate)
    #expect(try self.mode(layout.keyPath(service: "orders")) == 0o600)
  }

  @Test("mesh agent: --dev is required, ports are checked, check TLS flags go together")
  func agentFlags() throws {
    #expect(throws: (any Error).self) { try MeshCommand.parseAsRoot(["agent"]) }
    #expect(throws: (any Error).self) {
      try MeshCommand.parseAsRoot(["agent", "--dev", "--port", "70000"])
    }
    #expect(throws: (any Error).self) {
      try MeshCommand.parseAsRoot(["agent", "--dev", "--check-certificates", "certs"])
    }
    let command = try MeshCommand.parseAsRoot(["agent", "--dev", "--port", "0"])
    #expect(command is any MeshAsyncCommand)
  }

  @Test("Bad flags and inputs are clear errors")
  func badInput() throws {
    defer { try? FileManager.default.removeItem(atPath: self.directory) }
    // Rejected while parsing, before anything runs.
    #expect(throws: (any Error).self) { try self.mesh("certs", "init", "--days", "0") }
    #expect(throws: (any Error).self) { try self.mesh("certs", "issue", "bad_name!") }
    #expect(throws: (any Error).self) { try self.mesh("certs", "issue", "a.b") }
    #expect(throws: (any Error).self) { try self.mesh("certs", "frobnicate") }
    #expect(throws: (any Error).self) { try self.mesh("certs", "issue") }

    // Typed errors from running.
    #expect {
      try self.mesh("certs", "issue", "orders", "--dir", self.directory)
    } throws: { ($0 as? MeshTLSError)?.code == .fileNotFound }
    #expect {
      try self.mesh("certs", "init", "--dir", self.directory, "--trust-domain", "Bad Domain")
    } throws: { ($0 as? MeshTLSError)?.code == .invalidIdentity }
    try self.mesh("certs", "init", "--dir", self.directory)
    #expect {
      try self.mesh("certs", "issue", "orders", "--dir", self.directory, "--ip", "300.1.1.1")
    } throws: { ($0 as? MeshTLSError)?.code == .invalidConfiguration }
    #expect {
      try self.mesh("certs", "issue", "orders", "--dir", self.directory, "--dns", "bad_name")
    } throws: { ($0 as? MeshTLSError)?.code == .invalidIdentity }
    #expect(
      !FileManager.default.fileExists(
        atPath: MeshCertificateDirectory(path: self.directory).certificatePath(service: "orders")
      )
    )

    // A corrupted CA key is a typed error, not a crash.
    try Data("not a key".utf8).write(
      to: URL(fileURLWithPath: MeshCertificateDirectory(path: self.directory).caKeyPath)
    )
    #expect {
      try self.mesh("certs", "issue", "orders", "--dir", self.directory)
    } throws: { ($0 as? MeshTLSError)?.code == .malformedPEM }
  }

  @Test("An empty --dir is refused: nothing is written at the filesystem root")
  func emptyDirectory() throws {
    #expect(throws: (any Error).self) { try self.mesh("certs", "init", "--dir", "") }
    #expect(throws: (any Error).self) { try self.mesh("certs", "issue", "orders", "--dir", "") }
    #expect(MeshCommand.message(for: self.failure("certs", "init", "--dir", "")).contains("--dir"))
    // The library refuses it too.
    let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    #expect {
      try MeshCertificateDirectory(path: "").write(authority)
    } throws: { ($0 as? MeshTLSError)?.code == .invalidConfiguration }
  }

  /// The error running `arguments` fails with; a `CancellationError` if it did not fail.
  func failure(_ arguments: String...) -> any Error {
    self.failure(arguments)
  }

  @Test("Absurd --days are flag errors, not traps; --days past the CA's expiry is refused")
  func days() throws {
    defer { try? FileManager.default.removeItem(atPath: self.directory) }
    for days in ["9223372036854775807", "36501", "-1", "0"] {
      let initError = self.failure("certs", "init", "--dir", self.directory, "--days", days)
      #expect(MeshCommand.message(for: initError).contains("--days"), "\(initError)")
      #expect(!(initError is CancellationError))
      let issueError = self.failure(
        "certs",
        "issue",
        "orders",
        "--dir",
        self.directory,
        "--days",
        days
      )
      #expect(MeshCommand.message(for: issueError).contains("--days"), "\(issueError)")
    }
    #expect(!FileManager.default.fileExists(atPath: self.directory))

    // A CA of 10 days issues for 10 days at most.
    try self.mesh("certs", "init", "--dir", self.directory, "--days", "10")
    let pastExpiry = self.failure(
      "certs",
      "issue",
      "orders",
      "--dir",
      self.directory,
      "--days",
      "30"
    )
    #expect(pastExpiry is ValidationError, "\(pastExpiry)")
    #expect(MeshCommand.message(for: pastExpiry).contains("expiry"))
    let layout = MeshCertificateDirectory(path: self.directory)
    #expect(!FileManager.default.fileExists(atPath: layout.certificatePath(service: "orders")))
    try self.mesh("certs", "issue", "orders", "--dir", self.directory, "--days", "9")

    // The library refuses the same, with typed errors.
    let authority = try layout.loadAuthority()
    #expect {
      try authority.issue(service: "orders", days: 30)
    } throws: { ($0 as? MeshTLSError)?.code == .invalidConfiguration }
    #expect {
      try authority.issue(service: "orders", notValidAfter: Date().addingTimeInterval(20 * 86_400))
    } throws: { ($0 as? MeshTLSError)?.code == .invalidConfiguration }
    #expect {
      try MeshCertificateAuthority.create(trustDomain: "mesh.local", days: Int.max)
    } throws: { ($0 as? MeshTLSError)?.code == .invalidConfiguration }
  }

  @Test(
    "Trust domains are SPIFFE trust domains: no scheme, path or port, at most 255 bytes",
    arguments: [
      "mesh.local/ns/x", "mesh.local/", "spiffe://mesh.local", "mesh.local:8443", "Mesh.Local",
      "", String(repeating: "a", count: 256), "mesh local", "me%sh",
    ]
  )
  func trustDomains(domain: String) throws {
    defer { try? FileManager.default.removeItem(atPath: self.directory) }
    #expect {
      try self.mesh("certs", "init", "--dir", self.directory, "--trust-domain", domain)
    } throws: { ($0 as? MeshTLSError)?.code == .invalidIdentity }
    #expect(!FileManager.default.fileExists(atPath: self.directory))
  }

  @Test("A trust domain of 255 bytes is a trust domain")
  func longestTrustDomain() throws {
    let domain = String(repeating: "a", count: 255)
    let authority = try MeshCertificateAuthority.create(trustDomain: domain)
    #expect(authority.trustDomain == domain)
  }

  @Test(
    "Namespaces are one path segment; service names one lowercase DNS label",
    arguments: [
      ["--namespace", "a/b"], ["--namespace", ".."], ["--namespace", "."], ["--namespace", ""],
      ["--namespace", "a b"], ["Orders"], ["a..b"], ["a/b"], ["../x"], ["a b"], ["-a"], ["a-"],
      [String(repeating: "a", count: 64)], ["x.y"],
    ]
  )
  func namesAgree(arguments: [String]) throws {
    defer { try? FileManager.default.removeItem(atPath: self.directory) }
    try self.mesh("certs", "init", "--dir", self.directory)
    let service = arguments.first == "--namespace" ? ["orders"] : []
    let error = self.failure(
      ["certs", "issue"] + service + arguments + ["--dir", self.directory]
    )
    #expect(!(error is CancellationError), "accepted: \(arguments)")
    #expect(
      (try? FileManager.default.contentsOfDirectory(
        atPath: MeshCertificateDirectory(path: self.directory).servicesPath
      )) ?? [] == []
    )
    // And the library refuses them too, whoever calls it.
    let authority = try MeshCertificateDirectory(path: self.directory).loadAuthority()
    let name = arguments.first == "--namespace" ? "orders" : arguments[0]
    let namespace = arguments.first == "--namespace" ? arguments[1] : "default"
    #expect {
      try authority.issue(service: name, namespace: namespace)
    } throws: { ($0 as? MeshTLSError)?.code == .invalidIdentity }
  }

  func failure(_ arguments: [String]) -> any Error {
    do {
      var command = try MeshCommand.parseAsRoot(arguments)
      try command.run()
      return CancellationError()
    } catch {
      return error
    }
  }

  @Test("init --force replaces the CA certificate and key together, or neither")
  func forceIsAllOrNothing() throws {
    defer { try? FileManager.default.removeItem(atPath: self.directory) }
    let layout = MeshCertificateDirectory(path: self.directory)
    try self.mesh("certs", "init", "--dir", self.directory)
    let certificate = try self.contents(layout.caCertificatePath)

    // The key's path cannot be replaced (a folder with something in it): the certificate must
    // not change either, and no temporary file is left behind.
    try FileManager.default.removeItem(atPath: layout.caKeyPath)
    try FileManager.default.createDirectory(
      atPath: layout.caKeyPath + "/blocker",
      withIntermediateDirectories: true
    )
    #expect(throws: MeshTLSError.self) {
      try self.mesh("certs", "init", "--dir", self.directory, "--force")
    }
    #expect(try self.contents(layout.caCertificatePath) == certificate)
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: self.directory).sorted()
        == ["ca-key.pem", "ca.crt"]
    )

    // Once the path is free, both are replaced, and they belong together.
    try FileManager.default.removeItem(atPath: layout.caKeyPath)
    try self.mesh("certs", "init", "--dir", self.directory, "--force")
    #expect(try self.contents(layout.caCertificatePath) != certificate)
    _ = try layout.loadAuthority()  // the key matches the certificate
  }

  // Serialized: the umask is the process's, and each case restores the one before it.
  @Test(
    "Folders holding keys are 0700 whatever the umask",
    .serialized,
    arguments: [0o000, 0o022, 0o077]
  )
  func privateFolders(umaskValue: Int) throws {
    defer { try? FileManager.default.removeItem(atPath: self.directory) }
    let nested = self.directory + "/deeper/certs"
    let layout = MeshCertificateDirectory(path: nested)
    let previous = umask(mode_t(umaskValue))
    defer { umask(previous) }
    try self.mesh("certs", "init", "--dir", nested)
    try self.mesh("certs", "issue", "orders", "--dir", nested)
    #expect(try self.mode(nested) == 0o700)
    #expect(try self.mode(layout.servicesPath) == 0o700)
    #expect(try self.mode(layout.caKeyPath) == 0o600)
    #expect(try self.mode(layout.keyPath(service: "orders")) == 0o600)
  }
}
