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

import Foundation
import GRPCCore
import MeshCertificates
import MeshClient
import MeshConfiguration
import MeshConsul
import MeshCore
import MeshDiscovery
import MeshServer
import MeshTransport
import Testing

@Suite("The configuration file's server section")
struct ServerConfigurationFileTests {
  static let whole = """
    defaults: { timeout: 2s }
    server:
      service_name: orders
      host: 127.0.0.1
      port: 9443
      tls: { certs_dir: /etc/mesh/certs, trust_domain: mesh.local }
      registration:
        id: orders-a
        address: 10.0.0.5
        port: 443
        tags: [v2]
        meta: { zone: a }
        check_interval: 2s
        check_timeout: 1s
        deregister_critical_service_after: 0s
      drain: { delay: 1500ms, grace_period: 10 }
      connections:
        max_concurrent_streams: 10000
        max_connection_idle: 5m
        max_connection_age: 0s
        max_connection_age_grace: 30s
        max_request_message_bytes: 1048576
      authorization:
        default_action: deny
        audit_allowed_share: 0.25
        rules:
          - { source: "service:checkout", destination: orders.Orders, action: allow }
          - source: spiffe://mesh.local/ns/default/svc/checkout
            destination: orders.Orders/Cancel
            action: deny
            name: no cancelling
          - { source: "trust-domain:mesh.local", destination: "*", action: allow }
          - { source: "*", destination: "orders.Orders/Get", action: allow }
    """

  static func configuration(
    _ text: String,
    code: MeshServerConfiguration = .defaults(serviceName: "orders")
  ) throws -> MeshServerConfiguration {
    var configuration = code
    let file = try MeshConfigurationFile.parse(Data(text.utf8), format: .yaml, file: "mesh.yaml")
    if let server = file.server { try configuration.apply(server, file: "mesh.yaml") }
    return configuration
  }

  @Test("Every field of the section reaches the server's configuration")
  func whole() throws {
    let configuration = try Self.configuration(Self.whole)
    #expect(configuration.serviceName == "orders")
    #expect(configuration.host == "127.0.0.1")
    #expect(configuration.port == 9443)
    #expect(configuration.tls?.clients == .trustDomain("mesh.local"))
    let registration = try #require(configuration.registration)
    #expect(registration.id == "orders-a")
    #expect(registration.advertisedAddress == "10.0.0.5")
    #expect(registration.advertisedPort == 443)
    #expect(registration.tags == ["v2"])
    #expect(registration.meta == ["zone": "a"])
    #expect(registration.checkInterval == .seconds(2))
    #expect(registration.checkTimeout == .seconds(1))
    #expect(registration.deregisterCriticalServiceAfter == nil)
    #expect(configuration.drain == .init(delay: .milliseconds(1500), gracePeriod: .seconds(10)))
    #expect(
      configuration.connections
        == .init(
          maxConcurrentStreams: 10_000,
          maxIdleTime: .seconds(300),
          maxAge: nil,
          maxAgeGrace: .seconds(30),
          maxRequestMessageBytes: 1_048_576
        )
    )
    #expect(configuration.auditAllowedShare == 0.25)
    let policy = try #require(configuration.authorization)
    #expect(policy.defaultAction == .deny)
    #expect(
      policy.rules == [
        .allow(from: .service("checkout"), to: .service("orders.Orders")),
        .init(
          source: .identity(try .spiffe("spiffe://mesh.local/ns/default/svc/checkout")),
          destination: .method("orders.Orders/Cancel"),
          action: .deny,
          name: "no cancelling"
        ),
        .allow(from: .trustDomain("mesh.local"), to: .any),
        .allow(from: .any, to: .method("orders.Orders/Get")),
      ]
    )
    // The rules decide as written: checkout may call orders but not Cancel.
    let checkout = [try MeshServiceIdentity.spiffe("spiffe://mesh.local/ns/default/svc/checkout")]
    #expect(
      policy.decide(identities: checkout, service: "orders.Orders", method: "Get").action == .allow
    )
    #expect(
      policy.decide(identities: checkout, service: "orders.Orders", method: "Cancel").reason
        == "no cancelling"
    )
  }

  @Test("The example file's server section (Examples/mesh.yaml)")
  func exampleFile() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent()
    let path = root.appendingPathComponent("Examples/mesh.yaml").path
    var configuration = MeshServerConfiguration.defaults(serviceName: "greeter")
    try configuration.apply(try #require(MeshConfigurationFile.load(path: path).server), file: path)
    #expect(configuration.port == 8443)
    #expect(configuration.registration?.tags == ["v1"])
    #expect(configuration.connections.maxAge == .seconds(3600))
    #expect(configuration.auditAllowedShare == 0.01)
    let policy = try #require(configuration.authorization)
    let client = [
      try MeshServiceIdentity.spiffe("spiffe://mesh.local/ns/default/svc/greeter-client")
    ]
    let other = [try MeshServiceIdentity.spiffe("spiffe://mesh.local/ns/default/svc/billing")]
    #expect(
      policy.decide(identities: client, service: "greeter.v1.Greeter", method: "Chat").action
        == .allow
    )
    #expect(
      policy.decide(identities: other, service: "greeter.v1.Greeter", method: "SayHello").action
        == .allow
    )
    #expect(
      policy.decide(identities: other, service: "greeter.v1.Greeter", method: "Chat").action
        == .deny
    )
  }

  @Test("A section sets only what it names; the client's sections read the same file")
  func partial() throws {
    var code = MeshServerConfiguration.defaults(serviceName: "orders")
    code.port = 7000
    code.drain.gracePeriod = .seconds(3)
    let configuration = try Self.configuration(
      "server: { drain: { delay: 0s } }\ndefaults: { timeout: 2s }",
      code: code
    )
    #expect(configuration.port == 7000)
    // 0s is no limit for the connection limits, the grace after an age's GOAWAY included.
    let unlimited = try Self.configuration(
      """
      server:
        connections: { max_connection_idle: 0s, max_connection_age: 0s, max_connection_age_grace: 0s }
        intentions: { default_action: deny, audit_allowed_share: 0.5 }
      """
    )
    #expect(unlimited.connections.maxIdleTime == nil)
    #expect(unlimited.connections.maxAge == nil)
    #expect(unlimited.connections.maxAgeGrace == nil)
    #expect(unlimited.auditAllowedShare == 0.5)
    #expect(configuration.drain == .init(delay: .zero, gracePeriod: .seconds(3)))
    #expect(configuration.tls == nil && configuration.registration == nil)
    var client = MeshClientConfiguration()
    client.apply(
      try MeshConfigurationFile.parse(Data(Self.whole.utf8), format: .yaml, file: "mesh.yaml")
    )
    #expect(client.resilience.defaults.timeout == .seconds(2))
  }

  @Test(
    "A bad field is an error naming it in the file, never a trap; nothing is applied",
    arguments: [
      ("server: { prot: 80 }", "server.prot"),
      ("server: { port: 70000 }", "server.port"),
      ("server: { port: 1e30 }", "server.port"),
      ("server: { port: eighty }", "server.port"),
      ("server: { host: example.com }", "server.host"),
      ("server: { service_name: '' }", "server.service_name"),
      ("server: { tls: { trust_domain: x } }", "server.tls.certs_dir"),
      ("server: { drain: { delay: -1s } }", "server.drain.delay"),
      ("server: { drain: { grace_period: 100000h } }", "server.drain.grace_period"),
      (
        "server: { connections: { max_concurrent_streams: 0 } }",
        "server.connections.max_concurrent_streams"
      ),
      (
        "server: { connections: { max_concurrent_streams: 9223372036854775807 } }",
        "server.connections.max_concurrent_streams"
      ),
      (
        "server: { connections: { max_request_message_bytes: -1 } }",
        "server.connections.max_request_message_bytes"
      ),
      ("server: { registration: { port: 0 } }", "server.registration.port"),
      ("server: { registration: { id: '' } }", "server.registration.id"),
      (
        "server: { intentions: { default_action: deny, audit_allowed_share: -0.5 } }",
        "server.intentions.audit_allowed_share"
      ),
      ("server: { registration: { address: 'a b' } }", "server.registration.address"),
      ("server: { registration: { check_interval: 0s } }", "server.registration.check_interval"),
      ("server: { intentions: { default_action: deny, wait: 0s } }", "server.intentions.wait"),
      ("server: { intentions: { wait: 1m } }", "server.intentions.default_action"),
      ("server: { authorization: { rules: [] } }", "server.authorization.default_action"),
      (
        "server: { authorization: { default_action: permit } }",
        "server.authorization.default_action"
      ),
      (
        "server: { authorization: { default_action: deny, audit_allowed_share: 2 } }",
        "server.authorization.audit_allowed_share"
      ),
      (
        "server: { authorization: { default_action: deny, rules: [{ source: checkout, destination: '*', action: allow }] } }",
        "server.authorization.rules[0].source"
      ),
      (
        "server: { authorization: { default_action: deny, rules: [{ source: '*', destination: '*', action: allow }, { source: 'spiffe://UPPER/x', destination: '*', action: allow }] } }",
        "server.authorization.rules[1].source"
      ),
      (
        "server: { authorization: { default_action: deny, rules: [{ source: '*', destination: '/a.B/C', action: allow }] } }",
        "server.authorization.rules[0].destination"
      ),
      (
        "server: { authorization: { default_action: deny, rules: [{ source: '*', destination: a.B, action: maybe }] } }",
        "server.authorization.rules[0].action"
      ),
      (
        "server: { authorization: { default_action: deny }, intentions: { default_action: deny } }",
        "server.intentions"
      ),
    ]
  )
  func bad(text: String, field: String) throws {
    let code = MeshServerConfiguration.defaults(serviceName: "orders")
    var configuration = code
    let error = #expect(throws: MeshConfigurationError.self) {
      let file = try MeshConfigurationFile.parse(Data(text.utf8), format: .yaml, file: "mesh.yaml")
      try configuration.apply(try #require(file.server), file: "mesh.yaml")
    }
    #expect(error?.file == "mesh.yaml")
    #expect(error?.field == field, "\(String(describing: error))")
    #expect(configuration.port == code.port && configuration.authorization == nil)
    #expect(configuration.connections == code.connections && configuration.drain == code.drain)
    #expect(configuration.registration == nil && configuration.intentions == nil)
    #expect(configuration.host == code.host && configuration.auditAllowedShare == 0)
  }

  @Test("Error paths: an array's index in brackets, a numeric service name stays a name")
  func paths() throws {
    let rules = """
      {"server": {"authorization": {"default_action": "deny", "rules": [
        {"source": "*", "destination": "*", "action": "allow"},
        {"source": "x", "destination": "*", "action": "allow"}]}}}
      """
    for (text, field) in [
      (#"{"services": {"8080": {"timeout": "soon"}}}"#, "services.8080.timeout"),
      (rules, "server.authorization.rules[1].source"),
    ] {
      // JSON is YAML too: each document read both ways names the same field.
      for format in [MeshConfigurationFile.Format.yaml, .json] {
        var configuration = MeshServerConfiguration.defaults(serviceName: "a")
        let error = #expect(throws: MeshConfigurationError.self) {
          let file = try MeshConfigurationFile.parse(Data(text.utf8), format: format, file: "f")
          if let server = file.server { try configuration.apply(server, file: "f") }
        }
        #expect(error?.field == field, "\(format): \(String(describing: error))")
      }
    }
  }

  @Test("MESH_CONFIG_FILE: the file's section first, the environment's variables over it")
  func environment() throws {
    let path = FileManager.default.temporaryDirectory
      .appendingPathComponent("mesh-server-\(UUID().uuidString).yaml").path
    try Data(Self.whole.utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }

    let fromFile = try MeshServerConfiguration.fromEnvironment(["MESH_CONFIG_FILE": path])
    #expect(fromFile.serviceName == "orders")
    #expect(fromFile.port == 9443)
    // The file's registration uses the agent the environment names, Consul's default here.
    #expect(fromFile.registration?.consul.address.absoluteString == "http://127.0.0.1:8500")
    #expect(fromFile.registration?.advertisedAddress == "10.0.0.5")

    let overridden = try MeshServerConfiguration.fromEnvironment([
      "MESH_CONFIG_FILE": path, "MESH_SERVICE_NAME": "billing", "MESH_SERVER_PORT": "0",
      "CONSUL_HTTP_ADDR": "127.0.0.1:8600", "MESH_ADVERTISE_ADDRESS": "10.0.0.9",
      "MESH_TRUST_DOMAIN": "other.local", "MESH_DRAIN_DELAY": "0",
    ])
    #expect(overridden.serviceName == "billing")
    #expect(overridden.port == 0)
    #expect(overridden.registration?.consul.address.absoluteString == "http://127.0.0.1:8600")
    #expect(overridden.registration?.advertisedAddress == "10.0.0.9")
    #expect(overridden.registration?.tags == ["v2"])
    #expect(overridden.tls?.clients == .trustDomain("other.local"))
    #expect(overridden.drain.delay == .zero)
    #expect(overridden.authorization?.rules.count == 4)

    // MESH_INTENTIONS: Consul's intentions replace the file's rules.
    let following = try MeshServerConfiguration.fromEnvironment([
      "MESH_CONFIG_FILE": path, "MESH_INTENTIONS": "allow",
    ])
    #expect(following.authorization == nil)
    #expect(following.intentions?.defaultAction == .allow)
    #expect(following.auditAllowedShare == 0.25)

    let missing = #expect(throws: MeshServerError.self) {
      try MeshServerConfiguration.fromEnvironment(["MESH_CONFIG_FILE": path + ".missing"])
    }
    #expect(missing?.message.hasPrefix("MESH_CONFIG_FILE: ") == true)
    let bad = path + ".bad.yaml"
    try Data("server: { port: 70000 }".utf8).write(to: URL(fileURLWithPath: bad))
    defer { try? FileManager.default.removeItem(atPath: bad) }
    let error = #expect(throws: MeshServerError.self) {
      try MeshServerConfiguration.fromEnvironment([
        "MESH_CONFIG_FILE": bad, "MESH_SERVICE_NAME": "a",
      ])
    }
    #expect(error?.message.contains("server.port") == true, "\(String(describing: error))")
    let unnamed = #expect(throws: MeshServerError.self) {
      try MeshServerConfiguration.fromEnvironment(["MESH_CONFIG_FILE": bad])
    }
    #expect(unnamed?.message.contains("MESH_SERVICE_NAME") == true)
  }

  @Test("A server configured by the file enforces its rules")
  func served() async throws {
    let directory = try MeshServerTests.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let configuration = try Self.configuration(
      """
      server:
        host: 127.0.0.1
        port: 0
        tls: { certs_dir: \(directory.path) }
        drain: { delay: 0s, grace_period: 5s }
        authorization:
          default_action: deny
          rules: [{ source: "service:checkout", destination: test.Echo/Echo, action: allow }]
      """,
      code: .defaults(serviceName: "echo")
    )
    let echo = EchoService()
    try await withMeshServer(configuration, services: [echo]) { server in
      let port = try await server.listeningPort
      try await withMeshClient(MeshServerTests.echoClient("checkout", directory, port: port)) {
        let reply = try await $0.client(for: "echo").echo("hi")
        #expect(reply.hasSuffix("checkout: hi"))
      }
      try await withMeshClient(MeshServerTests.echoClient("billing", directory, port: port)) {
        mesh in
        let error = await #expect(throws: RPCError.self) {
          try await mesh.client(for: "echo").echo("hi")
        }
        #expect(error?.code == .permissionDenied)
      }
    }
    #expect(echo.calls == 1)
  }
}
