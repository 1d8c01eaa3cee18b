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
import MeshCertificates
import MeshConsul
import MeshConsulAgent
import MeshDiscovery
import MeshHealth
import MeshTransport
import Testing

/// Three real instances, the embedded agent running their gRPC health checks over mTLS, and a
/// watcher: the whole discovery path end to end.
@Suite("Discovery end to end", .timeLimit(.minutes(2)))
struct DiscoveryEndToEndTests {
  /// A throwaway mesh PKI with certificates for `services`.
  func makePKI(_ services: [String]) throws -> MeshCertificateDirectory {
    let directory = MeshCertificateDirectory(
      path: FileManager.default.temporaryDirectory.appendingPathComponent(
        "mesh-e2e-\(UUID().uuidString)"
      ).path
    )
    let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    try directory.write(authority)
    for service in services {
      try directory.write(try authority.issue(service: service))
    }
    return directory
  }

  /// Runs `count` mTLS servers of `greeter`, each with its own health servicer.
  func withInstances(
    _ count: Int,
    credentials: MeshCredentials,
    _ body: ([(port: Int, health: MeshHealthService)]) async throws -> Void
  ) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var instances: [(port: Int, health: MeshHealthService)] = []
      var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
      for _ in 0..<count {
        let health = MeshHealthService()
        health.setServing(service: "greeter")
        let transport = HTTP2ServerTransport.Posix(
          address: .ipv4(host: "127.0.0.1", port: 0),
          transportSecurity: try credentials.serverTransportSecurity(),
          config: credentials.serverConfig()
        )
        let server = GRPCServer(transport: transport, services: [health])
        group.addTask { try await server.serve() }
        let port = try #require(try await transport.listeningAddress.ipv4?.port)
        instances.append((port, health))
        servers.append(server)
      }
      try await body(instances)
      for server in servers {
        server.beginGracefulShutdown()
      }
      try await group.waitForAll()
    }
  }

  @Test("An instance that turns NOT_SERVING leaves the passing set at its next check, and returns")
  func notServingLeavesAndReturns() async throws {
    let pki = try self.makePKI(["greeter", "consul-agent"])
    defer { try? FileManager.default.removeItem(atPath: pki.path) }
    let greeter = try await MeshCredentials(.directory(pki.path, service: "greeter"))
    let agentIdentity = try await MeshCredentials(.directory(pki.path, service: "consul-agent"))
    let interval = Duration.milliseconds(200)

    try await self.withInstances(3, credentials: greeter) { instances in
      try await withAgent(
        configuration: MeshConsulAgentConfiguration(port: 0, checkCredentials: agentIdentity)
      ) { agent, client in
        for (index, instance) in instances.enumerated() {
          try await client.register(
            ConsulServiceRegistration(
              id: "greeter-\(index)",
              name: "greeter",
              address: "127.0.0.1",
              port: instance.port,
              check: .grpc(
                "127.0.0.1:\(instance.port)/greeter",
                interval: interval,
                timeout: .seconds(5),
                useTLS: true,
                tlsServerName: "greeter"
              )
            )
          )
        }
        let discovery = ConsulDiscovery(
          client: client,
          configuration: .init(refillInterval: .milliseconds(10))
        )
        var updates = discovery.watch("greeter").makeAsyncIterator()

        // Checks start critical; the agent's first probes bring all three in.
        func next(until done: (MeshEndpointSet) -> Bool) async throws -> MeshEndpointSet {
          while let set = try await updates.next() {
            if done(set) { return set }
          }
          throw CancellationError()
        }
        let all = try await next { $0.endpoints.count == 3 }
        #expect(Set(all.endpoints.map(\.port)) == Set(instances.map(\.port)))

        instances[1].health.setNotServing(service: "greeter")
        let degraded = try await next { $0.endpoints.count == 2 }
        #expect(!degraded.endpoints.contains { $0.id == "greeter-1" })
        let output = agent.withState { $0.checks["service:greeter-1"]?.health.output }
        #expect(output == "gRPC 127.0.0.1:\(instances[1].port)/greeter serving status: NOT_SERVING")

        instances[1].health.setServing(service: "greeter")
        let recovered = try await next { $0.endpoints.count == 3 }
        #expect(recovered.endpoints.contains { $0.id == "greeter-1" })
        let passing = agent.withState { $0.checks["service:greeter-1"]?.health.output }
        #expect(passing == "gRPC check 127.0.0.1:\(instances[1].port)/greeter: success")
      }
    }
  }

  @Test("HTTPS to the agent, verified with a CA bundle; refused without it")
  func https() async throws {
    let directory = MeshCertificateDirectory(
      path: FileManager.default.temporaryDirectory.appendingPathComponent(
        "mesh-https-\(UUID().uuidString)"
      ).path
    )
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    try directory.write(authority)
    try directory.write(try authority.issue(service: "consul", ipAddresses: ["127.0.0.1"]))
    var configuration = MeshConsulAgentConfiguration(port: 0)
    configuration.httpsCredentials = try await MeshCredentials(
      .directory(directory.path, service: "consul")
    )
    let agent = MeshConsulAgent(configuration: configuration)

    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await agent.run() }
      let port = try await agent.listeningPort
      let env = ["CONSUL_HTTP_ADDR": "127.0.0.1:\(port)", "CONSUL_HTTP_SSL": "true"]

      let verified = try ConsulClient(
        try .fromEnvironment(env.merging(["CONSUL_CACERT": directory.caCertificatePath]) { $1 })
      )
      try await verified.register(ConsulServiceRegistration(id: "s1", name: "svc", port: 1))
      #expect(try await verified.catalogService("svc").value.map(\.serviceID) == ["s1"])
      try await verified.shutdown()

      // Without the mesh CA the agent's certificate is not trusted.
      var unverifiedConfiguration = try ConsulClientConfiguration.fromEnvironment(env)
      unverifiedConfiguration.requestTimeout = .milliseconds(500)
      let unverified = try ConsulClient(unverifiedConfiguration)
      await #expect(throws: MeshConsulError.self) { try await unverified.catalogServices() }
      try await unverified.shutdown()

      agent.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("A gRPC check refuses an instance whose certificate names another service")
  func checkVerifiesIdentity() async throws {
    let pki = try self.makePKI(["greeter", "impostor", "consul-agent"])
    defer { try? FileManager.default.removeItem(atPath: pki.path) }
    let impostor = try await MeshCredentials(.directory(pki.path, service: "impostor"))
    let agentIdentity = try await MeshCredentials(.directory(pki.path, service: "consul-agent"))

    try await self.withInstances(1, credentials: impostor) { instances in
      try await withAgent(
        configuration: MeshConsulAgentConfiguration(port: 0, checkCredentials: agentIdentity)
      ) { agent, client in
        try await client.register(
          ConsulServiceRegistration(
            id: "greeter-0",
            name: "greeter",
            address: "127.0.0.1",
            port: instances[0].port,
            check: .grpc(
              "127.0.0.1:\(instances[0].port)/greeter",
              interval: .milliseconds(100),
              useTLS: true,
              tlsServerName: "greeter"
            )
          )
        )
        // Wait for the first probe's verdict: the check's output changes from empty.
        var index = try await client.healthService("greeter", query: .init(passingOnly: false))
          .index
        var output = ""
        while output.isEmpty {
          let response = try await client.healthService(
            "greeter",
            query: .init(passingOnly: false),
            index: index,
            wait: .seconds(30)
          )
          index = response.index
          output =
            response.value.first?.checks.first { $0.checkID == "service:greeter-0" }?.output ?? ""
        }
        #expect(agent.withState { $0.checks["service:greeter-0"]?.health.status } == .critical)
        #expect(agentIdentity.lastVerificationFailure?.code == .identityMismatch)
      }
    }
  }
}
