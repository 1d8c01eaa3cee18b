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

import AsyncHTTPClient
import Foundation
import GRPCCore
import InMemoryLogging
import InteropSupport
import Logging
import MeshAdmin
import MeshCertificates
import MeshClient
import MeshConsul
import MeshCore
import MeshDiscovery
import MeshServer
import MeshTestKit
import MeshTransport
import NIOCore
import NIOHTTP1
import Testing

/// One admin-endpoint reply.
struct AdminReply {
  var status: Int
  var contentType: String
  var body: String

  func json() throws -> Any {
    try JSONSerialization.jsonObject(with: Data(self.body.utf8))
  }
}

/// `method` on `url` (loopback; a reply within 10 s).
func adminRequest(_ url: String, method: HTTPMethod = .GET) async throws -> AdminReply {
  var request = HTTPClientRequest(url: url)
  request.method = method
  let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
  let body = try await response.body.collect(upTo: 4 << 20)
  return AdminReply(
    status: Int(response.status.code),
    contentType: response.headers.first(name: "content-type") ?? "",
    body: String(buffer: body)
  )
}

/// Runs `body` with `server` running on `clock`, and waits for it to stop: `body` drains it and
/// moves the clock past the drain delay. If `body` throws, the server drains with the clock moved
/// on whenever something sleeps on it.
private func withServer(
  _ server: MeshServer,
  on clock: MeshManualClock,
  _ body: (MeshServer) async throws -> Void
) async throws {
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.run() }
    do {
      _ = try await server.listeningPort
      try await body(server)
      try await group.waitForAll()
    } catch {
      server.beginGracefulShutdown()
      group.addTask {
        while !Task.isCancelled {
          await clock.waitForSleepers { !$0.isEmpty }
          clock.advance(by: .seconds(60))
        }
      }
      // The server's run ends first; then the clock's mover.
      _ = try? await group.next()
      group.cancelAll()
      throw error
    }
  }
}

@Suite("The admin endpoint", .timeLimit(.minutes(2)))
struct AdminEndpointTests {
  @Test(
    "A server and a client on one endpoint: metrics, clusters, config, certificates, probes, log level; registered as mesh_admin_port"
  )
  func endpoint() async throws {
    let directory = try MeshServerTests.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    try await withAgent { consulAddress in
      var configuration = MeshServerTests.echoServer(directory)
      configuration.admin = MeshAdminConfiguration(port: 0)
      let consul = ConsulClientConfiguration(address: consulAddress, token: "s3cret-token")
      configuration.registration = .init(consul: consul, checkInterval: .seconds(30))
      let logs = InMemoryLogHandler()
      var logger = Logger(label: "echo", factory: { _ in logs })
      logger.logLevel = .info
      // The drain delay runs on the test's clock: the endpoint is seen draining before it stops.
      let clock = MeshManualClock()
      configuration.drain = .init(delay: .seconds(5), gracePeriod: .seconds(5))
      let server = try await MeshServer(
        configuration: configuration,
        services: [EchoService()],
        clock: clock,
        logger: logger
      )
      try await withServer(server, on: clock) { server in
        let port = try await server.listeningPort
        let admin = try #require(server.admin)
        let base = try await admin.url
        #expect(base.hasPrefix("http://127.0.0.1:"))
        // The registration names the admin port: Prometheus's Consul discovery scrapes it.
        let agent = try ConsulClient(consul)
        let all = ConsulHealthQuery(passingOnly: false)
        var instances = try await agent.healthService("echo", query: all)
        while instances.value.isEmpty {
          instances = try await agent.healthService(
            "echo",
            query: all,
            index: instances.index,
            wait: .seconds(30)
          )
        }
        try await agent.shutdown()
        let adminPort = try await admin.listeningPort
        #expect(instances.value.first?.service.meta?["mesh_admin_port"] == "\(adminPort)")

        // A client in the same process, on the same endpoint and registry.
        var client = MeshServerTests.echoClient("checkout", directory, port: port)
        client.metrics = admin.metricsFactory
        try await withMeshClient(client) { mesh in
          admin.add(mesh)
          let echo = try mesh.client(for: "echo")
          for index in 0..<5 {
            #expect(try await echo.echo("\(index)").hasSuffix(": \(index)"))
          }

          let health = try await adminRequest(base + "healthz")
          #expect(health.status == 200 && health.body == "OK\n")
          let ready = try await adminRequest(base + "ready")
          #expect(ready.status == 200, "\(ready.body)")

          let metrics = try await adminRequest(base + "metrics")
          #expect(metrics.status == 200)
          #expect(metrics.contentType.hasPrefix("text/plain; version=0.0.4"))
          for series in [
            #"grpc_server_call_duration_seconds_count{grpc_method="test.Echo/Echo",grpc_status="OK"} 5"#,
            #"grpc_client_call_duration_seconds_count{grpc_method="test.Echo/Echo",grpc_target="mesh:///echo",grpc_status="OK"} 5"#,
            #"mesh_server_health_serving{grpc_service="test.Echo"} 1"#,
            #"mesh_endpoints{grpc_target="mesh:///echo",state="pickable"} 1"#,
          ] {
            #expect(metrics.body.contains(series), "no \(series) in \(metrics.body)")
          }
          #expect(metrics.body.contains("mesh_certificate_expiration_timestamp_seconds{"))
          try #require(Promtool.isInstalled, "promtool is Debian's prometheus package")
          let lint = try Promtool.run(["check", "metrics"], input: metrics.body)
          #expect(lint.status == 0, "\(lint.output)")

          let clusters = try await adminRequest(base + "clusters")
          #expect(clusters.contentType == "application/json")
          let targets = try #require(try clusters.json() as? [[String: Any]])
          #expect(targets.count == 1)
          #expect(targets.first?["target"] as? String == "echo")
          #expect(targets.first?["pickable"] as? Int == 1)
          let endpoints = try #require(targets.first?["endpoints"] as? [[String: Any]])
          #expect(endpoints.first?["id"] as? String == "echo-0")
          #expect(endpoints.first?["address"] as? String == "127.0.0.1:\(port)")
          #expect(endpoints.first?["state"] as? String == "ready")
          #expect((endpoints.first?["connections"] as? Int ?? 0) >= 1)

          let dump = try await adminRequest(base + "config_dump")
          let sections = try #require(try dump.json() as? [String: Any])
          let served = try #require(sections["server"] as? [String: Any])
          #expect(served["serviceName"] as? String == "echo")
          #expect((sections["client"] as? [String: Any])?["serviceName"] as? String == "checkout")
          #expect((sections["admin"] as? [String: Any])?["port"] as? Int == 0)
          #expect(!dump.body.contains("s3cret-token"), "the Consul token is not redacted")
          #expect(dump.body.contains("[redacted]"))

          let certs = try await adminRequest(base + "certs")
          let byRole = try #require(try certs.json() as? [String: [String: Any]])
          let serverCerts = try #require(byRole["server"])
          #expect(
            serverCerts["identities"] as? [String] == [
              "spiffe://mesh.local/ns/default/svc/echo", "dns:echo", "dns:localhost",
            ]
          )
          let leaf = try #require(serverCerts["certificate"] as? [String: Any])
          let sans = try #require(leaf["subjectAlternativeNames"] as? [String])
          #expect(sans.contains { $0.contains("spiffe://mesh.local/ns/default/svc/echo") })
          #expect((serverCerts["trustBundle"] as? [Any])?.count == 1)
          #expect((serverCerts["secondsToExpiry"] as? Int ?? 0) > 86_400)
          let clientIdentities = byRole["client"]?["identities"] as? [String]
          #expect(clientIdentities?.first == "spiffe://mesh.local/ns/default/svc/checkout")

          let level = try await adminRequest(base + "logging")
          #expect(try level.json() as? [String: String] == ["level": "info"], "\(level.body)")
          let set = try await adminRequest(base + "logging?level=debug", method: .POST)
          #expect(set.status == 200)
          #expect(admin.logLevel.level == .debug)
          let bad = try await adminRequest(base + "logging?level=loud", method: .POST)
          #expect(bad.status == 400 && bad.body.contains("trace, debug"))
          #expect(admin.logLevel.level == .debug)
          // The server's own lines follow: at warning, its drain's info lines are not written.
          let quiet = try await adminRequest(base + "logging?level=warning", method: .PUT)
          #expect(quiet.status == 200)
          let missing = try await adminRequest(base + "nothing-here")
          #expect(missing.status == 404)
        }
        // Draining: no longer ready, for Kubernetes to stop sending. The endpoint answers until
        // the server stops, after the drain delay.
        server.beginGracefulShutdown()
        let delayOver = clock.now.advanced(by: configuration.drain.delay)
        await clock.waitForSleepers { $0.contains(delayOver) }
        let draining = try await adminRequest(base + "ready")
        #expect(draining.status == 503 && draining.body.contains("draining"))
        clock.advance(by: configuration.drain.delay)
      }
      // The server has drained and stopped: none of its drain's info lines was written.
      let messages = logs.entries.map(\.message.description)
      #expect(messages.contains("Serving"))
      #expect(!messages.contains { $0.hasPrefix("Draining") || $0 == "Stopped" }, "\(messages)")
    }
  }

  @Test("A mesh client with an admin endpoint of its own shows its targets' endpoints")
  func clientEndpoint() async throws {
    var server = MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0)
    server.drain = .init(delay: .zero, gracePeriod: .seconds(5))
    try await withMeshServer(server, services: [EchoService()]) { server in
      let port = try await server.listeningPort
      var configuration = try MeshClientConfiguration.fromEnvironment([
        "MESH_CLIENT_ADMIN_ADDRESS": "127.0.0.1:0"
      ])
      configuration.discovery = MeshStaticDiscovery([
        "echo": [
          MeshEndpoint(id: "up", host: "127.0.0.1", port: port),
          // Nothing listens on port 1: the endpoint fails, and says why.
          MeshEndpoint(id: "down", host: "127.0.0.1", port: 1),
        ]
      ])
      try await withMeshClient(configuration) { mesh in
        let admin = try #require(mesh.admin)
        let base = try await admin.url
        _ = try await mesh.client(for: "echo").echo("hello")
        let transport = try #require(mesh.transport(for: "echo"))
        await transport.waitForStats { $0.connectionErrors["down"] != nil }
        let clusters = try await adminRequest(base + "clusters")
        let targets = try #require(try clusters.json() as? [[String: Any]])
        let endpoints = try #require(targets.first?["endpoints"] as? [[String: Any]])
        let byID = Dictionary(
          uniqueKeysWithValues: endpoints.map { ($0["id"] as? String ?? "", $0) }
        )
        #expect(byID["up"]?["state"] as? String == "ready")
        #expect(byID["down"]?["state"] as? String == "failing")
        #expect((byID["down"]?["lastError"] as? String ?? "").isEmpty == false)
        let metrics = try await adminRequest(base + "metrics")
        #expect(
          metrics.body.contains(#"mesh_endpoints{grpc_target="mesh:///echo",state="known"} 2"#)
        )
        let ready = try await adminRequest(base + "ready")
        #expect(ready.status == 200)
      }
    }
  }

  @Test(
    "Bad admin addresses are refused before anything binds",
    arguments: ["localhost", "127.0.0.1:99999", "[::1", "300.1.1.1:80", ":9901", "host:-1"]
  )
  func badAddresses(address: String) {
    #expect(throws: MeshInputError.self) { try MeshAdminConfiguration(address: address) }
    #expect(throws: MeshServerError.self) {
      try MeshServerConfiguration.fromEnvironment([
        "MESH_SERVICE_NAME": "a", "MESH_ADMIN_ADDRESS": address,
      ])
    }
    #expect(throws: MeshClientError.self) {
      try MeshClientConfiguration.fromEnvironment(["MESH_CLIENT_ADMIN_ADDRESS": address])
    }
  }

  @Test("The configuration dump redacts secrets: tokens, keys in memory, URL passwords")
  func redaction() throws {
    var configuration = MeshClientConfiguration(
      consul: ConsulClientConfiguration(
        address: try #require(URL(string: "https://user:hunter2@consul.example:8501")),
        token: "t0ken"
      )
    )
    configuration.tls = .init(
      credentials: MeshTLSConfiguration(
        certificateChain: .pem("-----BEGIN CERTIFICATE-----"),
        privateKey: .pem("-----BEGIN PRIVATE KEY----- s3cret"),
        trustBundle: .file("/etc/mesh/ca.pem")
      ),
      trustDomain: "mesh.local"
    )
    configuration.defaultTimeout = .milliseconds(2500)
    let json = MeshAdminJSON.reflecting(configuration)
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    let text = String(decoding: try encoder.encode(json), as: UTF8.self)
    for secret in ["t0ken", "hunter2", "s3cret", "PRIVATE KEY"] {
      #expect(!text.contains(secret), "\(secret) in \(text)")
    }
    #expect(text.contains("/etc/mesh/ca.pem"))
    guard case .object(let top) = json, case .object(let consul)? = top["consul"] else {
      Issue.record("no consul section in \(text)")
      return
    }
    #expect(consul["token"] == MeshAdminJSON.redacted)
    #expect(top["defaultTimeout"] == .double(2.5))
  }

  @Test("The log level changes at run time for every logger it controls")
  func logLevel() {
    let logs = InMemoryLogHandler()
    let level = MeshLogLevel(.info)
    let logger = level.controlling(Logger(label: "test", factory: { _ in logs }))
    logger.debug("hidden")
    level.set(.debug)
    logger.debug("shown")
    level.set(.error)
    logger.warning("hidden too")
    #expect(logs.entries.map(\.message.description) == ["shown"])
    #expect(MeshLogLevel.parse("WARNING") == .warning)
    #expect(MeshLogLevel.parse("loud") == nil)
  }
}
