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
import GRPCCore
import MeshAdmin
import MeshCertificates
import MeshClient
import MeshCommands
import MeshConsul
import MeshConsulAgent
import MeshCore
import MeshDiscovery
import MeshHealth
import MeshProto
import MeshServer
import MeshTransport
import NIOCore
import NIOPosix
import Synchronization
import Testing
import X509

/// What a command wrote, and its exit status.
struct CommandRun {
  var status: Int32
  var output: String

  func json() throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(self.output.utf8)) as? [String: Any])
  }
}

/// Runs `mesh <arguments>` in process: a bad flag throws as ArgumentParser does, a command's
/// failure (`MeshCommandFailure`) is its exit status.
func mesh(_ arguments: String...) async throws -> CommandRun {
  try await mesh(arguments)
}

func mesh(_ arguments: [String]) async throws -> CommandRun {
  let command = try MeshCommand.parseAsRoot(arguments)
  let reporting = try #require(command as? any MeshReportingCommand, "\(arguments)")
  let text = Mutex("")
  let output = MeshCommandOutput { line in text.withLock { $0 += line } }
  do {
    let status = try await reporting.execute(output)
    return CommandRun(status: status, output: text.withLock { $0 })
  } catch let failure as MeshCommandFailure {
    return CommandRun(status: failure.exitCode, output: failure.message)
  }
}

/// A mesh CA and certificates for `echo`, `probe` and `consul-agent`, in a temporary folder.
func makeCertificates() throws -> MeshCertificateDirectory {
  let directory = MeshCertificateDirectory(
    path: FileManager.default.temporaryDirectory
      .appendingPathComponent("mesh-operator-\(UUID().uuidString)").path
  )
  let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
  try directory.write(authority)
  for service in ["echo", "probe", "consul-agent"] {
    try directory.write(try authority.issue(service: service, ipAddresses: ["127.0.0.1"]))
  }
  return directory
}

/// An mTLS MeshServer of `echo` (health only) with an admin endpoint, registered with `consul`
/// (when given) with a 100 ms gRPC check.
func echoServer(
  _ directory: MeshCertificateDirectory,
  consul: URL? = nil,
  id: String = "echo-0",
  admin: Bool = true
) -> MeshServerConfiguration {
  var configuration = MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0)
  configuration.tls = .init(credentials: .directory(directory.path, service: "echo"))
  configuration.drain = .init(delay: .zero, gracePeriod: .seconds(5))
  if admin { configuration.admin = MeshAdminConfiguration(port: 0) }
  if let consul {
    configuration.registration = .init(
      consul: ConsulClientConfiguration(address: consul),
      id: id,
      checkInterval: .milliseconds(100)
    )
  }
  return configuration
}

/// The embedded agent, checking mTLS instances with the `consul-agent` certificate.
func withCheckingAgent(
  _ directory: MeshCertificateDirectory,
  _ body: (URL, ConsulClient) async throws -> Void
) async throws {
  let credentials = try await MeshCredentials(.directory(directory.path, service: "consul-agent"))
  let agent = MeshConsulAgent(
    configuration: MeshConsulAgentConfiguration(port: 0, checkCredentials: credentials)
  )
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await agent.run() }
    defer { agent.beginGracefulShutdown() }
    let port = try await agent.listeningPort
    let url = try #require(URL(string: "http://127.0.0.1:\(port)"))
    let consul = try ConsulClient(ConsulClientConfiguration(address: url))
    try await body(url, consul)
  }
}

/// Waits (blocking queries, no sleeps) until `count` instances of `service` pass their checks.
func waitUntilPassing(_ consul: ConsulClient, _ service: String, count: Int) async throws {
  var response = try await consul.healthService(service)
  while response.value.count != count {
    response = try await consul.healthService(
      service,
      index: response.index,
      wait: .seconds(10)
    )
  }
}

/// A port nothing listens on: bound, then closed.
func closedPort() async throws -> Int {
  let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    .bind(host: "127.0.0.1", port: 0).get()
  let port = try #require(channel.localAddress?.port)
  try await channel.close()
  return port
}

@Suite("mesh health", .timeLimit(.minutes(2)))
struct MeshHealthCommandTests {
  @Test("Exit statuses 0, 2, 3 and 4, over mTLS and in plaintext; JSON; the server's identity")
  func exitStatuses() async throws {
    let directory = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    try await withMeshServer(echoServer(directory, admin: false), services: []) { server in
      let address = "127.0.0.1:\(try await server.listeningPort)"
      // Generous limits: the suite runs in parallel on two loaded cores.
      let tls = [
        "--certs", directory.path, "--identity", "probe", "--connect-timeout", "20s",
        "--rpc-timeout",
        "20s",
      ]

      var run = try await mesh(["health", address] + tls)
      #expect(run.status == 0)
      #expect(run.output == "status: SERVING\n")

      run = try await mesh(["health", address, "--json"] + tls)
      #expect(run.status == 0)
      let json = try run.json()
      #expect(json["outcome"] as? String == "serving")
      #expect(json["status"] as? String == "SERVING")
      #expect(json["server_identity"] as? String == "spiffe://mesh.local/ns/default/svc/echo")
      #expect(json["server_certificate_expiry"] is String)

      // The server presents echo's identity, not billing's: refused in the handshake (2).
      run = try await mesh(
        [
          "health", address, "--server-name", "spiffe://mesh.local/ns/default/svc/billing",
          "--json",
        ]
          + tls
      )
      #expect(run.status == 2)
      #expect((try run.json()["error"] as? String ?? "").contains("certificate was refused"))
      run = try await mesh(
        ["health", address, "--server-name", "spiffe://mesh.local/ns/default/svc/echo"] + tls
      )
      #expect(run.status == 0)

      // An unknown service: the RPC fails (NOT_FOUND), 3.
      run = try await mesh(["health", address, "--service", "no.Such", "--json"] + tls)
      #expect(run.status == 3)
      #expect((try run.json()["error"] as? String ?? "").contains("notFound"))

      // Plaintext to an mTLS server: no HTTP/2 connection (2), as grpc_health_probe's blocking
      // dial reports it.
      run = try await mesh("health", address, "--connect-timeout", "20s", "--json")
      #expect(run.status == 2)
      let plaintextError = try run.json()["error"] as? String ?? ""
      #expect(
        plaintextError.contains("closed the connection") || plaintextError.contains("failed"),
        "\(plaintextError)"
      )

      // A client certificate from another CA, trusting both CAs: the client accepts the server,
      // the server refuses the client in the handshake (2).
      let stranger = try makeCertificates()
      defer { try? FileManager.default.removeItem(atPath: stranger.path) }
      let bundle = "\(stranger.path)/both-cas.crt"
      let cas =
        try String(contentsOfFile: "\(directory.path)/ca.crt", encoding: .utf8)
        + String(contentsOfFile: "\(stranger.path)/ca.crt", encoding: .utf8)
      try cas.write(toFile: bundle, atomically: true, encoding: .utf8)
      run = try await mesh(
        "health",
        address,
        "--ca",
        bundle,
        "--cert",
        stranger.certificatePath(service: "probe"),
        "--key",
        stranger.keyPath(service: "probe"),
        "--connect-timeout",
        "20s",
        "--json"
      )
      #expect(run.status == 2)
      let refused = try run.json()
      #expect(refused["outcome"] as? String == "connection_failed")
      #expect(refused["server_identity"] as? String == "spiffe://mesh.local/ns/default/svc/echo")
      #expect(!(refused["error"] as? String ?? "").contains("certificate was refused"))

      server.health.setNotServing()
      run = try await mesh(["health", address] + tls)
      #expect(run.status == 4)
      #expect(run.output == "status: NOT_SERVING\n")
    }

    // Nothing listening: 2, at once.
    let port = try await closedPort()
    let start = ContinuousClock.now
    let run = try await mesh("health", "127.0.0.1:\(port)", "--json", "--connect-timeout", "20s")
    #expect(start.duration(to: .now) < .seconds(10))
    #expect(run.status == 2)
    #expect(try run.json()["outcome"] as? String == "connection_failed")
  }

  @Test(
    "A server that accepts but never speaks HTTP/2: no connection (2) within the connect timeout"
  )
  func silentServer() async throws {
    // Accepts the TCP connection and reads nothing: no SETTINGS, no response.
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .childChannelInitializer { channel in channel.eventLoop.makeSucceededVoidFuture() }
      .bind(host: "127.0.0.1", port: 0).get()
    defer { channel.close(promise: nil) }
    let port = try #require(channel.localAddress?.port)
    let start = ContinuousClock.now
    let run = try await mesh(
      "health",
      "127.0.0.1:\(port)",
      "--connect-timeout",
      "500ms",
      "--rpc-timeout",
      "500ms",
      "--json"
    )
    #expect(run.status == 2)
    #expect(try run.json()["outcome"] as? String == "connection_failed")
    // The probe's own limit holds, whatever NIO waits for.
    #expect(start.duration(to: .now) < .seconds(10))
  }

  @Test("--watch prints each status the server sends")
  func watch() async throws {
    let directory = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    try await withMeshServer(echoServer(directory, admin: false), services: []) { server in
      let address = "127.0.0.1:\(try await server.listeningPort)"
      // Generous limits: the suite runs in parallel on two loaded cores.
      let arguments = [
        "health", address, "--watch", "--certs", directory.path, "--identity", "probe",
        "--connect-timeout", "20s", "--rpc-timeout", "20s",
      ]
      let (lines, continuation) = AsyncStream.makeStream(of: String.self)
      let output = MeshCommandOutput { continuation.yield($0) }
      try await withThrowingTaskGroup(of: Int32.self) { group throws -> Void in
        group.addTask {
          // However the command ends, the lines end: no wait below outlives it.
          defer { continuation.finish() }
          let command = try MeshCommand.parseAsRoot(arguments)
          let reporting = try #require(command as? any MeshReportingCommand)
          return try await reporting.execute(output)
        }
        var iterator = lines.makeAsyncIterator()
        #expect(await iterator.next()?.hasSuffix("status: SERVING\n") == true)
        server.health.setNotServing()
        #expect(await iterator.next()?.hasSuffix("status: NOT_SERVING\n") == true)
        // The server stops: the stream ends, exit 3.
        server.beginGracefulShutdown()
        let status = try await group.next()
        #expect(status == 3)
      }
    }
  }

  @Test(
    "Bad arguments are ArgumentParser's errors (the mesh executable exits 1 for them)",
    arguments: [
      ["health"], ["health", "nohost"], ["health", "127.0.0.1:99999"], ["health", "bad host:80"],
      ["health", "127.0.0.1:80", "--rpc-timeout", "-1s"],
      ["health", "127.0.0.1:80", "--connect-timeout", "2h"],
      ["health", "127.0.0.1:80", "--certs", "c", "--ca", "ca.crt"],
      ["health", "127.0.0.1:80", "--ca", "ca.crt"],
      ["health", "127.0.0.1:80", "--server-name", "echo"],
      ["health", "127.0.0.1:80", "--certs", "c", "--identity", "x", "--server-name", "spiffe://"],
      ["status", "--consul", "ftp://127.0.0.1:8500"], ["status", "--consul", "127.0.0.1:70000"],
      ["check", "--service", ""], ["clusters", "127.0.0.1:9901/clusters"],
      ["config", "dump"], ["certs", "rotate", "Not_A_Service"],
      ["certs", "rotate", "x", "--days", "0"], ["status", "--service", ""],
      ["status", "--timeout", "0s"],
      ["check", "--server-name", "spiffe://mesh.local/ns/default/svc/echo"],
      ["check", "--trust-domain", "Not A Domain"], ["check", "--namespace", "a b"],
    ]
  )
  func badArguments(_ arguments: [String]) async throws {
    let error = #expect(throws: (any Error).self) { _ = try MeshCommand.parseAsRoot(arguments) }
    if let error {
      #expect(MeshCommand.exitCode(for: error) == .validationFailure, "\(error)")
      #expect(!MeshCommand.message(for: error).isEmpty)
    }
  }
}

@Suite("mesh status and mesh check", .timeLimit(.minutes(2)))
struct MeshStatusCheckTests {
  @Test("Against the embedded agent and two mTLS instances with admin endpoints")
  func statusAndCheck() async throws {
    let directory = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    try await withCheckingAgent(directory) { consulURL, consul in
      let agent = consulURL.absoluteString
      try await withMeshServer(echoServer(directory, consul: consulURL), services: []) { first in
        try await withMeshServer(
          echoServer(directory, consul: consulURL, id: "echo-1", admin: false),
          services: []
        ) { second in
          try await waitUntilPassing(consul, "echo", count: 2)
          // Generous limits: the suite runs in parallel on two loaded cores.
          let tls = [
            "--certs", directory.path, "--identity", "probe", "--connect-timeout", "20s",
            "--rpc-timeout",
            "20s",
          ]

          var run = try await mesh(["status", "--consul", agent, "--json"] + tls)
          #expect(run.status == 0)
          let status = try run.json()
          #expect(status["consul_error"] == nil)
          let services = try #require(status["services"] as? [[String: Any]])
          #expect(services.map { $0["name"] as? String } == ["echo"])
          let instances = try #require(services.first?["instances"] as? [[String: Any]])
          #expect(instances.map { $0["id"] as? String } == ["echo-0", "echo-1"])
          for instance in instances {
            #expect(instance["consul_status"] as? String == "passing")
            let probe = try #require(instance["probe"] as? [String: Any])
            #expect(probe["status"] as? String == "SERVING")
            #expect(
              probe["server_identity"] as? String == "spiffe://mesh.local/ns/default/svc/echo"
            )
          }
          let certificates = try #require(status["certificates"] as? [[String: Any]])
          #expect(certificates.count == 4)  // the CA and three services
          #expect(certificates.allSatisfy { ($0["days_left"] as? Int ?? 0) >= 364 })

          run = try await mesh(["status", "--consul", agent] + tls)
          #expect(run.status == 0)
          #expect(run.output.contains("reachable"))
          #expect(run.output.contains("echo-0"))
          #expect(run.output.contains("SERVING"))
          #expect(!run.output.contains("\u{1B}["), "no colour off a terminal")

          // Every step passes but echo-1's admin endpoint: it runs none.
          run = try await mesh(["check", "--consul", agent, "--verbose"] + tls)
          #expect(run.status == 1, "\(run.output)")
          #expect(run.output.contains("PASS  consul"))
          #expect(run.output.contains("PASS  echo: passing instances: 2 of 2"))
          #expect(run.output.contains("presents spiffe://mesh.local/ns/default/svc/echo"))
          #expect(run.output.contains("FAIL  echo-1 (127.0.0.1:"))
          #expect(run.output.contains("registered no mesh_admin_port"))
          #expect(run.output.contains("grpc_ samples"), "echo-0's metrics: \(run.output)")

          run = try await mesh(["check", "--consul", agent, "--no-admin", "--json"] + tls)
          #expect(run.status == 0, "\(run.output)")
          let report = try run.json()
          #expect(report["failed"] as? Int == 0)
          #expect((report["passed"] as? Int ?? 0) == 6)  // consul, instances, 2 × (mTLS, health)

          // The wrong trust domain: the handshake step fails for both instances.
          run = try await mesh(
            ["check", "--consul", agent, "--no-admin", "--trust-domain", "other.example"] + tls
          )
          #expect(run.status == 1)
          #expect(run.output.components(separatedBy: "FAIL").count - 1 == 2, "\(run.output)")
          #expect(run.output.contains("not spiffe://other.example/ns/default/svc/echo"))

          // A service with no instances fails; so does plaintext health against mTLS servers.
          run = try await mesh("check", "--consul", agent, "--service", "missing", "--no-admin")
          #expect(run.status == 1)
          #expect(run.output.contains("FAIL  missing: passing instances: none of 0"))
          run = try await mesh("check", "--consul", agent, "--no-admin")
          #expect(run.status == 1)
          #expect(run.output.contains("SKIP  echo-0"))

          _ = second
          _ = first
        }
      }
    }
  }

  @Test("--timeout bounds the whole command: what was found is kept, the rest is 'not probed'")
  func overallTimeout() async throws {
    // An instance that accepts connections and never speaks: its probe waits out its connect
    // timeout (20 s here), far past the command's --timeout.
    let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .childChannelInitializer { channel in channel.eventLoop.makeSucceededVoidFuture() }
      .bind(host: "127.0.0.1", port: 0).get()
    defer { silent.close(promise: nil) }
    let port = try #require(silent.localAddress?.port)
    let directory = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    try await withCheckingAgent(directory) { consulURL, consul in
      try await consul.register(
        ConsulServiceRegistration(id: "silent-0", name: "silent", address: "127.0.0.1", port: port)
      )
      let start = ContinuousClock.now
      let run = try await mesh(
        "status",
        "--consul",
        consulURL.absoluteString,
        // Long enough for Consul's answer on a loaded machine (a busy CI run took over 1 s),
        // far short of the probe's 20 s.
        "--timeout",
        "5s",
        "--connect-timeout",
        "20s",
        "--json"
      )
      #expect(start.duration(to: .now) < .seconds(15))
      #expect(run.status == 2)
      let status = try run.json()
      #expect(status["timed_out"] as? Bool == true)
      #expect(status["consul_error"] == nil)
      let services = try #require(status["services"] as? [[String: Any]])
      let instance = try #require((services.first?["instances"] as? [[String: Any]])?.first)
      #expect(instance["id"] as? String == "silent-0")
      let probe = try #require(instance["probe"] as? [String: Any])
      #expect((probe["error"] as? String ?? "").contains("not probed: --timeout 5s ran out first"))
    }
  }

  @Test("Consul unreachable: status exits 2, check 1, each saying why")
  func consulUnreachable() async throws {
    let port = try await closedPort()
    var run = try await mesh("status", "--consul", "127.0.0.1:\(port)", "--json")
    #expect(run.status == 2)
    #expect(try run.json()["consul_error"] is String)
    run = try await mesh("check", "--consul", "127.0.0.1:\(port)")
    #expect(run.status == 1)
    #expect(run.output.contains("FAIL  consul"))
  }
}

@Suite("mesh clusters, config and certs", .timeLimit(.minutes(2)))
struct MeshAdminCommandTests {
  @Test("clusters and config dump read a client's admin endpoint")
  func clustersAndConfig() async throws {
    let directory = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    try await withMeshServer(echoServer(directory, admin: false), services: []) { server in
      let port = try await server.listeningPort
      var configuration = MeshClientConfiguration(
        serviceName: "probe",
        discovery: MeshStaticDiscovery(
          ["echo": [MeshEndpoint(id: "echo-0", host: "127.0.0.1", port: port)]]
        ),
        tls: .init(credentials: .directory(directory.path, service: "probe"))
      )
      configuration.admin = MeshAdminConfiguration(port: 0)
      try await withMeshClient(configuration) { client in
        let health = Grpc_Health_V1_Health.Client(wrapping: try client.client(for: "echo"))
        _ = try await health.check(.init())
        let admin = try #require(client.admin)
        let address = "127.0.0.1:\(try await admin.listeningPort)"

        var run = try await mesh("clusters", address)
        #expect(run.status == 0)
        #expect(run.output.contains("echo: 1 known, 1 pickable"), "\(run.output)")
        #expect(run.output.contains("echo-0"))
        #expect(run.output.contains("127.0.0.1:\(port)"))
        #expect(run.output.contains("ready"))

        run = try await mesh("clusters", "http://\(address)", "--json")
        #expect(run.status == 0)
        let clusters = try #require(
          try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [[String: Any]]
        )
        #expect(clusters.first?["target"] as? String == "echo")

        run = try await mesh("config", "dump", address)
        #expect(run.status == 0)
        let dump = try run.json()
        #expect(dump["client"] != nil)
      }
    }
    let port = try await closedPort()
    let run = try await mesh("clusters", "127.0.0.1:\(port)")
    #expect(run.status == 2)
    #expect(run.output.contains("cannot read http://127.0.0.1:\(port)/clusters"))
  }

  @Test("config validate: valid, a bad field named, an unreadable file")
  func configValidate() async throws {
    let folder = FileManager.default.temporaryDirectory
      .appendingPathComponent("mesh-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let good = folder.appendingPathComponent("good.yaml").path
    try """
    defaults:
      timeout: 2s
    services:
      orders:
        retry_policy: { num_retries: 2 }
    server:
      service_name: orders
      port: 50051
    """.write(toFile: good, atomically: true, encoding: .utf8)
    var run = try await mesh("config", "validate", good)
    #expect(run.status == 0)
    #expect(run.output.contains("valid (services: orders; server section: yes)"))

    let bad = folder.appendingPathComponent("bad.json").path
    try #"{"services": {"orders": {"retry_policy": {"num_retries": -1}}}}"#
      .write(toFile: bad, atomically: true, encoding: .utf8)
    run = try await mesh("config", "validate", bad, "--json")
    #expect(run.status == 1)
    let result = try run.json()
    #expect(result["valid"] as? Bool == false)
    #expect((result["field"] as? String ?? "").contains("num_retries"), "\(result)")

    let badServer = folder.appendingPathComponent("server.yaml").path
    try "server:\n  port: 70000\n".write(toFile: badServer, atomically: true, encoding: .utf8)
    run = try await mesh("config", "validate", badServer, "--json")
    #expect(run.status == 1)
    #expect((try run.json()["field"] as? String ?? "").contains("port"))

    run = try await mesh("config", "validate", folder.appendingPathComponent("none.yaml").path)
    #expect(run.status == 1)
  }

  @Test("certs inspect: identity, SANs, validity, chain; rotate: new key and serial, same names")
  func inspectAndRotate() async throws {
    let directory = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let authority = try directory.loadAuthority()
    try directory.write(
      try authority.issue(
        service: "orders",
        namespace: "shop",
        dnsNames: ["orders.internal"],
        ipAddresses: ["10.0.0.7", "::1"],
        days: 30
      )
    )
    let path = directory.certificatePath(service: "orders")
    var run = try await mesh("certs", "inspect", path, "--json")
    #expect(run.status == 0, "\(run.output)")
    var report = try run.json()
    #expect(
      report["identities"] as? [String] == [
        "spiffe://mesh.local/ns/shop/svc/orders", "dns:orders", "dns:localhost",
        "dns:orders.internal",
      ]
    )
    #expect(report["ip_addresses"] as? [String] == ["10.0.0.7", "0:0:0:0:0:0:0:1"])
    #expect((29...30).contains(report["days_left"] as? Int ?? 0))
    #expect((report["chain"] as? String ?? "").hasPrefix("chains to"))
    let serial = report["serial"] as? String

    run = try await mesh("certs", "inspect", "\(directory.path)/ca.crt")
    #expect(run.status == 0)
    #expect(run.output.contains("CA:          yes"))

    // Another CA: the chain does not verify (1).
    let other = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: other.path) }
    run = try await mesh("certs", "inspect", path, "--ca", "\(other.path)/ca.crt", "--json")
    #expect(run.status == 1)
    #expect(try run.json()["valid"] as? Bool == false)
    #expect(!(try run.json()["chain"] as? String ?? "chains to").hasPrefix("chains to"))

    let garbage = "\(directory.path)/garbage.crt"
    try "not a certificate".write(toFile: garbage, atomically: true, encoding: .utf8)
    run = try await mesh("certs", "inspect", garbage)
    #expect(run.status == 1)

    // A running service's credentials, loaded before the rotation, take the new pair on reload.
    let credentials = try await MeshCredentials(.directory(directory.path, service: "orders"))
    let oldKey = try String(contentsOfFile: directory.keyPath(service: "orders"), encoding: .utf8)
    var rotate = try MeshCommand.parseAsRoot(["certs", "rotate", "orders", "--dir", directory.path])
    try rotate.run()
    let newKey = try String(contentsOfFile: directory.keyPath(service: "orders"), encoding: .utf8)
    #expect(newKey != oldKey)
    run = try await mesh("certs", "inspect", path, "--json")
    report = try run.json()
    #expect(report["serial"] as? String != serial)
    #expect(
      report["identities"] as? [String] == [
        "spiffe://mesh.local/ns/shop/svc/orders", "dns:orders", "dns:localhost",
        "dns:orders.internal",
      ]
    )
    #expect(report["ip_addresses"] as? [String] == ["10.0.0.7", "0:0:0:0:0:0:0:1"])
    #expect((29...30).contains(report["days_left"] as? Int ?? 0))
    #expect(try await credentials.reload())
    // Past the CA's own expiry: refused, as `issue` refuses it.
    let tooLong = try MeshCommand.parseAsRoot(
      ["certs", "rotate", "orders", "--dir", directory.path, "--days", "36500"]
    )
    #expect(throws: (any Error).self) {
      var command = tooLong
      try command.run()
    }
    let reloadedSerial = credentials.certificate.serialNumber.description
    #expect(reloadedSerial == report["serial"] as? String)
  }
}

/// The `mesh` executable's exit statuses, as a script or a Kubernetes probe sees them.
@Suite("mesh as a process: exit statuses", .timeLimit(.minutes(1)))
struct MeshProcessExitTests {
  func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = try MeshAgentProcessTests.meshExecutable
    process.arguments = arguments
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (
      process.terminationStatus, String(decoding: out, as: UTF8.self),
      String(decoding: err, as: UTF8.self)
    )
  }

  @Test(
    "Bad flags exit 1 with a clear error",
    arguments: [
      ["health"], ["health", "127.0.0.1:99999"], ["health", "127.0.0.1:1", "--rpc-timeout", "x"],
      ["status", "--bogus"], ["no-such-command"], ["certs", "rotate", "Bad_Name"],
    ]
  )
  func badFlags(_ arguments: [String]) throws {
    let result = try self.run(arguments)
    #expect(result.status == 1, "\(arguments): \(result.stderr)")
    #expect(result.stderr.contains("Error:"), "\(result.stderr)")
  }

  @Test("Help exits 0 and shows examples; an unreachable server exits 2")
  func helpAndConnectionFailure() async throws {
    var result = try self.run(["help", "health"])
    #expect(result.status == 0)
    #expect(result.stdout.contains("Examples:"))
    #expect(result.stdout.contains("4  the server answered, but not SERVING"))
    let port = try await closedPort()
    result = try self.run(["health", "127.0.0.1:\(port)"])
    #expect(result.status == 2)
    #expect(result.stderr.contains("cannot connect to 127.0.0.1:\(port)"), "\(result.stderr)")
    result = try self.run(["config", "validate", "/nonexistent/mesh.yaml"])
    #expect(result.status == 1)
    #expect(result.stderr.contains("/nonexistent/mesh.yaml"))
  }
}

@Suite("mesh help")
struct MeshHelpTests {
  @Test("Every command's help has examples")
  func examples() {
    let commands: [any ParsableCommand.Type] = [
      HealthCommand.self, StatusCommand.self, CheckCommand.self, ClustersCommand.self,
      ConfigDumpCommand.self, ConfigValidateCommand.self, InitCommand.self, IssueCommand.self,
      InspectCommand.self, RotateCommand.self, AgentCommand.self, CertsCommand.self,
    ]
    for command in commands {
      let help = MeshCommand.helpMessage(for: command)
      #expect(help.contains("Examples:"), "\(command): \(help)")
      #expect(help.contains("mesh "), "\(command)")
    }
  }
}

@Suite("MeshServer's Consul check names the server", .timeLimit(.minutes(1)))
struct CheckServerNameTests {
  @Test("TLSServerName is the service's name when the certificate carries it, else none")
  func serverName() async throws {
    let directory = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let named = try await MeshServer(
      configuration: echoServer(directory, admin: false),
      services: []
    )
    #expect(named.checkServerName == "echo")
    // A certificate with the SPIFFE ID only: Consul could not verify it by the service's name.
    let authority = try directory.loadAuthority()
    try directory.write(
      try authority.issue(service: "echo", includeDefaultDNSNames: false),
      force: true
    )
    let unnamed = try await MeshServer(
      configuration: echoServer(directory, admin: false),
      services: []
    )
    #expect(unnamed.checkServerName == nil)
  }
}
