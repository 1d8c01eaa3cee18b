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

public import ArgumentParser
internal import Foundation
internal import MeshCertificates
internal import MeshCore
internal import MeshIdentity
internal import SwiftASN1
internal import X509

/// `mesh certs inspect FILE`.
public struct InspectCommand: AsyncParsableCommand, MeshReportingCommand {
  public static let configuration = CommandConfiguration(
    commandName: "inspect",
    abstract: "Show a certificate's identity, SANs and validity, and check its chain to the CA.",
    discussion: """
      The CA is --ca, else the ca.crt of the 'mesh certs' folder the file is in \
      (<dir>/services/<service>.crt). Exit status: 0 when the certificate is valid now and \
      chains to the CA (or is the CA), 1 when it does not, or cannot be read.

      Examples:
        mesh certs inspect certs/services/orders.crt
        mesh certs inspect /etc/mesh/tls.crt --ca /etc/mesh/ca.crt --json
      """
  )

  @Argument(help: "A PEM certificate file (a chain: the first is inspected).")
  var file: String

  @Option(name: .long, help: "The CA bundle to verify the chain against.")
  var ca: String?

  @Flag(name: .long, help: "Print the result as JSON.")
  var json: Bool = false

  public init() {}

  struct Report: Encodable {
    var file: String
    var subject: String
    var issuer: String
    var serial: String
    var isCA: Bool
    var identities: [String]
    var dnsNames: [String]
    var ipAddresses: [String]
    var uris: [String]
    var notValidBefore: Date
    var notValidAfter: Date
    var daysLeft: Int
    var ca: String?
    var chain: String
    var valid: Bool

    enum CodingKeys: String, CodingKey {
      case file, subject, issuer, serial, identities, uris, ca, chain, valid
      case isCA = "is_ca"
      case dnsNames = "dns_names"
      case ipAddresses = "ip_addresses"
      case notValidBefore = "not_valid_before"
      case notValidAfter = "not_valid_after"
      case daysLeft = "days_left"
    }
  }

  public func execute(_ output: MeshCommandOutput) async throws -> Int32 {
    let chain: [Certificate]
    do {
      chain = try readCertificates(self.file)
    } catch {
      throw MeshCommandFailure(exitCode: 1, error.message)
    }
    let leaf = chain[0]
    let names = SubjectNames(leaf)
    let isCA: Bool
    if case .some(.isCertificateAuthority) = try? leaf.extensions.basicConstraints {
      isCA = true
    } else {
      isCA = false
    }
    var report = Report(
      file: self.file,
      subject: leaf.subject.description,
      issuer: leaf.issuer.description,
      serial: leaf.serialNumber.description,
      isCA: isCA,
      identities: MeshServiceIdentity.identities(in: leaf).map(\.description),
      dnsNames: names.dns,
      ipAddresses: names.ip,
      uris: names.uri,
      notValidBefore: leaf.notValidBefore,
      notValidAfter: leaf.notValidAfter,
      daysLeft: daysLeft(until: leaf.notValidAfter),
      ca: nil,
      chain: "",
      valid: false
    )
    let now = Date()
    let caPath = self.ca ?? self.siblingCA()
    report.ca = caPath
    if now < leaf.notValidBefore || now > leaf.notValidAfter {
      report.chain = "not valid now (valid \(leaf.notValidBefore) to \(leaf.notValidAfter))"
    } else if let caPath {
      do {
        let roots = try readCertificates(caPath)
        if isCA && roots.contains(leaf) {
          report.chain = "is the CA"
          report.valid = true
        } else {
          switch await MeshPeerVerifier.verify(
            peerChain: chain,
            trustRoots: roots,
            policy: .anyIdentity,
            peerRole: "certificate",
            now: now
          ) {
          case .success(let peer):
            report.chain = "chains to \(peer.chain.last?.subject.description ?? caPath)"
            report.valid = true
          case .failure(let error):
            report.chain = error.message
          }
        }
      } catch {
        report.chain = "the CA cannot be read: \(error.message)"
      }
    } else {
      report.chain =
        isCA ? "a CA certificate (no other CA to check it against)" : "no CA given (--ca)"
      report.valid = isCA
    }
    if self.json {
      try output.json(report)
    } else {
      output.line("File:        \(report.file)")
      output.line("Subject:     \(report.subject)")
      output.line("Issuer:      \(report.issuer)")
      output.line("Serial:      \(report.serial)")
      output.line("CA:          \(report.isCA ? "yes" : "no")")
      output.line(
        "Identities:  \(report.identities.isEmpty ? "none" : report.identities.joined(separator: ", "))"
      )
      output.line(
        "DNS SANs:    \(report.dnsNames.isEmpty ? "none" : report.dnsNames.joined(separator: ", "))"
      )
      output.line(
        "IP SANs:     \(report.ipAddresses.isEmpty ? "none" : report.ipAddresses.joined(separator: ", "))"
      )
      output.line(
        "URI SANs:    \(report.uris.isEmpty ? "none" : report.uris.joined(separator: ", "))"
      )
      output.line("Valid from:  \(report.notValidBefore.formatted(.iso8601))")
      output.line(
        "Valid until: \(report.notValidAfter.formatted(.iso8601)) (\(StatusCommand.expiry(report.notValidAfter)))"
      )
      output.line("Chain:       \(output.paint(report.chain, report.valid ? .green : .red))")
    }
    return report.valid ? 0 : 1
  }

  /// `<dir>/ca.crt` for a file at `<dir>/services/<name>.crt`, if there is one.
  private func siblingCA() -> String? {
    let url = URL(fileURLWithPath: self.file).standardizedFileURL
    let folder = url.deletingLastPathComponent()
    guard folder.lastPathComponent == "services" else { return nil }
    let ca = folder.deletingLastPathComponent().appendingPathComponent("ca.crt").path
    return FileManager.default.fileExists(atPath: ca) ? ca : nil
  }
}

/// A certificate's subject alternative names, as text.
struct SubjectNames {
  var dns: [String] = []
  var ip: [String] = []
  var uri: [String] = []

  init(_ certificate: Certificate) {
    guard let names = try? certificate.extensions.subjectAlternativeNames else { return }
    for name in names {
      switch name {
      case .dnsName(let value): self.dns.append(value)
      case .uniformResourceIdentifier(let value): self.uri.append(value)
      case .ipAddress(let octets):
        let bytes = Array(octets.bytes)
        if bytes.count == 4 {
          self.ip.append(bytes.map(String.init).joined(separator: "."))
        } else if bytes.count == 16 {
          var groups: [String] = []
          for index in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]), radix: 16))
          }
          self.ip.append(groups.joined(separator: ":"))
        }
      default: break
      }
    }
  }
}

/// `mesh certs rotate SERVICE`.
public struct RotateCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "rotate",
    abstract: "Reissue a service's certificate and key in place; running services pick them up.",
    discussion: """
      Issues a new certificate with the same names (namespace, DNS and IP SANs) and, unless \
      --days is given, the same lifetime, and a new key; writes both to the same paths, each \
      atomically (a temporary file renamed into place). Services reload their files every 30 \
      seconds by default (MeshTLSConfiguration.reloadInterval): new connections use the new \
      certificate, open ones finish on the old. A service that reads the pair between the two \
      renames keeps its previous credentials until its next reload.

      Examples:
        mesh certs rotate orders
        mesh certs rotate orders --dir /etc/mesh/certs --days 30
      """
  )

  @Argument(help: "The service whose certificate to reissue.")
  var service: String

  @Option(name: .long, help: "The certificates folder.")
  var dir: String = "certs"

  @Option(
    name: .long,
    help: "How many days the new certificate is valid (default: as the old one)."
  )
  var days: Int?

  public init() {}

  public func validate() throws {
    guard !self.dir.isEmpty else { throw ValidationError("--dir must name a folder.") }
    do {
      try MeshCertificateAuthority.validateServiceName(self.service)
      if let days = self.days {
        _ = try MeshInput.integer(
          days,
          field: "--days",
          in: 1...MeshCertificateAuthority.maximumDays
        )
      }
    } catch let error as MeshInputError {
      throw ValidationError("\(error.field) \(error.message).")
    } catch {
      throw ValidationError("\(error)")
    }
  }

  public func run() throws {
    let directory = MeshCertificateDirectory(path: self.dir)
    let authority = try directory.loadAuthority()
    let path = directory.certificatePath(service: self.service)
    let old = try readCertificates(path)[0]
    let names = SubjectNames(old)
    let namespace =
      MeshServiceIdentity.identities(in: old).compactMap(\.spiffeID).first
      .flatMap { id -> String? in
        let parts = id.split(separator: "/")
        guard let index = parts.firstIndex(of: "ns"), index + 1 < parts.count else { return nil }
        return String(parts[index + 1])
      } ?? "default"
    let lifetime = old.notValidAfter.timeIntervalSince(old.notValidBefore) / 86_400
    let days =
      self.days
      ?? Int(MeshInput.int64(truncating: lifetime.rounded(.down)) ?? 365)
    let remaining = authority.remainingDays()
    if let asked = self.days, asked > remaining {
      throw ValidationError(
        """
        --days \(asked) is past the CA's own expiry (\(authority.certificate.notValidAfter)): \
        at most \(remaining) days are left. Rotate for fewer days, or make a new CA.
        """
      )
    }
    let issued = try authority.issue(
      service: self.service,
      namespace: namespace,
      dnsNames: names.dns.filter { $0 != self.service && $0 != "localhost" },
      ipAddresses: names.ip,
      days: max(1, min(days, remaining))
    )
    let written = try directory.write(issued, force: true)
    print(
      "Rotated the certificate of \(issued.identity) (serial \(issued.certificate.serialNumber)):"
    )
    for path in written {
      print("  \(path)")
    }
    print("Valid until \(issued.certificate.notValidAfter).")
    if days > remaining {
      print(
        "(The old lifetime, \(days) days, would outlive the CA: issued for the \(remaining) it has left.)"
      )
    }
  }
}
