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

internal import CoreMetrics
public import GRPCCore
public import Logging
internal import MeshCore
internal import MeshDiscovery
public import MeshTransport
public import ServiceLifecycle

#if Consul
  internal import MeshConsul
#endif
#if Admin
  public import MeshAdmin
#endif
#if Native
  internal import MeshNativeTransport
#endif

/// A target's balancing transport in a mesh client: over ``MeshSubchannel``s (erased, so that
/// its RPCs run in code compiled for its types: `MeshAnySubchannelFactory`), on the continuous
/// clock.
public typealias MeshClientBalancingTransport = MeshBalancingTransport<
  MeshAnySubchannelFactory, ContinuousClock
>

/// The gRPC client a mesh client hands out: a `GRPCClient` over a handle on the target's
/// balancing transport (one per target, shared by every client of it).
public typealias MeshGRPCClient = GRPCClient<
  MeshTargetTransport<MeshAnySubchannelFactory, ContinuousClock>
>

/// Calls services by name: discovers their instances, secures every connection with mTLS and
/// the target's identity, and spreads RPCs over the healthy instances.
///
/// ```swift
/// try await withMeshClient { mesh in
///   let greeter = Greeter.Client(wrapping: try mesh.client(for: "greeter", timeout: .seconds(10)))
///   let reply = try await greeter.sayHello(.with { $0.name = "mesh" })
/// }
/// ```
///
/// ``client(for:timeout:)`` returns the same client for the same target and timeout; the clients
/// of one target share its balancing transport (one discovery watch, one pool of connections and
/// health streams), each with its own default timeout. Clients
/// run inside ``run()`` (which ``withMeshClient(_:logger:_:)`` and the `Service` conformance
/// do for you) until ``beginGracefulShutdown()``, which lets RPCs in flight finish; cancelling
/// ``run()`` is the hard stop.
public final class MeshClient: Sendable {
  public let configuration: MeshClientConfiguration
  private let logger: Logger
  private let credentials: MeshCredentials?
  /// The configured discovery, or Consul's.
  private let discovery: any MeshDiscovery
  #if Consul
    /// The Consul client behind ``discovery`` when the configuration names none.
    private let consul: ConsulClient?
  #endif
  private let state = MeshMutex(State())
  private let events: AsyncStream<Event>
  private let eventSink: AsyncStream<Event>.Continuation
  /// Fired at shutdown: ends certificate rotation without cancelling the draining clients.
  private let shutdown = MeshSignal()
  /// Where the clients' metrics go: the configured factory, the admin endpoint's registry, or
  /// (nil) swift-metrics' bootstrapped factory.
  private let metrics: (any MetricsFactory)?
  #if Admin
    /// The admin endpoint, when ``MeshClientConfiguration/admin`` is set: it runs with the
    /// client and shows it.
    public let admin: MeshAdmin?
  #endif

  private struct State {
    var clients: [ClientKey: MeshGRPCClient] = [:]
    var handles: [ClientKey: MeshTargetTransport<MeshAnySubchannelFactory, ContinuousClock>] =
      [:]
    /// One balancing transport per target.
    var transports: [String: MeshClientBalancingTransport] = [:]
    var isShutDown = false
  }

  private struct ClientKey: Hashable {
    var target: String
    var timeout: Duration?
  }

  private enum Event: Sendable {
    case run(MeshGRPCClient)
    case runTransport(MeshClientBalancingTransport)
    case shutdown
  }

  /// Loads the credentials (for mTLS) and prepares discovery.
  ///
  /// - Throws: ``MeshTLSError`` for bad certificates, ``MeshConsulError`` for an unusable Consul
  ///   address, ``MeshBalancingError`` for invalid policies, ``MeshResilienceError`` (naming the
  ///   field) for invalid resilience settings.
  public init(
    configuration: MeshClientConfiguration,
    logger: Logger = Logger(label: "mesh.client", factory: { _ in SwiftLogNoOpLogHandler() })
  ) async throws {
    try configuration.policy.validate()
    try configuration.resilience.validate()
    for target in configuration.targets.values {
      try target.policy?.validate()
      try target.resilience?.validate()
    }
    try configuration.validate()
    #if Native
      // The native transport has settings of its own; grpc-swift's would be silently ignored.
      if case .native = configuration.transportKind {
        let named =
          configuration.transport != nil
          ? "transport"
          : configuration.targets.keys.sorted().first {
            configuration.targets[$0]?.transport != nil
          }
          .map { "targets.\($0).transport" }
        if let named {
          throw MeshClientError(
            code: .invalidConfiguration,
            message: "The native transport does not take grpc-swift's "
              + "transport settings (\(named)): unset them, or choose grpc-swift's transport "
              + "(transportKind .nio, MESH_TRANSPORT=nio; the native one is the default)."
          )
        }
      }
    #endif
    #if Admin
      var logger = logger
      if let settings = configuration.admin {
        // `/logging` sets the client's level; `/metrics` serves its metrics unless they go to a
        // factory of the application's.
        let admin = try MeshAdmin(configuration: settings, controlling: &logger)
        self.admin = admin
        self.metrics = configuration.metrics ?? admin.metricsFactory
      } else {
        self.admin = nil
        self.metrics = configuration.metrics
      }
    #else
      self.metrics = configuration.metrics
    #endif
    self.configuration = configuration
    self.logger = logger
    if let tls = configuration.tls {
      self.credentials = try await MeshCredentials(tls.credentials, logger: logger)
    } else {
      self.credentials = nil
      logger.warning("The mesh client is configured without TLS: connections are plaintext")
    }
    if let discovery = configuration.discovery {
      self.discovery = discovery
      #if Consul
        self.consul = nil
      #endif
    } else {
      #if Consul
        let consul = try ConsulClient(configuration.consul)
        self.consul = consul
        self.discovery = ConsulDiscovery(client: consul, logger: logger)
      #else
        throw MeshClientError(
          code: .invalidConfiguration,
          message: "No discovery is configured, and this build has no Consul discovery (the "
            + "package's Consul trait is off): set MeshClientConfiguration.discovery."
        )
      #endif
    }
    (self.events, self.eventSink) = AsyncStream.makeStream(of: Event.self)
  }

  /// A client of `target`, for a generated client to wrap; the same one for the same target and
  /// timeout.
  ///
  /// - Parameters:
  ///   - target: The target service's name in discovery.
  ///   - timeout: The default timeout of its RPCs (the call's own timeout wins); nil uses the
  ///     target's or the client's configured default.
  /// - Throws: ``MeshClientError`` after shutdown; typed errors for bad settings.
  public func client(for target: String, timeout: Duration? = nil) throws -> MeshGRPCClient {
    let key = ClientKey(target: target, timeout: timeout)
    if let client = self.state.withLock({ $0.clients[key] }) {
      return client
    }
    let handle = MeshTargetTransport(
      base: try self.transport(making: target),
      defaultTimeout: timeout
    )
    let created = GRPCClient(transport: handle)
    let client = try self.state.withLock { state throws(MeshClientError) -> MeshGRPCClient in
      guard !state.isShutDown else {
        throw MeshClientError.shutDown
      }
      if let existing = state.clients[key] { return existing }  // another caller won the race
      state.clients[key] = created
      state.handles[key] = handle
      self.eventSink.yield(.run(created))
      return created
    }
    return client
  }

  /// The target's balancing transport, made (and run) at its first client.
  private func transport(making target: String) throws -> MeshClientBalancingTransport {
    if let transport = self.state.withLock({ $0.transports[target] }) {
      return transport
    }
    let settings = self.configuration.targets[target]
    let factory = try self.subchannelFactory(for: target, settings: settings)
    let transport = try MeshBalancingTransport(
      service: target,
      discovery: self.discovery,
      factory: MeshAnySubchannelFactory(factory),
      configuration: self.configuration.balancing(for: target),
      metrics: self.metrics,
      tracer: self.configuration.tracer,
      logger: self.logger
    )
    return try self.state.withLock { state throws(MeshClientError) in
      guard !state.isShutDown else {
        throw MeshClientError.shutDown
      }
      if let existing = state.transports[target] { return existing }  // another caller won
      state.transports[target] = transport
      self.eventSink.yield(.runTransport(transport))
      return transport
    }
  }

  /// The resilience gauges and counters of calls to `target` (all its clients), or nil before
  /// ``client(for:timeout:)`` made one.
  public func stats(for target: String) -> MeshTransportStats? {
    self.transport(for: target)?.stats
  }

  /// The balancing transport the clients of `target` share, once made.
  package func transport(for target: String) -> MeshClientBalancingTransport? {
    self.state.withLock { $0.transports[target] }
  }

  /// The transport handle of ``client(for:timeout:)``'s client, once made.
  package func handle(
    for target: String,
    timeout: Duration? = nil
  ) -> MeshTargetTransport<MeshAnySubchannelFactory, ContinuousClock>? {
    self.state.withLock { $0.handles[ClientKey(target: target, timeout: timeout)] }
  }

  private func subchannelFactory(
    for target: String,
    settings: MeshClientConfiguration.Target?
  ) throws -> MeshClientSubchannelFactory {
    let config = settings?.transport ?? self.configuration.transport
    var server: MeshIdentityPolicy?
    if self.credentials != nil, let tls = self.configuration.tls {
      server = .oneOf(
        try settings?.identities
          ?? [
            .spiffe(trustDomain: tls.trustDomain, namespace: tls.namespace, service: target),
            .dns(target),
          ]
      )
    }
    switch self.configuration.transportKind {
    case .nio:
      guard let credentials = self.credentials, let server else {
        return .nio(.plaintext(config: config))
      }
      return .nio(try .mTLS(credentials, server: server, config: config))
    #if Native
      case .native(var nativeSettings):
        guard let credentials = self.credentials, let server else {
          return .native(tls: nil, settings: nativeSettings)
        }
        // As on the NIO path: the TLS configuration's HTTP/2 tuning (where it departs from its
        // defaults) and keepalive (unless the settings have one).
        nativeSettings = nativeSettings.tuned(by: credentials.configuration.http2)
        if nativeSettings.keepalive == nil {
          let keepalive = credentials.configuration.keepalive
          nativeSettings.keepalive = .init(
            interval: keepalive.clientPingInterval,
            timeout: keepalive.pingTimeout,
            withoutCalls: keepalive.pingWithoutCalls
          )
        }
        return .native(tls: try .mTLS(credentials, peers: server), settings: nativeSettings)
    #endif
    }
  }

  /// Runs the clients (and certificate rotation) until ``beginGracefulShutdown()``, or until a
  /// swift-service-lifecycle `ServiceGroup` running it shuts down gracefully.
  public func run() async throws {
    #if Admin
      // Stopped once the clients have drained.
      let admin = self.admin?.start(showing: self)
    #endif
    await withGracefulShutdownHandler {
      await self.runUntilShutdown()
    } onGracefulShutdown: {
      self.beginGracefulShutdown()
    }
    #if Admin
      await admin?.stop(logger: self.logger)
    #endif
  }

  private func runUntilShutdown() async {
    await withDiscardingTaskGroup { group in
      if let credentials = self.credentials {
        group.addTask {
          await withTaskGroup(of: Void.self) { rotation in
            rotation.addTask { try? await credentials.run() }
            let metrics = self.metrics ?? MetricsSystem.factory
            if !(metrics is NOOPMetricsHandler) {
              // The certificate's expiry, as a gauge: read once a second, rotation included.
              let gauge = MeshCertificateGauge(credentials: credentials, factory: metrics)
              rotation.addTask {
                await meshRepeat(every: .seconds(1), on: ContinuousClock()) { gauge.record() }
              }
            }
            await self.shutdown.wait()
            rotation.cancelAll()
          }
        }
      }
      for await event in self.events {
        switch event {
        case .run(let client):
          group.addTask { try? await client.runConnections() }
        case .runTransport(let transport):
          group.addTask { try? await transport.connect() }
        case .shutdown:
          let (clients, transports) = self.state.withLock { state in
            state.isShutDown = true
            return (Array(state.clients.values), Array(state.transports.values))
          }
          for client in clients {
            client.beginGracefulShutdown()
          }
          for transport in transports {
            transport.beginGracefulShutdown()
          }
          self.eventSink.finish()
          self.shutdown.fire()  // rotation stops; the clients drain their RPCs and return

        }
      }
    }
    #if Consul
      try? await self.consul?.shutdown()
    #endif
  }

  /// Stops handing out clients and lets every client finish its RPCs in flight.
  public func beginGracefulShutdown() {
    self.eventSink.yield(.shutdown)
  }
}

extension MeshClient: Service {}

#if Admin
  extension MeshClient: MeshAdminSource {
    public var adminSection: String { "client" }

    public func adminClusters() -> [MeshAdminCluster] {
      let transports = self.state.withLock { $0.transports }
      return transports.keys.sorted().compactMap { transports[$0].map(MeshAdminCluster.init) }
    }

    public var adminConfiguration: any Sendable { self.configuration }

    public var adminCredentials: MeshCredentials? { self.credentials }

    public func adminUnreadyReason() -> String? {
      self.state.withLock { $0.isShutDown } ? "shut down" : nil
    }

    public func recordAdminMetrics() {
      let transports = self.state.withLock { Array($0.transports.values) }
      for transport in transports { transport.recordMetrics() }
    }
  }
#endif

/// Creates a mesh client; run it with ``MeshClient/run()`` (or in a `ServiceGroup`).
///
/// With no configuration, it is read from the environment (``MeshClientConfiguration/fromEnvironment(_:)``).
public func createMeshClient(
  _ configuration: MeshClientConfiguration? = nil,
  logger: Logger = Logger(label: "mesh.client", factory: { _ in SwiftLogNoOpLogHandler() })
) async throws -> MeshClient {
  try await MeshClient(configuration: configuration ?? .fromEnvironment(), logger: logger)
}

/// Runs `body` with a running mesh client, then shuts it down gracefully.
public func withMeshClient<Result: Sendable>(
  _ configuration: MeshClientConfiguration? = nil,
  logger: Logger = Logger(label: "mesh.client", factory: { _ in SwiftLogNoOpLogHandler() }),
  isolation: isolated (any Actor)? = #isolation,
  _ body: (MeshClient) async throws -> Result
) async throws -> Result {
  let mesh = try await createMeshClient(configuration, logger: logger)
  return try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { group in
    group.addTask { try await mesh.run() }
    do {
      let result = try await body(mesh)
      mesh.beginGracefulShutdown()
      try await group.waitForAll()
      return result
    } catch {
      mesh.beginGracefulShutdown()
      try? await group.waitForAll()
      throw error
    }
  }
}

extension MeshClientError {
  /// A client asked of a mesh client that shut down.
  static let shutDown = MeshClientError(
    code: .shutDown,
    message: "The mesh client is shut down; no new clients."
  )
}
