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
import GRPCNIOTransportHTTP2Posix
import InteropSupport
import Logging
import MeshCertificates
import MeshClient
import MeshConsul
import MeshConsulAgent
import MeshDiscovery
import MeshHealth
import MeshProto
import MeshTransport
import ServiceLifecycle
import SwiftProtobuf
import Synchronization
import Testing

/// A throwaway PKI with certificates for `services`; remove its folder when done.
func makePKI(_ services: [String]) throws -> MeshCertificateDirectory {
  let directory = MeshCertificateDirectory(
    path: FileManager.default.temporaryDirectory.appendingPathComponent(
      "mesh-client-\(UUID().uuidString)"
    ).path
  )
  let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
  try directory.write(authority)
  for service in services {
    try directory.write(try authority.issue(service: service))
  }
  return directory
}

/// Starts a health server on 127.0.0.1:0 in `group`; returns its port and hit counter.
func startServer(
  in group: inout ThrowingTaskGroup<Void, any Error>,
  security: HTTP2ServerTransport.Posix.TransportSecurity = .plaintext,
  servers: inout [GRPCServer<HTTP2ServerTransport.Posix>]
) async throws -> (port: Int, hits: RPCCounter, health: MeshHealthService) {
  let hits = RPCCounter()
  let health = MeshHealthService()
  let transport = HTTP2ServerTransport.Posix(
    address: .ipv4(host: "127.0.0.1", port: 0),
    transportSecurity: security
  )
  let server = GRPCServer(transport: transport, services: [health], interceptors: [hits])
  group.addTask { try await server.serve() }
  servers.append(server)
  let port = try #require(try await transport.listeningAddress.ipv4?.port)
  return (port, hits, health)
}

@Suite("Mesh client", .timeLimit(.minutes(2)))
struct MeshClientTests {
  @Test("The environment configures the client like the Python helper's create_mesh_client()")
  func environment() throws {
    let configuration = try MeshClientConfiguration.fromEnvironment([
      "CONSUL_HTTP_ADDR": "consul:8500", "CONSUL_HTTP_TOKEN": "t", "MESH_SERVICE_NAME": "checkout",
      "MESH_CERTS_DIR": "/etc/mesh/certs", "MESH_TRUST_DOMAIN": "prod.example",
      "MESH_DEFAULT_TIMEOUT": "2.5",
    ])
    #expect(configuration.consul.address.absoluteString == "http://consul:8500")
    #expect(configuration.consul.token == "t")
    #expect(configuration.serviceName == "checkout")
    #expect(
      configuration.tls?.credentials.certificateChain.path
        == "/etc/mesh/certs/services/checkout.crt"
    )
    #expect(configuration.tls?.trustDomain == "prod.example")
    #expect(configuration.defaultTimeout == .milliseconds(2500))

    let plain = try MeshClientConfiguration.fromEnvironment([:])
    #expect(plain.tls == nil)
    #expect(throws: MeshClientError.self) {
      try MeshClientConfiguration.fromEnvironment(["MESH_CERTS_DIR": "certs"])
    }
    #expect(throws: MeshClientError.self) {
      try MeshClientConfiguration.fromEnvironment(["MESH_DEFAULT_TIMEOUT": "soon"])
    }
    #expect(throws: MeshClientError.self) {
      try MeshClientConfiguration.fromEnvironment(["CONSUL_HTTP_ADDR": "ftp://x:1"])
    }
  }

  @Test(
    "MESH_DEFAULT_TIMEOUT out of range is an error naming the variable, never a trap",
    arguments: [
      "1e16", "9223372036854775807", "9.3e9", "1e308", "inf", "-inf", "nan", "-1", "0", "0s",
      "2562047h47m16.854775808s", "99999999999h", "87601h", "-5ms", "1.5 s",
    ]
  )
  func environmentTimeoutOutOfRange(text: String) {
    let error = #expect(throws: MeshClientError.self) {
      try MeshClientConfiguration.fromEnvironment(["MESH_DEFAULT_TIMEOUT": text])
    }
    #expect(error?.configuration?.field == "MESH_DEFAULT_TIMEOUT", "\(String(describing: error))")
    #expect(error?.configuration?.file == MeshConfigurationError.environment)
    #expect(error?.message.hasPrefix("MESH_DEFAULT_TIMEOUT") == true)
  }

  @Test(
    "MESH_TRANSPORT is nio or native; anything else is an error naming it",
    arguments: ["quic", "NIO", " native"]
  )
  func environmentTransport(text: String) throws {
    // The native transport is the default (the package's Native trait is on): the
    // configuration's and, with MESH_TRANSPORT unset or empty, the environment's.
    for kind in [
      MeshClientConfiguration(discovery: MeshStaticDiscovery([:])).transportKind,
      try MeshClientConfiguration.fromEnvironment([:]).transportKind,
      try MeshClientConfiguration.fromEnvironment(["MESH_TRANSPORT": ""]).transportKind,
    ] {
      guard case .native = kind else {
        Issue.record("the default is not the native transport: \(kind)")
        continue
      }
    }
    // grpc-swift's transport settings, given to the initializer, choose grpc-swift's transport.
    if case .nio = MeshClientConfiguration(
      discovery: MeshStaticDiscovery([:]),
      transport: .defaults
    )
    .transportKind {
    } else {
      Issue.record("grpc-swift's settings did not choose grpc-swift's transport")
    }
    if case .nio = try MeshClientConfiguration.fromEnvironment(["MESH_TRANSPORT": "nio"])
      .transportKind
    {
    } else {
      Issue.record("MESH_TRANSPORT=nio did not choose the NIO transport")
    }
    guard
      case .native = try MeshClientConfiguration.fromEnvironment(["MESH_TRANSPORT": "native"])
        .transportKind
    else {
      Issue.record("MESH_TRANSPORT=native did not choose the native transport")
      return
    }
    let error = #expect(throws: MeshClientError.self) {
      try MeshClientConfiguration.fromEnvironment(["MESH_TRANSPORT": text])
    }
    #expect(error?.configuration?.field == "MESH_TRANSPORT", "\(String(describing: error))")
    #expect(error?.message.contains("'nio' or 'native'") == true)
  }

  @Test("On the native transport, grpc-swift's transport settings are refused, naming where")
  func nativeRefusesNIOSettings() async throws {
    let discovery = MeshStaticDiscovery(["echo": []])
    var configuration = MeshClientConfiguration(discovery: discovery)
    configuration.transportKind =
      try MeshClientConfiguration.fromEnvironment(["MESH_TRANSPORT": "native"]).transportKind
    configuration.transport = .defaults
    let error = await #expect(throws: MeshClientError.self) {
      _ = try await MeshClient(configuration: configuration)
    }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.message.contains("(transport)") == true, "\(String(describing: error))")

    configuration.transport = nil
    configuration.targets["billing"] = .init(transport: .defaults)
    let targetError = await #expect(throws: MeshClientError.self) {
      _ = try await MeshClient(configuration: configuration)
    }
    #expect(targetError?.message.contains("targets.billing.transport") == true)

    // On NIO they are grpc-swift's settings, taken as they are.
    configuration.transportKind = .nio
    _ = try await MeshClient(configuration: configuration)
  }

  @Test("MESH_DEFAULT_TIMEOUT takes seconds or Go durations")
  func environmentTimeout() throws {
    for (text, expected) in [
      ("2.5", Duration.milliseconds(2500)), ("2500ms", .milliseconds(2500)),
      ("1m30s", .seconds(90)),
      ("0.001", .milliseconds(1)), ("87600h", MeshResiliencePolicy.maximumDuration),
    ] {
      let configuration = try MeshClientConfiguration.fromEnvironment(["MESH_DEFAULT_TIMEOUT": text]
      )
      #expect(configuration.defaultTimeout == expected, "\(text)")
    }
  }

  @Test("In a ServiceGroup, graceful shutdown reaches the mesh client and stops it")
  func serviceGroup() async throws {
    let mesh = try await createMeshClient(
      MeshClientConfiguration(discovery: MeshStaticDiscovery(["greeter": []]))
    )
    _ = try mesh.client(for: "greeter")
    let group = ServiceGroup(
      services: [mesh],
      gracefulShutdownSignals: [],
      logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    )
    try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await group.run() }
      await group.triggerGracefulShutdown()
      try await tasks.waitForAll()  // returns only if the mesh client's run() ended
    }
    #expect(throws: MeshClientError.self) { try mesh.client(for: "other") }
  }

  @Test("client(for:) is cached per target and timeout, carries the default timeout, and balances")
  func clientForTarget() async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
      var instances: [(port: Int, hits: RPCCounter, health: MeshHealthService)] = []
      for _ in 0..<3 {
        instances.append(try await startServer(in: &group, servers: &servers))
      }
      let discovery = MeshStaticDiscovery([
        "greeter": instances.map { MeshEndpoint(host: "127.0.0.1", port: $0.port) }
      ])
      var configuration = MeshClientConfiguration(discovery: discovery, policy: .roundRobin)
      configuration.targets["greeter"] = .init(timeout: .seconds(10))

      let leftover = try await withMeshClient(configuration) { mesh in
        let client = try mesh.client(for: "greeter")
        #expect(try mesh.client(for: "greeter") === client)
        #expect(try mesh.client(for: "greeter", timeout: .seconds(1)) !== client)
        let descriptor = Grpc_Health_V1_Health.Method.Check.descriptor
        // The transport applies the timeout itself (grpc-swift is given no method config).
        #expect(mesh.transport(for: "greeter")?.config(forMethod: descriptor) == nil)
        #expect(mesh.transport(for: "greeter")?.defaultTimeout == .seconds(10))
        #expect(mesh.handle(for: "greeter", timeout: .seconds(1))?.defaultTimeout == .seconds(1))
        // One transport per target: both clients' handles share it.
        #expect(
          mesh.handle(for: "greeter", timeout: .seconds(1))?.base === mesh.transport(for: "greeter")
        )
        #expect(mesh.handle(for: "greeter")?.base === mesh.transport(for: "greeter"))

        await mesh.transport(for: "greeter")?.waitForPickableEndpoints(3)
        let health = Grpc_Health_V1_Health.Client(wrapping: client)
        for _ in 0..<30 {
          #expect(try await health.check(.init()).status == .serving)
        }
        return mesh
      }
      #expect(instances.map(\.hits.value) == [10, 10, 10])
      #expect(throws: MeshClientError.self) { try leftover.client(for: "other") }
      for server in servers { server.beginGracefulShutdown() }
      try await group.waitForAll()
    }
  }

  @Test("On the native transport: mTLS to every instance, a server with the wrong identity refused")
  func nativeTransport() async throws {
    let directory = try makePKI(["greeter", "checkout", "billing"])
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let greeter = try await MeshCredentials(.directory(directory.path, service: "greeter"))
    let billing = try await MeshCredentials(.directory(directory.path, service: "billing"))

    try await withThrowingTaskGroup(of: Void.self) { group in
      var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
      var instances: [(port: Int, hits: RPCCounter, health: MeshHealthService)] = []
      for _ in 0..<2 {
        instances.append(
          try await startServer(
            in: &group,
            security: try greeter.serverTransportSecurity(),
            servers: &servers
          )
        )
      }
      // Registered as "payments", but its certificate is billing's.
      let impostor = try await startServer(
        in: &group,
        security: try billing.serverTransportSecurity(),
        servers: &servers
      )
      var configuration = try MeshClientConfiguration.fromEnvironment([
        "MESH_SERVICE_NAME": "checkout", "MESH_CERTS_DIR": directory.path,
        "MESH_TRANSPORT": "native",
      ])
      configuration.discovery = MeshStaticDiscovery([
        "greeter": instances.map { MeshEndpoint(host: "127.0.0.1", port: $0.port) },
        "payments": [MeshEndpoint(host: "127.0.0.1", port: impostor.port)],
      ])
      configuration.policy = .roundRobin

      try await withMeshClient(configuration) { mesh in
        let health = Grpc_Health_V1_Health.Client(wrapping: try mesh.client(for: "greeter"))
        let subchannel = try mesh.transport(for: "greeter")?.factory.makeSubchannel(
          for: MeshEndpoint(host: "127.0.0.1", port: instances[0].port)
        )
        guard case .native = subchannel?.base as? MeshSubchannel else {
          Issue.record("The subchannels are not on the native transport")
          return
        }
        await mesh.transport(for: "greeter")?.waitForPickableEndpoints(2)
        for _ in 0..<20 {
          let status = try await health.check(.init()).status
          #expect(status == .serving)
        }

        let payments = Grpc_Health_V1_Health.Client(
          wrapping: try mesh.client(for: "payments", timeout: .seconds(5))
        )
        // The refused handshake is known before the call (under ThreadSanitizer it took longer
        // than the call's 5 s, which then ended with "not connected yet").
        await mesh.transport(for: "payments")?.waitForStats { !$0.connectionErrors.isEmpty }
        let error = await #expect(throws: RPCError.self) { try await payments.check(.init()) }
        #expect(error?.code == .unavailable)
        #expect(
          "\(String(describing: error))".contains("svc/billing"),
          "\(String(describing: error))"
        )
      }
      #expect(instances.map(\.hits.value) == [10, 10])
      #expect(impostor.hits.value == 0)
      for server in servers { server.beginGracefulShutdown() }
      try await group.waitForAll()
    }
  }

  @Test("Through Consul with mTLS: RPCs reach every registered instance, checks pass over TLS")
  func consulAndMTLS() async throws {
    let directory = try makePKI(["greeter", "checkout", "consul-agent"])
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let greeter = try await MeshCredentials(.directory(directory.path, service: "greeter"))
    let agentIdentity = try await MeshCredentials(
      .directory(directory.path, service: "consul-agent")
    )

    try await withThrowingTaskGroup(of: Void.self) { group in
      var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
      var instances: [(port: Int, hits: RPCCounter, health: MeshHealthService)] = []
      for _ in 0..<3 {
        instances.append(
          try await startServer(
            in: &group,
            security: try greeter.serverTransportSecurity(),
            servers: &servers
          )
        )
      }
      let agent = MeshConsulAgent(
        configuration: MeshConsulAgentConfiguration(port: 0, checkCredentials: agentIdentity)
      )
      group.addTask { try await agent.run() }
      let agentPort = try await agent.listeningPort
      let consul = try ConsulClient(.init(address: URL(string: "http://127.0.0.1:\(agentPort)")!))
      for (index, instance) in instances.enumerated() {
        try await consul.register(
          ConsulServiceRegistration(
            id: "greeter-\(index)",
            name: "greeter",
            address: "127.0.0.1",
            port: instance.port,
            check: .grpc("127.0.0.1:\(instance.port)", interval: .milliseconds(100), useTLS: true)
          )
        )
      }
      // Wait, through a blocking query, until the agent's checks pass for all three.
      var index: UInt64 = 0
      while true {
        let response = try await consul.healthService(
          "greeter",
          index: index > 0 ? index : nil,
          wait: .seconds(30)
        )
        index = response.index
        if response.value.count == 3 { break }
      }

      let configuration = try MeshClientConfiguration.fromEnvironment([
        "CONSUL_HTTP_ADDR": "127.0.0.1:\(agentPort)", "MESH_SERVICE_NAME": "checkout",
        "MESH_CERTS_DIR": directory.path,
      ])
      try await withMeshClient(configuration) { mesh in
        let health = Grpc_Health_V1_Health.Client(wrapping: try mesh.client(for: "greeter"))
        for _ in 0..<60 {
          _ = try await health.check(.init())
        }
      }
      #expect(instances.allSatisfy { $0.hits.value > 0 }, "\(instances.map(\.hits.value))")

      agent.beginGracefulShutdown()
      for server in servers { server.beginGracefulShutdown() }
      try await group.waitForAll()
    }
  }

  @Test(
    "An endpoint presenting another identity fails closed: it is never picked, the others serve"
  )
  func identityMismatchFailsClosed() async throws {
    let directory = try makePKI(["greeter", "impostor", "checkout"])
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let greeter = try await MeshCredentials(.directory(directory.path, service: "greeter"))
    let impostor = try await MeshCredentials(.directory(directory.path, service: "impostor"))

    try await withThrowingTaskGroup(of: Void.self) { group in
      var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
      let good1 = try await startServer(
        in: &group,
        security: try greeter.serverTransportSecurity(),
        servers: &servers
      )
      let bad = try await startServer(
        in: &group,
        security: try impostor.serverTransportSecurity(),
        servers: &servers
      )
      let good2 = try await startServer(
        in: &group,
        security: try greeter.serverTransportSecurity(),
        servers: &servers
      )
      let discovery = MeshStaticDiscovery([
        "greeter": [good1, bad, good2].map { MeshEndpoint(host: "127.0.0.1", port: $0.port) }
      ])
      var configuration = MeshClientConfiguration(discovery: discovery, policy: .roundRobin)
      configuration.tls = .init(credentials: .directory(directory.path, service: "checkout"))

      let failures = try await withMeshClient(configuration) { mesh in
        let health = Grpc_Health_V1_Health.Client(wrapping: try mesh.client(for: "greeter"))
        let transport = try #require(mesh.transport(for: "greeter"))
        await transport.waitForPickableEndpoints(2)
        #expect(Set(transport.endpoints.map(\.port)) == [good1.port, good2.port])
        var failures = 0
        var options = CallOptions.defaults
        options.waitForReady = false
        for _ in 0..<30 {
          do {
            _ = try await health.check(.init(), options: options)
          } catch let error as RPCError {
            #expect(error.code == .unavailable)
            failures += 1
          }
        }
        return failures
      }
      #expect(failures == 0, "the impostor's handshake failed, so it was never picked")
      #expect(bad.hits.value == 0, "no RPC reached the impostor")
      #expect(good1.hits.value == 15 && good2.hits.value == 15)
      for server in servers { server.beginGracefulShutdown() }
      try await group.waitForAll()
    }
  }
}
