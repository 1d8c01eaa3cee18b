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
internal import Logging
internal import MeshConsulAgent
internal import MeshCore
internal import MeshTransport
internal import ServiceLifecycle
internal import UnixSignals

/// `mesh agent --dev`: the embedded Consul-compatible agent, as `consul agent -dev`.
public struct AgentCommand: AsyncParsableCommand, MeshAsyncCommand {
  public static let configuration = CommandConfiguration(
    commandName: "agent",
    abstract: "Run an in-memory Consul-compatible agent (like 'consul agent -dev').",
    discussion: """
      Serves the Consul HTTP API subset the mesh uses — service registration, TTL checks, \
      health and catalog reads with blocking queries — and runs the registered gRPC health \
      checks itself. Everything is in memory and lost when it stops (Ctrl-C).

      Examples:
        mesh agent --dev
        mesh agent --dev --port 0
        mesh agent --dev --check-certificates certs --check-identity consul-agent
      """
  )

  @Flag(name: .long, help: "Development mode: in memory, single node (required).")
  var dev: Bool = false

  @Option(name: .long, help: "The HTTP port; 0 picks a free one.")
  var port: Int = 8500

  @Option(name: .long, help: "The address to listen on.")
  var bind: String = "127.0.0.1"

  @Option(name: .long, help: "The node name.")
  var node: String = "mesh-agent"

  @Option(name: .long, help: "The datacenter.")
  var datacenter: String = "dc1"

  @Option(
    name: .long,
    help:
      "A certificates folder (as 'mesh certs' makes it) for TLS gRPC checks; needs --check-identity."
  )
  var checkCertificates: String?

  @Option(name: .long, help: "The service whose certificate the agent presents to TLS gRPC checks.")
  var checkIdentity: String?

  public init() {}

  public func validate() throws {
    guard self.dev else {
      throw ValidationError("The embedded agent keeps everything in memory: run it with --dev.")
    }
    // Through MeshCore's checked conversion, as every number from outside (0: a free port).
    do {
      _ = try MeshInput.integer(self.port, field: "--port", in: 0...65_535)
    } catch {
      throw ValidationError("--port must be between 0 and 65535, not \(self.port).")
    }
    guard (self.checkCertificates == nil) == (self.checkIdentity == nil) else {
      throw ValidationError("--check-certificates and --check-identity go together.")
    }
  }

  public mutating func runAsync() async throws {
    try await self.run()
  }

  public func run() async throws {
    var logger = Logger(label: "mesh.agent")
    logger.logLevel = .info
    var credentials: MeshCredentials?
    if let directory = self.checkCertificates, let identity = self.checkIdentity {
      credentials = try await MeshCredentials(
        .directory(directory, service: identity),
        logger: logger
      )
    }
    let agent = MeshConsulAgent(
      configuration: MeshConsulAgentConfiguration(
        host: self.bind,
        port: self.port,
        nodeName: self.node,
        datacenter: self.datacenter,
        checkCredentials: credentials
      ),
      logger: logger
    )

    // Ctrl-C and SIGTERM shut the agent down gracefully, as every service of the package is run.
    let services = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: [.init(service: agent)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
      )
    )
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await services.run() }
      let port = try await agent.listeningPort
      print("==> Consul-compatible agent running (dev mode, in memory)")
      print(
        "    HTTP API: http://\(self.bind):\(port)  (export CONSUL_HTTP_ADDR=\(self.bind):\(port))"
      )
      print("    Node: \(self.node)  Datacenter: \(self.datacenter)")
      // A script reading a pipe must see the address now, not when the buffer fills.
      fflush(nil)
      try await group.waitForAll()
    }
    print("==> Agent stopped")
  }
}
