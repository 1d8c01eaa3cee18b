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
internal import Foundation
public import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
public import Logging
internal import MeshCore
public import MeshHealth
internal import MeshIdentity
public import MeshTransport
public import ServiceLifecycle
internal import Tracing

#if Consul
  internal import MeshConsul
#endif
#if Admin
  public import MeshAdmin
#endif
#if Native
  internal import MeshNativeTransport
#endif

/// A service's gRPC server in the mesh: mTLS from the mesh credentials (rotated while it runs),
/// the grpc.health.v1 service, the caller's identity and deadline propagation for every handler,
/// registration in Consul with a gRPC check, and a graceful drain.
///
/// ```swift
/// try await withMeshServer(.fromEnvironment(), services: [OrdersService()]) { server in
///   // serving; registered; drains on SIGTERM under a ServiceGroup, or when `body` returns
/// }
/// ```
///
/// ``run()`` binds, marks every served service (and `""`) SERVING in ``health``, registers the
/// instance, then serves until ``beginGracefulShutdown()`` (or ServiceLifecycle's graceful
/// shutdown), which drains in order: health NOT_SERVING (clients with health checking stop
/// picking it at once), deregistration (Consul discovery drops it), the drain delay (while
/// clients catch up), GOAWAY (new RPCs go elsewhere), then up to the grace period for RPCs in
/// flight, which are cancelled past it. Cancelling ``run()`` is the hard stop.
public final class MeshServer: Service, Sendable {
  /// The configuration the server was made with.
  public let configuration: MeshServerConfiguration
  /// The health service: every served service and `""` turn SERVING once the server listens,
  /// NOT_SERVING when it drains. A handler may set its own service NOT_SERVING meanwhile.
  public let health: MeshHealthService
  /// The credentials (mTLS), or nil (plaintext).
  public let credentials: MeshCredentials?

  private let transport: MeshServerListener
  private let server: GRPCServer<MeshServerMetricsTransport<MeshServerListener>>
  /// The fully qualified names of the served services, for the health service.
  private let servedServices: [String]
  private let clock: any Clock<Duration>
  private let logger: Logger
  private let shutdownRequested = MeshSignal()
  /// The bound port once the server serves (health SERVING, registration started), or why it
  /// could not start.
  private let started = MeshMutex<Result<Int, any Error>?>(nil)
  /// Fired once ``started`` is set.
  private let startedSettled = MeshSignal()
  /// The sampled gauges (health, certificate expiry); nil when no metrics backend records.
  private let gauges: MeshServerGauges?
  /// The Consul intentions calls are decided by, when
  /// ``MeshServerConfiguration/intentions`` is set (nil otherwise).
  public let intentions: MeshIntentions?
  #if Admin
    /// The admin endpoint, when ``MeshServerConfiguration/admin`` is set: it runs with the
    /// server and shows it. A process with a `MeshClient` too shows it here with
    /// `admin.add(client)`.
    public let admin: MeshAdmin?
  #endif

  /// Loads the credentials and prepares the server; nothing is bound until ``run()``.
  ///
  /// - Parameters:
  ///   - services: The services to serve (the health service is added).
  ///   - interceptors: Interceptors after the mesh's own (metrics, authorization, the caller's
  ///     identity, deadline propagation), in order.
  ///   - clock: The clock of the drain delay and the grace period.
  /// - Throws: ``MeshServerError`` for a bad setting, `MeshTLSError` for bad certificates,
  ///   `MeshConsulError` for an unusable Consul address.
  public init(
    configuration: MeshServerConfiguration,
    services: [any RegistrableRPCService],
    interceptors: [any ServerInterceptor] = [],
    clock: any Clock<Duration> = ContinuousClock(),
    logger: Logger = Logger(label: "mesh.server", factory: { _ in SwiftLogNoOpLogHandler() })
  ) async throws {
    try configuration.validate()
    var configuration = configuration
    var logger = logger
    #if Admin
      self.admin = try Self.makeAdmin(&configuration, logger: &logger)
    #else
      Self.makeAdmin(&configuration, logger: &logger)
    #endif
    self.configuration = configuration
    self.clock = clock
    self.logger = logger
    let credentials: MeshCredentials?
    if let tls = configuration.tls {
      credentials = try await MeshCredentials(tls.credentials, logger: logger)
    } else {
      credentials = nil
      logger.warning("The mesh server is configured without TLS: connections are plaintext")
    }
    self.credentials = credentials
    let transport = try Self.makeListener(configuration, credentials: credentials)
    self.transport = transport
    // Until it listens, nothing is SERVING.
    let health = MeshHealthService()
    health.setNotServing()
    self.health = health
    let metrics = configuration.metrics ?? MetricsSystem.factory
    self.gauges =
      metrics is NOOPMetricsHandler
      ? nil : MeshServerGauges(health: health, credentials: credentials, factory: metrics)
    var router = RPCRouter<MeshServerListener>()
    for service in services { service.registerMethods(with: &router) }
    self.servedServices = Array(Set(router.methods.map(\.service.fullyQualifiedService))).sorted()
    health.registerMethods(with: &router)
    let methods = router.methods
    #if Consul
      // A bad Consul address or CA bundle fails here. The clients run() uses are made by the
      // tasks that use them, which shut them down: a client of HTTPS Consul owns an HTTP client,
      // and one dropped unshut traps in a debug build.
      for consul in [configuration.registration?.consul, configuration.intentions?.consul] {
        if let consul { try await ConsulClient(consul).shutdown() }
      }
      let intentions = configuration.intentions.map { _ in MeshIntentions() }
    #else
      let intentions: MeshIntentions? = nil
    #endif
    self.intentions = intentions
    self.server = GRPCServer(
      // Message sizes and calls to unknown methods, which interceptors do not see.
      transport: MeshServerMetricsTransport(wrapping: transport, factory: metrics),
      services: services + [health],
      interceptors: Self.meshInterceptors(
        configuration,
        methods: methods,
        intentions: intentions,
        logger: logger
      ) + interceptors
    )
  }

  /// The mesh's interceptors, outermost first: metrics, authorization (before any handler code),
  /// the caller's identity, deadline propagation.
  private static func meshInterceptors(
    _ configuration: MeshServerConfiguration,
    methods: [MethodDescriptor],
    intentions: MeshIntentions?,
    logger: Logger
  ) -> [any ServerInterceptor] {
    // Tracing, then metrics, outermost: calls the authorization denies are traced and counted.
    var interceptors: [any ServerInterceptor] = []
    let tracer = configuration.tracer ?? InstrumentationSystem.tracer
    if !(tracer is NoOpTracer) {
      interceptors.append(MeshServerTracingInterceptor(tracer: tracer))
    }
    interceptors.append(
      MeshServerMetricsInterceptor(
        factory: configuration.metrics ?? MetricsSystem.factory,
        methods: methods
      )
    )
    var audit = logger
    audit[metadataKey: "mesh.service"] = "\(configuration.serviceName)"
    if let intentions {
      interceptors.append(
        MeshAuthorizationInterceptor(
          intentions: intentions,
          audit: audit,
          auditAllowedShare: configuration.auditAllowedShare,
          metrics: configuration.metrics
        )
      )
    }
    if var policy = configuration.authorization {
      // Consul's gRPC checks and the clients' health checking call the health service with
      // their own identities: it stays open to every verified caller unless a rule denies it.
      policy.rules.append(
        MeshAuthorizationPolicy.Rule(
          source: .any,
          destination: .service("grpc.health.v1.Health"),
          action: .allow,
          name: "health is open to the mesh"
        )
      )
      interceptors.append(
        MeshAuthorizationInterceptor(
          policy: policy,
          audit: audit,
          auditAllowedShare: configuration.auditAllowedShare,
          metrics: configuration.metrics
        )
      )
    }
    return interceptors + [MeshCallerInterceptor(), MeshDeadlinePropagationInterceptor()]
  }

  /// The transport `configuration.transportKind` names, secured by `credentials` (mTLS) if any.
  private static func makeListener(
    _ configuration: MeshServerConfiguration,
    credentials: MeshCredentials?
  ) throws -> MeshServerListener {
    let host = try MeshHost(configuration.host, field: "host")
    switch configuration.transportKind {
    case .nio:
      let security: HTTP2ServerTransport.Posix.TransportSecurity =
        if let credentials, let tls = configuration.tls {
          try credentials.serverTransportSecurity(clients: tls.clients)
        } else {
          .plaintext
        }
      let address: GRPCNIOTransportCore.SocketAddress =
        if case .ipv6(let text) = host {
          .ipv6(host: text, port: configuration.port)
        } else {
          .ipv4(host: host.text, port: configuration.port)
        }
      return .nio(
        HTTP2ServerTransport.Posix(
          address: address,
          transportSecurity: security,
          config: Self.transportConfig(configuration, credentials: credentials)
        )
      )
    #if Native
      case .native(var settings):
        let connections = configuration.connections
        if configuration.transport != nil {
          throw MeshServerError(
            code: .invalidConfiguration,
            message: "The native transport does not take grpc-swift's "
              + "transport settings (transport): unset them, or choose grpc-swift's transport "
              + "(transportKind .nio, MESH_TRANSPORT=nio; the native one is the default)."
          )
        }
        // The TLS configuration's HTTP/2 tuning (where it departs from its defaults), then the
        // server's connection policy, as on the NIO path; the native settings' own limits
        // stay where `connections` has none.
        if let credentials { settings = settings.tuned(by: credentials.configuration.http2) }
        settings.maxConcurrentStreams = connections.maxConcurrentStreams
        if let idle = connections.maxIdleTime { settings.maxConnectionIdle = idle }
        // ±10 %, drawn once per server: a fleet's connections don't all age out together.
        if let age = connections.maxAge {
          settings.maxConnectionAge = age * Double.random(in: 0.9...1.1)
        }
        if let grace = connections.maxAgeGrace { settings.maxConnectionAgeGrace = grace }
        // The pings clients may send, from the TLS configuration's keepalive, as on the NIO path.
        if let credentials {
          let keepalive = credentials.configuration.keepalive
          settings.permittedPings = .init(
            minInterval: keepalive.serverMinimumPingInterval,
            withoutCalls: keepalive.pingWithoutCalls
          )
        }
        let security: MeshNativeTransportSecurity =
          if let credentials, let tls = configuration.tls {
            .mTLS(try .mTLS(credentials, peers: tls.clients))
          } else {
            .plaintext
          }
        do {
          return .native(
            try MeshNativeServerTransport(
              host: host.text,
              port: configuration.port,
              security: security,
              settings: settings,
              maxRequestMessageBytes: connections.maxRequestMessageBytes
            )
          )
        } catch {
          throw MeshServerError(
            code: .invalidConfiguration,
            message: "The native transport's settings: \(error)",
            cause: error
          )
        }
    #endif
    }
  }

  /// grpc-swift's settings: the configuration's own, or the TLS tuning (or grpc-swift's
  /// defaults) with ``MeshServerConfiguration/connections`` applied.
  private static func transportConfig(
    _ configuration: MeshServerConfiguration,
    credentials: MeshCredentials?
  ) -> HTTP2ServerTransport.Posix.Config {
    if let config = configuration.transport { return config }
    var config = credentials?.serverConfig() ?? .defaults
    let connections = configuration.connections
    config.http2.maxConcurrentStreams = connections.maxConcurrentStreams
    config.connection.maxIdleTime = connections.maxIdleTime
    // ±10 %, drawn once per server: a fleet's connections don't all age out together.
    config.connection.maxAge = connections.maxAge.map { $0 * Double.random(in: 0.9...1.1) }
    config.connection.maxGraceTime = connections.maxAgeGrace
    config.rpc.maxRequestPayloadSize = connections.maxRequestMessageBytes
    return config
  }

  /// The port the server listens on, once ``run()`` has bound it and marked its services
  /// SERVING (and started registration). Any number of tasks may ask, before or after.
  ///
  /// - Throws: ``MeshServerError`` (``MeshServerError/Code/bindFailed``) if it could not listen,
  ///   the error that stopped it if it stopped before serving.
  public var listeningPort: Int {
    get async throws {
      await self.startedSettled.wait()
      guard let result = self.started.withLock({ $0 }) else { throw CancellationError() }
      return try result.get()
    }
  }

  /// Records how starting ended (the first outcome only) and wakes those waiting for it.
  private func settleStart(_ result: Result<Int, any Error>) {
    let settled = self.started.withLock { started -> Bool in
      guard started == nil else { return false }
      started = result
      return true
    }
    if settled { self.startedSettled.fire() }
  }

  /// The bound port, from the transport.
  private var boundPort: Int {
    get async throws {
      let address: (described: String, port: Int?)
      do {
        address = try await self.transport.listeningPort
      } catch {
        throw MeshServerError(
          code: .bindFailed,
          message: "Could not listen on \(self.configuration.host):\(self.configuration.port).",
          cause: error
        )
      }
      if let port = address.port { return port }
      throw MeshServerError(
        code: .bindFailed,
        message: "Listening on \(address.described), not an IP port."
      )
    }
  }

  /// Starts draining (health, deregistration, delay, GOAWAY, grace period); ``run()`` returns
  /// when the server has stopped.
  public func beginGracefulShutdown() {
    self.shutdownRequested.fire()
  }

  /// Serves until drained (or cancelled), under ServiceLifecycle's graceful shutdown.
  public func run() async throws {
    try await withGracefulShutdownHandler {
      try await self.serve()
    } onGracefulShutdown: {
      self.beginGracefulShutdown()
    }
  }

  private enum Event: Sendable {
    case served
    case shutdownRequested
    case deregistered
    case drainDelayOver
    case gracePeriodOver
    case rotationEnded
    case intentionsEnded
    case metricsEnded
  }

  private func serve() async throws {
    #if Admin
      // Stopped once the server has stopped, however it stopped.
      let admin = self.admin?.start(showing: self)
    #endif
    do {
      try await self.serveAndDrain()
    } catch {
      self.settleStart(.failure(error))
      #if Admin
        await admin?.stop(logger: self.logger)
      #endif
      throw error
    }
    #if Admin
      await admin?.stop(logger: self.logger)
    #endif
    // Stopped before it served (a drain requested at once): nothing to wait for.
    self.settleStart(.failure(CancellationError()))
  }

  private func serveAndDrain() async throws {
    try await withThrowingTaskGroup(of: Event.self) { group in
      let server = self.server
      group.addTask {
        try await server.serve()
        return .served
      }
      if let credentials = self.credentials {
        group.addTask {
          try await credentials.run()
          return .rotationEnded
        }
      }
      try self.startIntentions(in: &group)
      if let gauges = self.gauges {
        let clock = self.clock
        group.addTask {
          await meshRepeat(every: .seconds(1), on: clock) { gauges.record() }
          return .metricsEnded
        }
      }
      let port = try await self.boundPort
      let adminPort = try await self.adminPort()
      if let intentions = self.intentions {
        // Neither SERVING nor registered before the intentions are known: clients would be sent
        // to a server refusing every call. At most 10 s: with Consul unreachable at start the
        // server serves, answering UNAVAILABLE until Consul does.
        await withTaskGroup(of: Void.self) { waiting in
          waiting.addTask { await intentions.waitForUpdate(after: 0) }
          waiting.addTask { try? await Task.sleep(for: .seconds(10)) }
          await waiting.next()
          waiting.cancelAll()
        }
      }
      for service in self.servedServices { self.health.setServing(service: service) }
      self.health.setServing()
      self.logger.info(
        "Serving",
        metadata: [
          "mesh.service": "\(self.configuration.serviceName)", "mesh.port": "\(port)",
          "mesh.services": "\(self.servedServices)",
        ]
      )
      let deregistration = try self.startRegistration(port: port, adminPort: adminPort, in: &group)
      self.settleStart(.success(port))
      group.addTask {
        await self.shutdownRequested.wait()
        return .shutdownRequested
      }

      var draining = false
      while let event = try await group.next() {
        switch event {
        case .shutdownRequested:
          draining = true
          // Clients with health checking stop picking the instance at once; Consul's next.
          self.health.enterTerminalState()
          self.logger.info("Draining: NOT_SERVING, deregistering")
          if let deregistration {
            deregistration.begin()
          } else {
            group.addTask { try await self.drainDelay() }
          }
        case .deregistered:
          if draining { group.addTask { try await self.drainDelay() } }
        case .drainDelayOver:
          self.logger.info("Draining: GOAWAY; RPCs in flight may finish")
          server.beginGracefulShutdown()
          let grace = self.configuration.drain.gracePeriod
          let clock = self.clock
          group.addTask {
            try await clock.sleep(for: grace)
            return .gracePeriodOver
          }
        case .gracePeriodOver:
          self.logger.warning("Draining: the grace period is over; cancelling RPCs in flight")
          group.cancelAll()
        case .served:
          // Stopped: rotation and timers end with it. Registration (if any) was removed first.
          group.cancelAll()
          self.logger.info("Stopped")
          return
        case .rotationEnded, .intentionsEnded, .metricsEnded:
          continue
        }
      }
    }
  }

  #if Admin
    /// The admin endpoint `configuration` asks for, if any; it controls `logger`'s level and,
    /// unless a factory is set, receives the server's metrics.
    private static func makeAdmin(
      _ configuration: inout MeshServerConfiguration,
      logger: inout Logger
    ) throws -> MeshAdmin? {
      guard let settings = configuration.admin else { return nil }
      let admin = try MeshAdmin(configuration: settings, controlling: &logger)
      configuration.metrics = configuration.metrics ?? admin.metricsFactory
      return admin
    }
  #else
    private static func makeAdmin(
      _ configuration: inout MeshServerConfiguration,
      logger: inout Logger
    ) {}
  #endif

  /// The admin endpoint's port once bound (nil without one).
  ///
  /// - Throws: ``MeshServerError`` (``MeshServerError/Code/bindFailed``) if it could not bind.
  private func adminPort() async throws -> Int? {
    #if Admin
      guard let admin = self.admin else { return nil }
      do {
        return try await admin.listeningPort
      } catch {
        throw MeshServerError(
          code: .bindFailed,
          message: "The admin endpoint could not listen on "
            + "\(admin.configuration.host):\(admin.configuration.port): \(error)",
          cause: error
        )
      }
    #else
      return nil
    #endif
  }

  /// Records the sampled gauges now (a scrape's handler, a test).
  package func recordMetrics() {
    self.gauges?.record()
  }

  private func drainDelay() async throws -> Event {
    try await self.clock.sleep(for: self.configuration.drain.delay)
    return .drainDelayOver
  }

  /// Follows the service's intentions in Consul in a child task, if configured.
  private func startIntentions(in group: inout ThrowingTaskGroup<Event, any Error>) throws {
    #if Consul
      guard let settings = self.configuration.intentions, let intentions = self.intentions else {
        return
      }
      let consul = try ConsulClient(settings.consul)
      let watch = MeshIntentionsWatch(
        client: consul,
        service: self.configuration.serviceName,
        settings: settings,
        intentions: intentions,
        logger: self.logger
      )
      group.addTask {
        await watch.run()
        try? await consul.shutdown()
        return .intentionsEnded
      }
    #endif
  }

  /// Registers the instance in a child task; returns how to deregister it (nil: no registration).
  private func startRegistration(
    port: Int,
    adminPort: Int?,
    in group: inout ThrowingTaskGroup<Event, any Error>
  ) throws -> Deregistration? {
    #if Consul
      guard let settings = self.configuration.registration else { return nil }
      let consul = try ConsulClient(settings.consul)
      let registration = MeshConsulRegistration(
        client: consul,
        registration: self.registration(settings, port: port, adminPort: adminPort),
        clock: ContinuousClock(),
        logger: self.logger
      )
      group.addTask {
        do {
          try await registration.run()
        } catch {
          try? await consul.shutdown()
          throw error
        }
        try? await consul.shutdown()
        return .deregistered
      }
      return Deregistration { registration.beginGracefulShutdown() }
    #else
      return nil
    #endif
  }

  #if Consul
    /// The instance as Consul should know it, with a gRPC check of its health service.
    private func registration(
      _ settings: MeshServerConfiguration.Registration,
      port boundPort: Int,
      adminPort: Int?
    ) -> ConsulServiceRegistration {
      let port = settings.advertisedPort ?? boundPort
      let bindHost = self.configuration.host
      let address =
        settings.advertisedAddress
        ?? (bindHost == "0.0.0.0" || bindHost == "::" ? nil : bindHost)
      let checkHost = address ?? "127.0.0.1"
      let checkTarget = checkHost.contains(":") ? "[\(checkHost)]:\(port)" : "\(checkHost):\(port)"
      let id =
        settings.id
        ?? "\(self.configuration.serviceName)-\(ProcessInfo.processInfo.hostName)-\(port)"
      return ConsulServiceRegistration(
        id: id,
        name: self.configuration.serviceName,
        tags: settings.tags.isEmpty ? nil : settings.tags,
        address: address,
        port: port,
        meta: Self.meta(settings.meta, adminPort: self.scrapeableAdminPort(adminPort, at: address)),
        check: .grpc(
          checkTarget,
          interval: settings.checkInterval,
          timeout: settings.checkTimeout,
          useTLS: self.configuration.tls != nil,
          // Consul verifies a TLS check's server by this name, not by the address it dials (a
          // pod's IP is in no certificate): the service's name, when the certificate carries it
          // in a DNS SAN, as every `mesh certs` certificate does.
          tlsServerName: self.checkServerName,
          deregisterCriticalServiceAfter: settings.deregisterCriticalServiceAfter
        )
      )
    }
  #endif
}

extension MeshServer {
  /// The name a TLS health check verifies this server by: its service's name, when its
  /// certificate names it in a DNS SAN.
  package var checkServerName: String? {
    let name = self.configuration.serviceName
    guard let credentials = self.credentials,
      let identity = try? MeshServiceIdentity.dns(name),
      credentials.identities.contains(identity)
    else { return nil }
    return name
  }
}

/// How the drain starts deregistration.
private struct Deregistration: Sendable {
  let begin: @Sendable () -> Void
}

extension MeshServer {
  /// The admin port to register, if Prometheus can reach the endpoint where it finds the
  /// instance (`address`; nil: the agent's node): the endpoint listens on every address, or on
  /// that one. A loopback endpoint behind a routable address is not registered (Prometheus's
  /// scrapes would fail, and `up == 0` would page).
  func scrapeableAdminPort(_ port: Int?, at address: String?) -> Int? {
    #if Admin
      guard let port, let admin = self.admin else { return nil }
      let host = admin.configuration.host
      if host == "0.0.0.0" || host == "::" || host == address { return port }
      self.logger.info(
        "The admin endpoint is not registered for scraping: it listens on \(host), the instance is registered at \(address ?? "its node's address")"
      )
      return nil
    #else
      return nil
    #endif
  }

  /// The registration's meta: the configured keys, and `mesh_admin_port` with an admin endpoint
  /// (Prometheus's Consul discovery scrapes it); nil when empty, as Consul omits it.
  static func meta(_ configured: [String: String], adminPort: Int?) -> [String: String]? {
    var meta = configured
    if let adminPort { meta["mesh_admin_port"] = "\(adminPort)" }
    return meta.isEmpty ? nil : meta
  }
}

#if Admin
  extension MeshServer: MeshAdminSource {
    public var adminSection: String { "server" }

    public func adminClusters() -> [MeshAdminCluster] { [] }

    public var adminConfiguration: any Sendable { self.configuration }

    public var adminCredentials: MeshCredentials? { self.credentials }

    public func adminUnreadyReason() -> String? {
      if self.shutdownRequested.hasFired { return "draining" }
      guard case .success = self.started.withLock({ $0 }) else { return "starting" }
      guard self.health.status(of: "") == .serving else { return "health is not SERVING" }
      return nil
    }

    public func recordAdminMetrics() {
      self.gauges?.record()
    }
  }
#endif

/// Runs `body` with a mesh server serving `services`, and drains it when `body` returns (or
/// throws).
public func withMeshServer<Result: Sendable>(
  _ configuration: MeshServerConfiguration,
  services: [any RegistrableRPCService],
  interceptors: [any ServerInterceptor] = [],
  logger: Logger = Logger(label: "mesh.server", factory: { _ in SwiftLogNoOpLogHandler() }),
  isolation: isolated (any Actor)? = #isolation,
  _ body: (MeshServer) async throws -> Result
) async throws -> Result {
  let server = try await MeshServer(
    configuration: configuration,
    services: services,
    interceptors: interceptors,
    logger: logger
  )
  return try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { group in
    group.addTask { try await server.run() }
    do {
      _ = try await server.listeningPort
      let result = try await body(server)
      server.beginGracefulShutdown()
      try await group.waitForAll()
      return result
    } catch {
      // Drained as on success, then the error.
      server.beginGracefulShutdown()
      try? await group.waitForAll()
      throw error
    }
  }
}
