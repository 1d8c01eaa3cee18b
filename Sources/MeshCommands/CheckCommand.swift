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
internal import MeshCore
internal import MeshIdentity
internal import MeshTransport

/// `mesh check`: an end-to-end check of a running mesh, step by step.
public struct CheckCommand: AsyncParsableCommand, MeshReportingCommand {
  public static let configuration = CommandConfiguration(
    commandName: "check",
    abstract: "Check a running mesh end to end; exit 1 if any step fails.",
    discussion: """
      Each step is reported pass or fail with its reason: Consul is reachable; each service has \
      passing instances; an mTLS handshake with each passing instance presents the service's \
      identity (spiffe://<trust domain>/ns/<namespace>/svc/<service>, or its DNS name); its \
      health is SERVING; its admin endpoint (the mesh_admin_port it registered) serves metrics. \
      Without --certs the mTLS step is skipped and health is asked in plaintext. Exit status: 0 \
      when every step passed, 1 when one failed or the arguments are bad.

      Examples:
        mesh check
        mesh check --consul 127.0.0.1:8500 --certs certs --identity ops --service greeter
        mesh check --verbose --no-admin
        mesh check --json | jq '.steps[] | select(.passed == false)'
      """
  )

  @OptionGroup var consul: MeshConsulOptions

  @Option(
    name: .long,
    parsing: .singleValue,
    help: "A service to check (repeatable); default: every service Consul knows but consul."
  )
  var service: [String] = []

  @OptionGroup var tls: MeshTLSOptions

  @Option(
    name: .long,
    help:
      "The SPIFFE trust domain (default: $MESH_TRUST_DOMAIN, else --certs' own, else mesh.local)."
  )
  var trustDomain: String?

  @Option(name: .long, help: "The SPIFFE namespace (default: $MESH_NAMESPACE, else default).")
  var namespace: String?

  @OptionGroup var timeouts: MeshProbeTimeouts

  @Flag(name: .long, help: "Do not require an admin endpoint with metrics.")
  var noAdmin: Bool = false

  @Flag(name: .long, help: "Print each step's details (checks, identities, timings).")
  var verbose: Bool = false

  @Flag(name: .long, help: "Print the steps as JSON.")
  var json: Bool = false

  public init() {}

  public func validate() throws {
    if let service = self.service.first(where: { $0.isEmpty }) {
      throw ValidationError("--service must name a service, not \(MeshInput.quoted(service)).")
    }
    guard self.tls.serverName == nil else {
      throw ValidationError(
        "mesh check expects each service's own identity; --server-name is for mesh health and status."
      )
    }
    // The identity each service must present is made of these: check them before Consul is asked.
    let (trustDomain, namespace) = self.identityParts(
      environment: ProcessInfo.processInfo.environment,
      credentials: nil
    )
    for name in self.service.isEmpty ? ["service"] : self.service {
      try Self.validateIdentity(of: name, trustDomain: trustDomain, namespace: namespace)
    }
  }

  /// The trust domain and namespace of the identities to expect.
  func identityParts(
    environment: [String: String],
    credentials: MeshCredentials?
  ) -> (trustDomain: String, namespace: String) {
    (
      self.trustDomain ?? environment["MESH_TRUST_DOMAIN"]
        ?? credentials?.identities.compactMap(\.trustDomain).first ?? "mesh.local",
      self.namespace ?? environment["MESH_NAMESPACE"] ?? "default"
    )
  }

  /// One step's result: passed, failed, or skipped (nil).
  struct Step: Sendable, Encodable {
    var name: String
    var passed: Bool?
    var reason: String
    var details: [String]
  }

  struct Report: Sendable, Encodable {
    var consul: String
    var steps: [Step]
    var passed: Int
    var failed: Int
    var skipped: Int
  }

  public func execute(_ output: MeshCommandOutput) async throws -> Int32 {
    let credentials = try await self.tls.load()
    let (trustDomain, namespace) = self.identityParts(
      environment: ProcessInfo.processInfo.environment,
      credentials: credentials
    )
    // Any identity the CA signed completes the handshake; the mTLS step then judges it. Only
    // the instances whose checks pass are probed: the others fail the step before.
    let survey = try await self.timeouts.survey(
      consul: self.consul,
      only: self.service,
      credentials: credentials,
      serverPolicy: .anyIdentity,
      certificatesDirectory: nil,
      readMetrics: !self.noAdmin,
      probeAll: false
    )
    let steps = self.steps(
      survey,
      tls: credentials != nil,
      trustDomain: trustDomain,
      namespace: namespace
    )
    let report = Report(
      consul: survey.consul,
      steps: steps,
      passed: steps.filter { $0.passed == true }.count,
      failed: steps.filter { $0.passed == false }.count,
      skipped: steps.filter { $0.passed == nil }.count
    )
    if self.json {
      try output.json(report)
    } else {
      for step in steps {
        let mark: String
        switch step.passed {
        case true: mark = output.paint("PASS", .green)
        case false: mark = output.paint("FAIL", .red)
        case nil: mark = output.paint("SKIP", .yellow)
        }
        output.line("\(mark)  \(step.name): \(step.reason)")
        if self.verbose {
          for detail in step.details { output.line("      \(detail)") }
        }
      }
      let summary = "\(report.passed) passed, \(report.failed) failed, \(report.skipped) skipped"
      output.line(
        report.failed == 0
          ? output.paint("mesh check: \(summary)", .green)
          : output.paint("mesh check: \(summary)", .red)
      )
    }
    return report.failed == 0 ? 0 : 1
  }

  /// The identities a service's instances may present.
  static func validateIdentity(
    of service: String,
    trustDomain: String,
    namespace: String
  ) throws {
    do {
      _ = try MeshServiceIdentity.spiffe(
        trustDomain: trustDomain,
        namespace: namespace,
        service: service
      )
    } catch {
      throw ValidationError(
        "spiffe://\(trustDomain)/ns/\(namespace)/svc/\(service) (from --trust-domain, --namespace and the service) is not an identity: \(error.message)"
      )
    }
  }

  private func steps(
    _ survey: MeshSurvey,
    tls: Bool,
    trustDomain: String,
    namespace: String
  ) -> [Step] {
    var steps: [Step] = []
    if let error = survey.consulError {
      steps.append(
        Step(name: "consul", passed: false, reason: "\(survey.consul): \(error)", details: [])
      )
      return steps
    }
    steps.append(
      Step(
        name: "consul",
        passed: true,
        reason: "\(survey.consul) answered; \(survey.services.count) service(s) to check",
        details: survey.services.map(\.name)
      )
    )
    if survey.services.isEmpty {
      steps.append(
        Step(
          name: "services",
          passed: false,
          reason: "Consul has no services to check",
          details: []
        )
      )
    }
    for service in survey.services {
      let passing = service.instances.filter { $0.consulStatus == "passing" }
      steps.append(
        Step(
          name: "\(service.name): passing instances",
          passed: !passing.isEmpty,
          reason: passing.isEmpty
            ? "none of \(service.instances.count) instance(s) passes its checks"
            : "\(passing.count) of \(service.instances.count) pass their checks",
          details: service.instances.flatMap { instance in
            ["\(instance.id) \(instance.address):\(instance.port): \(instance.consulStatus)"]
              + instance.checks.map { "  check \($0.name): \($0.status) \($0.output)" }
          }
        )
      )
      for instance in passing {
        steps.append(
          contentsOf: self.instanceSteps(
            service.name,
            instance,
            tls: tls,
            trustDomain: trustDomain,
            namespace: namespace
          )
        )
      }
    }
    return steps
  }

  private func instanceSteps(
    _ service: String,
    _ instance: MeshSurvey.Instance,
    tls: Bool,
    trustDomain: String,
    namespace: String
  ) -> [Step] {
    let name = "\(instance.id) (\(instance.address):\(instance.port))"
    var steps: [Step] = []
    let probe = instance.probe
    let timing = probe.map { [String(format: "%.1f ms", $0.elapsedMilliseconds)] } ?? []
    if !tls {
      steps.append(
        Step(name: "\(name): mTLS", passed: nil, reason: "no --certs given", details: [])
      )
    } else if let presented = probe?.serverIdentities {
      let spiffe = "spiffe://\(trustDomain)/ns/\(namespace)/svc/\(service)"
      let spiffeIDs = presented.filter { $0.hasPrefix("spiffe://") }
      // A certificate with a SPIFFE ID must carry the service's; one without (the Python mesh's
      // DNS-only certificates) must name the service in a DNS SAN.
      let matches =
        spiffeIDs.isEmpty ? presented.contains("dns:\(service)") : spiffeIDs.contains(spiffe)
      let expiry =
        probe?.serverCertificateExpiry.map { ["certificate expires \(StatusCommand.expiry($0))"] }
        ?? []
      steps.append(
        Step(
          name: "\(name): mTLS",
          passed: matches,
          reason: matches
            ? "presents \(spiffeIDs.isEmpty ? "dns:\(service)" : spiffe)"
            : "presents \(presented.joined(separator: ", ")), not \(spiffeIDs.isEmpty ? "dns:\(service)" : spiffe)",
          details: expiry
        )
      )
    } else {
      steps.append(
        Step(
          name: "\(name): mTLS",
          passed: false,
          reason: probe?.error ?? "no handshake",
          details: []
        )
      )
    }
    if let probe, probe.outcome == .serving {
      steps.append(Step(name: "\(name): health", passed: true, reason: "SERVING", details: timing))
    } else {
      steps.append(
        Step(
          name: "\(name): health",
          passed: false,
          reason: probe?.status.map { "answered \($0)" } ?? probe?.error ?? "not probed",
          details: timing
        )
      )
    }
    if self.noAdmin { return steps }
    guard let port = instance.adminPort else {
      steps.append(
        Step(
          name: "\(name): admin",
          passed: false,
          reason:
            "it registered no mesh_admin_port (run its MeshServer with an admin endpoint, or pass --no-admin)",
          details: []
        )
      )
      return steps
    }
    if let metrics = instance.metrics, let samples = metrics.grpcSamples, samples > 0 {
      steps.append(
        Step(
          name: "\(name): admin",
          passed: true,
          reason: "\(metrics.url) has \(samples) grpc_ samples",
          details: []
        )
      )
    } else {
      let metrics = instance.metrics
      steps.append(
        Step(
          name: "\(name): admin",
          passed: false,
          reason: metrics?.error.map { "\(metrics?.url ?? "port \(port)"): \($0)" }
            ?? "\(metrics?.url ?? "port \(port)") has no grpc_ metrics",
          details: []
        )
      )
    }
    return steps
  }
}
