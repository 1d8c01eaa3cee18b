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
internal import MeshConsul
internal import MeshCore
internal import MeshIdentity
internal import MeshTransport

/// The probe timeouts `mesh status` and `mesh check` share.
public struct MeshProbeTimeouts: ParsableArguments {
  @Option(name: .long, help: "How long connecting to each instance may take (Go syntax).")
  var connectTimeout: String = "1s"

  @Option(name: .long, help: "How long each instance's health RPC may take (Go syntax).")
  var rpcTimeout: String = "1s"

  @Option(
    name: .long,
    help:
      "How long the whole command may take (Go syntax); each Consul request gets at most 5 s of it."
  )
  var timeout: String = "30s"

  public init() {}

  public func validate() throws {
    _ = try self.values()
    _ = try self.overall()
  }

  func values() throws -> (connect: Duration, rpc: Duration) {
    (
      try parseTimeout(self.connectTimeout, flag: "--connect-timeout"),
      try parseTimeout(self.rpcTimeout, flag: "--rpc-timeout")
    )
  }

  func overall() throws -> Duration {
    try parseTimeout(self.timeout, flag: "--timeout")
  }

  /// `MeshSurvey.take` within `--timeout`: past it, the survey keeps what it found and says
  /// which instances it could not probe.
  func survey(
    consul: MeshConsulOptions,
    only: [String],
    credentials: MeshCredentials?,
    serverPolicy: MeshIdentityPolicy,
    certificatesDirectory: String?,
    readMetrics: Bool,
    probeAll: Bool
  ) async throws -> MeshSurvey {
    var configuration = try consul.configuration()
    let overall = try self.overall()
    configuration.requestTimeout = min(.seconds(5), overall)
    return await MeshSurvey.take(
      consul: configuration,
      only: only,
      credentials: credentials,
      serverPolicy: serverPolicy,
      certificatesDirectory: certificatesDirectory,
      timeouts: try self.values(),
      readMetrics: readMetrics,
      probeAll: probeAll,
      deadline: ContinuousClock.now.advanced(by: overall),
      limitText: self.timeout
    )
  }
}

/// `mesh status`: the mesh as Consul and its instances see it.
public struct StatusCommand: AsyncParsableCommand, MeshReportingCommand {
  public static let configuration = CommandConfiguration(
    commandName: "status",
    abstract:
      "Show every service in Consul, its instances' checks and health, and the certificates.",
    discussion: """
      For each service Consul knows (or each --service): its instances, Consul's view of their \
      checks, each instance's own health (grpc.health.v1 Check, over mTLS with --certs) with the \
      identity and expiry of the certificate it presents; then the local certificates in --certs. \
      Exit status: 0 when Consul answered and every instance was probed, 2 when Consul could not \
      be reached or --timeout ran out first, 1 for bad arguments.

      Examples:
        mesh status
        mesh status --consul 127.0.0.1:8500 --certs certs --identity ops
        mesh status --json | jq '.services[].instances[] | {id, consul_status}'
      """
  )

  @OptionGroup var consul: MeshConsulOptions

  @Option(name: .long, parsing: .singleValue, help: "Only this service (repeatable).")
  var service: [String] = []

  @OptionGroup var tls: MeshTLSOptions

  @OptionGroup var timeouts: MeshProbeTimeouts

  @Flag(name: .long, help: "Print JSON instead of tables.")
  var json: Bool = false

  public init() {}

  public func validate() throws {
    if let service = self.service.first(where: { $0.isEmpty }) {
      throw ValidationError("--service must name a service, not \(MeshInput.quoted(service)).")
    }
  }

  public func execute(_ output: MeshCommandOutput) async throws -> Int32 {
    let survey = try await self.timeouts.survey(
      consul: self.consul,
      only: self.service,
      credentials: try await self.tls.load(),
      serverPolicy: try self.tls.serverPolicy(),
      certificatesDirectory: self.tls.certs,
      readMetrics: false,
      probeAll: true
    )
    if self.json {
      try output.json(survey)
    } else {
      Self.render(survey, output)
    }
    return survey.consulError == nil && !survey.timedOut ? 0 : 2
  }

  static func render(_ survey: MeshSurvey, _ output: MeshCommandOutput) {
    if let error = survey.consulError {
      output.line("Consul \(survey.consul): \(output.paint("unreachable", .red)): \(error)")
    } else {
      output.line("Consul \(survey.consul): \(output.paint("reachable", .green))")
      output.line()
      var rows: [[String]] = []
      for service in survey.services {
        if service.instances.isEmpty {
          rows.append([service.name, "-", "-", "no instances", "-", "-", "-"])
        }
        for instance in service.instances {
          let probe = instance.probe
          rows.append([
            service.name,
            instance.id,
            "\(instance.address):\(instance.port)",
            Self.checks(instance),
            probe?.status ?? (probe?.outcome.rawValue ?? "-"),
            probe?.serverIdentity ?? "-",
            probe?.serverCertificateExpiry.map(Self.expiry) ?? "-",
          ])
        }
      }
      if rows.isEmpty {
        output.line("No services registered.")
      } else {
        output.table(
          [
            "SERVICE", "INSTANCE", "ADDRESS", "CONSUL CHECKS", "HEALTH", "IDENTITY", "CERT EXPIRES",
          ],
          rows
        ) { _, column, cell in
          switch column {
          case 3: output.paint(cell, cell.hasPrefix("passing") ? .green : .red)
          case 4: output.paint(cell, cell.hasPrefix("SERVING") ? .green : .red)
          default: cell
          }
        }
      }
      for service in survey.services {
        for instance in service.instances {
          if let error = instance.probe?.error {
            output.line("  \(instance.id): \(error)")
          }
          for check in instance.checks where check.status != "passing" {
            output.line("  \(instance.id): check \(check.name) is \(check.status): \(check.output)")
          }
        }
      }
    }
    guard !survey.certificates.isEmpty else { return }
    output.line()
    output.line("Local certificates:")
    output.table(
      ["FILE", "IDENTITIES", "EXPIRES"],
      survey.certificates.map { certificate in
        [
          certificate.path,
          certificate.error ?? certificate.identities.joined(separator: ", "),
          certificate.notValidAfter.map(Self.expiry) ?? "-",
        ]
      }
    ) { _, column, cell in
      column == 2 && cell.contains("expired") ? output.paint(cell, .red) : cell
    }
  }

  /// Consul's aggregated status and the instance's check count: `passing (2/2)`.
  static func checks(_ instance: MeshSurvey.Instance) -> String {
    let passing = instance.checks.filter { $0.status == "passing" }.count
    return "\(instance.consulStatus) (\(passing)/\(instance.checks.count))"
  }

  /// `2027-01-02 (391 days)`, or `expired 2026-01-02`.
  static func expiry(_ date: Date) -> String {
    let day = date.formatted(.iso8601.year().month().day())
    let days = daysLeft(until: date)
    if date < Date() { return "expired \(day)" }
    return "\(day) (\(days) day\(days == 1 ? "" : "s"))"
  }
}
