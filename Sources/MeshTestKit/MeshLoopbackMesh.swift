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

#if Consul
  internal import Foundation
  public import GRPCCore
  internal import GRPCNIOTransportHTTP2Posix
  public import MeshClient
  public import MeshConsul
  internal import MeshConsulAgent
  internal import MeshCore
  public import MeshDiscovery
  public import MeshHealth

  /// A mesh on loopback, for testing services on the mesh end to end: the embedded
  /// Consul-compatible agent on a free port, and instances of services (grpc-swift HTTP/2 servers
  /// on `127.0.0.1`, port 0, each with a grpc.health.v1 service and a ``MeshFaultInjector``), each
  /// registered with the agent with a gRPC health check, as a service registers itself.
  ///
  /// ``clientConfiguration`` points a mesh client at the agent, so RPCs go through Consul
  /// discovery, client-side balancing and the agent's checks, as in production (plaintext: mTLS is
  /// the transport's and has tests of its own).
  ///
  /// ```swift
  /// try await withLoopbackMesh(["greeter": 3], services: { _, _ in [GreeterService()] }) { mesh in
  ///   try await withMeshClient(mesh.clientConfiguration) { client in
  ///     let greeter = Greeter.Client(wrapping: try client.client(for: "greeter"))
  ///     _ = try await greeter.sayHello(.with { $0.name = "mesh" })
  ///   }
  /// }
  /// ```
  public struct MeshLoopbackMesh: Sendable {
    /// One instance of a service.
    public struct Instance: Sendable {
      /// Its service ID in the agent (`greeter-0`) and its address.
      public var endpoint: MeshEndpoint
      /// Its service's name.
      public var service: String
      /// Its health service: set it not serving and the agent's check turns critical.
      public var health: MeshHealthService
      /// Its fault injector. It applies to the agent's health `Check` calls as to every RPC (a
      /// failing instance goes critical in the catalog); health `Watch` streams are excepted unless
      /// told otherwise.
      public var faults: MeshFaultInjector
    }

    /// The agent's port on `127.0.0.1`.
    public let agentPort: Int
    /// A client of the agent, to register more, read the catalog or put instances in maintenance.
    public let consul: ConsulClient
    /// The instances, by service, in the order started.
    public let instances: [String: [Instance]]

    /// A mesh client's configuration: Consul discovery through the agent, plaintext.
    public var clientConfiguration: MeshClientConfiguration {
      MeshClientConfiguration(consul: self.consul.configuration)
    }

    /// Waits, through a blocking query, until `count` instances of `service` pass their checks.
    public func waitUntilPassing(_ service: String, count: Int) async throws(MeshConsulError) {
      var index: UInt64?
      while true {
        let response = try await self.consul.healthService(
          service,
          query: ConsulHealthQuery(passingOnly: true),
          index: index,
          wait: .seconds(30)
        )
        if response.value.count == count { return }
        index = response.index
      }
    }
  }

  /// Runs `body` with a loopback mesh: the embedded agent, and `instances[service]` instances of
  /// each service, serving health and what `services(service, number)` makes for them, registered
  /// with gRPC checks every `checkInterval` and passing before `body` runs. Everything stops when
  /// `body` returns.
  public func withLoopbackMesh<Result: Sendable>(
    _ instances: [String: Int],
    services: @Sendable (String, Int) -> [any RegistrableRPCService] = { _, _ in [] },
    checkInterval: Duration = .milliseconds(100),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (MeshLoopbackMesh) async throws -> Result
  ) async throws -> Result {
    let agent = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: 0))
    return try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { group in
      group.addTask { try await agent.run() }
      var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
      defer {
        agent.beginGracefulShutdown()
        for server in servers { server.beginGracefulShutdown() }
      }
      let agentPort = try await agent.listeningPort
      let consul = try ConsulClient(
        ConsulClientConfiguration(address: URL(string: "http://127.0.0.1:\(agentPort)")!)
      )
      do {
        let result = try await startInstances(
          instances,
          services: services,
          checkInterval: checkInterval,
          agentPort: agentPort,
          consul: consul,
          servers: &servers,
          group: &group,
          isolation: isolation,
          body
        )
        try? await consul.shutdown()
        return result
      } catch {
        try? await consul.shutdown()
        throw error
      }
    }
  }

  /// Starts, registers and waits for the instances of a loopback mesh, then runs `body`.
  private func startInstances<Result: Sendable>(
    _ instances: [String: Int],
    services: @Sendable (String, Int) -> [any RegistrableRPCService],
    checkInterval: Duration,
    agentPort: Int,
    consul: ConsulClient,
    servers: inout [GRPCServer<HTTP2ServerTransport.Posix>],
    group: inout ThrowingTaskGroup<Void, any Error>,
    isolation: isolated (any Actor)?,
    _ body: (MeshLoopbackMesh) async throws -> Result
  ) async throws -> Result {
    var started: [String: [MeshLoopbackMesh.Instance]] = [:]
    for service in instances.keys.sorted() {
      for number in 0..<instances[service, default: 0] {
        let health = MeshHealthService()
        health.setServing()
        let faults = MeshFaultInjector()
        let transport = HTTP2ServerTransport.Posix(
          address: .ipv4(host: "127.0.0.1", port: 0),
          transportSecurity: .plaintext
        )
        let server = GRPCServer(
          transport: transport,
          services: [health] + services(service, number),
          interceptors: [faults]
        )
        servers.append(server)
        group.addTask { try await server.serve() }
        guard let port = try await transport.listeningAddress.ipv4?.port else {
          throw RPCError(
            code: .unavailable,
            message: "The instance \(service)-\(number) did not listen on IPv4."
          )
        }
        let id = "\(service)-\(number)"
        try await consul.register(
          ConsulServiceRegistration(
            id: id,
            name: service,
            address: "127.0.0.1",
            port: port,
            check: .grpc("127.0.0.1:\(port)", interval: checkInterval)
          )
        )
        started[service, default: []].append(
          MeshLoopbackMesh.Instance(
            endpoint: MeshEndpoint(id: id, host: "127.0.0.1", port: port),
            service: service,
            health: health,
            faults: faults
          )
        )
      }
    }
    let mesh = MeshLoopbackMesh(agentPort: agentPort, consul: consul, instances: started)
    for (service, list) in started {
      try await mesh.waitUntilPassing(service, count: list.count)
    }
    return try await body(mesh)
  }
#endif
