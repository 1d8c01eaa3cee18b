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
internal import MeshTransport
internal import X509

/// The `mesh` command line tool.
public struct MeshCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "mesh",
    abstract: "Tools for swift-grpc-mesh: certificates and a Consul-compatible dev agent.",
    subcommands: [CertsCommand.self, AgentCommand.self]
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
      Files go where the seed's scripts put them: <dir>/ca.crt and <dir>/ca-key.pem for the CA, \
      <dir>/services/<service>.crt and <dir>/services/<service>-key.pem for each service. Keys \
      are ECDSA P-256, written with mode 0600. Nothing is overwritten without --force.
      """,
    subcommands: [InitCommand.self, IssueCommand.self]
  )

  public init() {}
}

/// `mesh certs init`.
public struct InitCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "init",
    abstract: "Create a mesh certificate authority."
  )

  @Option(name: .long, help: "The folder for the certificates.")
  var dir: String = "certs"

  @Option(name: .long, help: "The SPIFFE trust domain of the mesh.")
  var trustDomain: String = "mesh.local"

  @Option(name: .long, help: "How many days the CA is valid.")
  var days: Int = 3650

  @Flag(name: .long, help: "Replace an existing CA (every service certificate must be reissued).")
  var force: Bool = false

  public init() {}

  public func validate() throws {
    guard self.days > 0 else {
      throw ValidationError("--days must be at least 1, not \(self.days).")
    }
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
      """
  )

  @Argument(help: "The service's name, as clients call it (a DNS label, such as 'orders').")
  var service: String

  @Option(name: .long, help: "The folder for the certificates.")
  var dir: String = "certs"

  @Option(name: .long, parsing: .singleValue, help: "An extra DNS name (repeatable).")
  var dns: [String] = []

  @Option(name: .long, parsing: .singleValue, help: "An IP address SAN (repeatable).")
  var ip: [String] = []

  @Option(name: .long, help: "The namespace in the SPIFFE ID.")
  var namespace: String = "default"

  @Option(name: .long, help: "How many days the certificate is valid.")
  var days: Int = 365

  @Flag(name: .long, help: "Replace an existing certificate for this service.")
  var force: Bool = false

  public init() {}

  public func validate() throws {
    guard self.days > 0 else {
      throw ValidationError("--days must be at least 1, not \(self.days).")
    }
    // The service name becomes a path, a DNS SAN and a SPIFFE path segment.
    guard (try? MeshServiceIdentity.dns(self.service)) != nil, !self.service.contains(".") else {
      throw ValidationError(
        "'\(self.service)' is not a service name: use letters, digits and inner '-' only."
      )
    }
  }

  public func run() throws {
    let directory = MeshCertificateDirectory(path: self.dir)
    let authority = try directory.loadAuthority()
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
