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
internal import MeshAdmin
internal import MeshConfiguration
internal import MeshCore
internal import MeshServer
internal import MeshTransport

/// `--timeout` and the admin endpoint's address, for the commands that read one.
public struct MeshAdminAddress: ParsableArguments {
  @Argument(help: "The admin endpoint: host:port or an http(s) URL (MESH_ADMIN_ADDRESS's address).")
  var admin: String

  @Option(name: .long, help: "How long the request may take (Go syntax).")
  var timeout: String = "5s"

  public init() {}

  public func validate() throws {
    _ = try parseHTTPBase(self.admin, what: "the admin endpoint")
    _ = try parseTimeout(self.timeout, flag: "--timeout")
  }

  /// GETs `path`; anything but 200 is exit status 2, as a failed connection is.
  func get(_ path: String) async throws -> String {
    let url = try parseHTTPBase(self.admin, what: "the admin endpoint").absoluteString + path
    let status: Int
    let body: String
    do {
      (status, body) = try await httpGet(
        url,
        timeout: try parseTimeout(self.timeout, flag: "--timeout")
      )
    } catch {
      throw MeshCommandFailure(exitCode: 2, "cannot read \(url): \(MeshSurvey.describe(error))")
    }
    guard status == 200 else {
      throw MeshCommandFailure(exitCode: 2, "\(url) answered HTTP \(status): \(body.prefix(200))")
    }
    return body
  }
}

/// `mesh clusters ADMIN`: a process's targets and endpoints, from its admin endpoint.
public struct ClustersCommand: AsyncParsableCommand, MeshReportingCommand {
  public static let configuration = CommandConfiguration(
    commandName: "clusters",
    abstract: "Show a mesh process's targets and endpoints (its admin endpoint's /clusters).",
    discussion: """
      What Envoy's `curl :9901/clusters` showed: for each service the process calls, every \
      endpoint's address, state (ready, connecting, failing, not_serving, ejected, half_open), \
      connections, RPCs in flight and last ejection or error. Exit status: 0, 1 for bad \
      arguments, 2 when the endpoint cannot be read.

      Examples:
        mesh clusters 127.0.0.1:9901
        mesh clusters http://10.0.0.7:9901 --json
      """
  )

  @OptionGroup var address: MeshAdminAddress

  @Flag(name: .long, help: "Print the endpoint's JSON as it is.")
  var json: Bool = false

  public init() {}

  public func execute(_ output: MeshCommandOutput) async throws -> Int32 {
    let body = try await self.address.get("/clusters")
    let clusters: [MeshAdminCluster]
    do {
      clusters = try JSONDecoder().decode([MeshAdminCluster].self, from: Data(body.utf8))
    } catch {
      throw MeshCommandFailure(exitCode: 2, "/clusters is not the admin endpoint's JSON: \(error)")
    }
    if self.json {
      try output.json(clusters)
      return 0
    }
    if clusters.isEmpty {
      output.line("No targets: the process has called no service yet (or runs no mesh client).")
    }
    for cluster in clusters.sorted(by: { $0.target < $1.target }) {
      var summary =
        "\(cluster.target): \(cluster.known) known, \(cluster.pickable) pickable, \(cluster.ejected) ejected, "
        + "\(cluster.connections) connections, \(cluster.pending) pending"
      if cluster.draining { summary += ", draining" }
      output.line(summary)
      if let error = cluster.discoveryError {
        output.line("  discovery: \(output.paint(error, .red))")
      }
      let rejected = cluster.breakerRejections.filter { $0.value > 0 }
      if !rejected.isEmpty {
        output.line(
          "  breaker rejections: "
            + rejected.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
              separator: " "
            )
        )
      }
      let rows = cluster.endpoints.sorted { $0.id < $1.id }.map { endpoint in
        [
          endpoint.id,
          endpoint.address,
          endpoint.state.rawValue,
          endpoint.health,
          "\(endpoint.weight)",
          "\(endpoint.connections)",
          "\(endpoint.inFlight)",
          endpoint.ejectedForSeconds.map { String(format: "ejected %.0fs more", $0) }
            ?? endpoint.lastError ?? endpoint.lastEjectionReason.map { "last ejected: \($0)" }
            ?? "",
        ]
      }
      output.table(
        ["  ENDPOINT", "ADDRESS", "STATE", "HEALTH", "WEIGHT", "CONNS", "IN FLIGHT", "NOTE"],
        rows.map { ["  " + $0[0]] + $0.dropFirst() }
      ) { _, column, cell in
        guard column == 2 else { return cell }
        return output.paint(
          cell,
          cell.hasPrefix("ready") ? .green : cell.hasPrefix("connecting") ? .yellow : .red
        )
      }
    }
    return 0
  }
}

/// `mesh config`: a process's effective configuration, and checking a configuration file.
public struct ConfigCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "config",
    abstract: "Show a process's configuration, or check a configuration file.",
    subcommands: [ConfigDumpCommand.self, ConfigValidateCommand.self]
  )

  public init() {}
}

/// `mesh config dump ADMIN`.
public struct ConfigDumpCommand: AsyncParsableCommand, MeshReportingCommand {
  public static let configuration = CommandConfiguration(
    commandName: "dump",
    abstract: "Print a mesh process's effective configuration (its admin endpoint's /config_dump).",
    discussion: """
      JSON, secrets redacted by the process. Exit status: 0, 1 for bad arguments, 2 when the \
      endpoint cannot be read.

      Examples:
        mesh config dump 127.0.0.1:9901
        mesh config dump http://10.0.0.7:9901 --timeout 2s | jq .client.targets
      """
  )

  @OptionGroup var address: MeshAdminAddress

  public init() {}

  public func execute(_ output: MeshCommandOutput) async throws -> Int32 {
    let body = try await self.address.get("/config_dump")
    guard (try? JSONSerialization.jsonObject(with: Data(body.utf8))) != nil else {
      throw MeshCommandFailure(exitCode: 2, "/config_dump is not JSON: \(body.prefix(200))")
    }
    output.line(body.hasSuffix("\n") ? String(body.dropLast()) : body)
    return 0
  }
}

/// `mesh config validate FILE`.
public struct ConfigValidateCommand: AsyncParsableCommand, MeshReportingCommand {
  public static let configuration = CommandConfiguration(
    commandName: "validate",
    abstract:
      "Check a mesh configuration file (MESH_CONFIG_FILE) as a client and a server read it.",
    discussion: """
      Reports the first error as a client or server would, naming the file and the field \
      (such as services.orders.retry_policy.num_retries). `.json` files are JSON, others YAML. \
      Exit status: 0 when valid, 1 when not (or for bad arguments).

      Examples:
        mesh config validate Examples/mesh.yaml
        mesh config validate mesh.json --json
      """
  )

  @Argument(help: "The configuration file.")
  var file: String

  @Flag(name: .long, help: "Print the result as JSON.")
  var json: Bool = false

  public init() {}

  struct Result: Encodable {
    var file: String
    var valid: Bool
    var error: String?
    var field: String?
    var services: [String]
    var server: Bool
  }

  public func execute(_ output: MeshCommandOutput) async throws -> Int32 {
    var result = Result(file: self.file, valid: true, services: [], server: false)
    do {
      let parsed = try MeshConfigurationFile.load(path: self.file)
      result.services = parsed.services.keys.sorted()
      if let server = parsed.server {
        result.server = true
        // The server's own checks (durations, ports, policies) beyond the file's shape.
        var configuration = MeshServerConfiguration(serviceName: server.serviceName ?? "validate")
        try configuration.apply(server, file: self.file)
      }
    } catch {
      result.valid = false
      result.error = error.description
      result.field = error.field.isEmpty ? nil : error.field
    }
    if self.json {
      try output.json(result)
    } else if let error = result.error {
      FileHandle.standardError.write(Data("mesh config validate: \(error)\n".utf8))
    } else {
      let services =
        result.services.isEmpty ? "defaults only" : result.services.joined(separator: ", ")
      output.line(
        "\(self.file): \(output.paint("valid", .green)) (services: \(services); server section: \(result.server ? "yes" : "no"))"
      )
    }
    return result.valid ? 0 : 1
  }
}
