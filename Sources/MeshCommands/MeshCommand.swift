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
internal import MeshTransport
internal import X509

/// The `mesh` command line tool.
public struct MeshCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "mesh",
    abstract:
      "Operate a swift-grpc-mesh: health probes, status, checks, certificates, a dev agent.",
    discussion: """
      Exit status: 0 on success, 1 for bad arguments or a failed check; 'mesh health' keeps \
      grpc_health_probe's statuses (2 connection, 3 RPC, 4 not SERVING). Colour only on a \
      terminal (never with NO_COLOR). Run 'mesh help <command>' for a command's flags and examples.
      """,
    subcommands: [
      HealthCommand.self, StatusCommand.self, CheckCommand.self, ClustersCommand.self,
      ConfigCommand.self, CertsCommand.self, AgentCommand.self,
    ]
  )

  public init() {}
}

/// A subcommand whose work is asynchronous. The `mesh` executable runs these through
/// ``runAsync()``: from top-level code, ArgumentParser's synchronous entry point cannot.
public protocol MeshAsyncCommand {
  mutating func runAsync() async throws
}

/// `mesh certs`: the mesh CA and service certificates.
public struct CertsCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "certs",
    abstract: "Make a mesh CA and issue service certificates.",
    discussion: """
      Files go where the Python mesh's scripts put them: <dir>/ca.crt and <dir>/ca-key.pem for the CA, \
      <dir>/services/<service>.crt and <dir>/services/<service>-key.pem for each service. Keys \
      are ECDSA P-256, written with mode 0600. Nothing is overwritten without --force.

      Examples:
        mesh certs init && mesh certs issue orders
        mesh certs inspect certs/services/orders.crt
        mesh certs rotate orders
      """,
    subcommands: [InitCommand.self, IssueCommand.self, InspectCommand.self, RotateCommand.self]
  )

  public init() {}
}

/// `mesh certs init`.
public struct InitCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "init",
    abstract: "Create a mesh certificate authority.",
    discussion: """
      Examples:
        mesh certs init
        mesh certs init --dir /etc/mesh/certs --trust-domain prod.example --days 1825
      """
  )

  @Option(name: .long, help: "The folder for the certificates (created 0700).")
  var dir: String = "certs"

  @Option(
    name: .long,
    help: "The SPIFFE trust domain of the mesh: lowercase letters, digits, '.', '-', '_'."
  )
  var trustDomain: String = "mesh.local"

  @Option(name: .long, help: "How many days the CA is valid (1 to 36500).")
  var days: Int = 3650

  @Flag(
    name: .long,
    help: "Replace an existing CA, certificate and key together (every service must be reissued)."
  )
  var force: Bool = false

  public init() {}

  public func validate() throws {
    try validateDirectory(self.dir)
    try validateDays(self.days)
  }

  public func run() throws {
    let directory = MeshCertificateDirectory(path: self.dir)
    let authority = try MeshCertificateAuthority.create(
      trustDomain: self.trustDomain,
      days: self.days
    )
    let written = try directory.write(authority, force: self.force)
    print("Created the mesh CA for trust domain '\(authority.trustDomain)':")
    for path in written {
      print("  \(path)")
    }
    print("Valid until \(authority.certificate.notValidAfter).")
  }
}

/// `mesh certs issue`.
public struct IssueCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "issue",
    abstract: "Issue a service certificate signed by the mesh CA.",
    discussion: """
      The certificate names spiffe://<trust-domain>/ns/<namespace>/svc/<service> in a URI SAN \
      and <service>, localhost and every --dns name in DNS SANs, plus every --ip address. It \
      serves both ends of a connection.

      Examples:
        mesh certs issue orders
        mesh certs issue checkout --dns checkout.internal --ip 10.0.0.7 --days 90
        mesh certs issue orders --namespace shop --force
      """
  )

  @Argument(
    help: ArgumentHelp(
      "The service's name, as clients call it: one DNS label of lowercase letters, digits and "
        + "inner '-' (such as 'orders')."
    )
  )
  var service: String

  @Option(name: .long, help: "The folder for the certificates (created 0700).")
  var dir: String = "certs"

  @Option(name: .long, parsing: .singleValue, help: "An extra DNS name (repeatable).")
  var dns: [String] = []

  @Option(name: .long, parsing: .singleValue, help: "An IP address SAN (repeatable).")
  var ip: [String] = []

  @Option(
    name: .long,
    help: "The namespace in the SPIFFE ID: one path segment (letters, digits, '.', '-', '_')."
  )
  var namespace: String = "default"

  @Option(
    name: .long,
    help: "How many days the certificate is valid; more than the CA has left is refused."
  )
  var days: Int = 365

  @Flag(name: .long, help: "Replace an existing certificate and key for this service, together.")
  var force: Bool = false

  public init() {}

  public func validate() throws {
    try validateDirectory(self.dir)
    try validateDays(self.days)
    // The service name becomes a file name, a DNS SAN and a SPIFFE path segment.
    do {
      try MeshCertificateAuthority.validateServiceName(self.service)
      try MeshCertificateAuthority.validateNamespace(self.namespace)
    } catch {
      throw ValidationError(error.message)
    }
  }

  public func run() throws {
    let directory = MeshCertificateDirectory(path: self.dir)
    let authority = try directory.loadAuthority()
    let remaining = authority.remainingDays()
    guard self.days <= remaining else {
      throw ValidationError(
        """
        --days \(self.days) is past the CA's own expiry (\(authority.certificate.notValidAfter)): \
        at most \(remaining) days are left. Issue for fewer days, or make a new CA.
        """
      )
    }
    let issued = try authority.issue(
      service: self.service,
      namespace: self.namespace,
      dnsNames: self.dns,
      ipAddresses: self.ip,
      days: self.days
    )
    let written = try directory.write(issued, force: self.force)
    print("Issued a certificate for \(issued.identity):")
    for path in written {
      print("  \(path)")
    }
    print("Valid until \(issued.certificate.notValidAfter).")
  }
}

/// `--dir`: an empty path would put the CA key at the filesystem root.
private func validateDirectory(_ directory: String) throws {
  guard !directory.isEmpty else {
    throw ValidationError("--dir must name a folder (such as 'certs'), not be empty.")
  }
}

/// `--days`: from 1 to ``MeshCertificateAuthority/maximumDays``.
private func validateDays(_ days: Int) throws {
  do {
    _ = try MeshInput.integer(days, field: "--days", in: 1...MeshCertificateAuthority.maximumDays)
  } catch {
    throw ValidationError("\(error.field) \(error.message).")
  }
}
