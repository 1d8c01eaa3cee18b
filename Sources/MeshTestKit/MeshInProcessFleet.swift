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

public import GRPCCore
public import GRPCInProcessTransport
internal import MeshCore
public import MeshDiscovery
public import MeshHealth
public import MeshTransport

/// Endpoints served in process, on grpc-swift's in-process transport: the mesh's balancing,
/// health checking and resilience over real gRPC servers, without sockets.
///
/// grpc-swift's in-process server does not cancel a handler when its client goes away, so a
/// ``MeshFaultInjector`` `.hang` ends only when the fleet stops (count calls, not cancellations).
///
/// Each endpoint is a `GRPCServer` with a grpc.health.v1 service (serving), the services the
/// test gives, and a MeshFaultInjector of its own. factory makes the subchannels a
/// `MeshBalancingTransport` reaches them through (by endpoint ID), so a test drives the
/// transport on a MeshManualClock:
///
/// ```swift
/// try await withInProcessFleet(["a", "b"]) { fleet in
///   let transport = try MeshBalancingTransport(
///     service: "greeter", discovery: MeshStaticDiscovery(["greeter": fleet.endpoints]),
///     factory: fleet.factory, clock: MeshManualClock())
///   fleet.faults(of: "a").set(.hang)
///   // ...
/// }
/// ```
public struct MeshInProcessFleet: Sendable {
  /// One endpoint of the fleet.
  public struct Member: Sendable {
    /// The endpoint as discovery lists it (host `in-process`, a port from 1).
    public var endpoint: MeshEndpoint
    /// Its health service: set it not serving to take the endpoint out of health checking.
    public var health: MeshHealthService
    /// Its fault injector (health `Watch` streams excepted unless told otherwise).
    public var faults: MeshFaultInjector
    let transport: InProcessTransport
  }

  /// The members, in the order given.
  public let members: [Member]

  /// The endpoints, for a discovery to list.
  public var endpoints: [MeshEndpoint] { self.members.map(\.endpoint) }

  /// Subchannels to the members, by endpoint ID.
  public var factory: MeshInProcessSubchannelFactory {
    MeshInProcessSubchannelFactory(
      clients: Dictionary(
        uniqueKeysWithValues: self.members.map { ($0.endpoint.id, $0.transport.client) }
      )
    )
  }

  /// The member with endpoint ID `id`.
  public func member(_ id: String) -> Member? {
    self.members.first { $0.endpoint.id == id }
  }

  /// The fault injector of `id` (a test error if there is no such member).
  public func faults(of id: String) -> MeshFaultInjector {
    guard let member = self.member(id) else {
      preconditionFailure("No member '\(id)' in the fleet: \(self.endpoints.map(\.id))")
    }
    return member.faults
  }
}

/// Runs `body` with in-process endpoints named `ids`, each serving health (serving) and the
/// services `services` makes for it; stops them when `body` returns.
public func withInProcessFleet<Result: Sendable>(
  _ ids: [String],
  services: @Sendable (String) -> [any RegistrableRPCService] = { _ in [] },
  isolation: isolated (any Actor)? = #isolation,
  _ body: (MeshInProcessFleet) async throws -> Result
) async throws -> Result {
  var members: [MeshInProcessFleet.Member] = []
  var servers: [GRPCServer<InProcessTransport.Server>] = []
  for (index, id) in ids.enumerated() {
    let health = MeshHealthService()
    health.setServing()
    let faults = MeshFaultInjector()
    let transport = InProcessTransport()
    servers.append(
      GRPCServer(
        transport: transport.server,
        services: [health] + services(id),
        interceptors: [faults]
      )
    )
    members.append(
      MeshInProcessFleet.Member(
        endpoint: MeshEndpoint(id: id, host: "in-process", port: index + 1),
        health: health,
        faults: faults,
        transport: transport
      )
    )
  }
  let fleet = MeshInProcessFleet(members: members)
  return try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { group in
    for server in servers {
      group.addTask { try await server.serve() }
    }
    for member in members {
      let client = member.transport.client
      group.addTask { try await client.connect() }
    }
    defer {
      // An in-process server never cancels its handlers: hanging faults end here.
      for member in members { member.faults.releaseHanging() }
      for server in servers { server.beginGracefulShutdown() }
      for member in members { member.transport.client.beginGracefulShutdown() }
    }
    return try await body(fleet)
  }
}

/// Subchannels to in-process endpoints (a MeshInProcessFleet's), by endpoint ID. Every
/// subchannel of an endpoint shares its in-process connection, which the fleet runs.
public struct MeshInProcessSubchannelFactory: MeshSubchannelFactory {
  let clients: [String: InProcessTransport.Client]

  /// The endpoint is not in the fleet.
  public struct UnknownEndpoint: Error, CustomStringConvertible {
    /// The endpoint asked for.
    public var endpoint: MeshEndpoint
    public var description: String { "No in-process endpoint '\(self.endpoint.id)'." }
  }

  public func makeSubchannel(for endpoint: MeshEndpoint) throws -> MeshInProcessSubchannel {
    guard let client = self.clients[endpoint.id] else { throw UnknownEndpoint(endpoint: endpoint) }
    return MeshInProcessSubchannel(client: client)
  }
}

/// A subchannel on an in-process endpoint's shared connection: running it waits until it is shut
/// down; its streams go to the shared connection.
public struct MeshInProcessSubchannel: ClientTransport {
  public typealias Bytes = InProcessTransport.Client.Bytes

  let client: InProcessTransport.Client
  private let stopped = MeshSignal()

  init(client: InProcessTransport.Client) {
    self.client = client
  }

  public var retryThrottle: RetryThrottle? { nil }

  public func connect() async throws {
    await self.stopped.wait()
  }

  public func beginGracefulShutdown() {
    self.stopped.fire()
  }

  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    nil
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    try await self.client.withStream(descriptor: descriptor, options: options, closure)
  }
}
