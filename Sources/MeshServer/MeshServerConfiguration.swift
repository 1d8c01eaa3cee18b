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

public import CoreMetrics
public import Foundation
public import GRPCNIOTransportHTTP2Posix
internal import MeshConfiguration
internal import MeshCore
public import MeshTransport
public import Tracing

#if Consul
  public import MeshConsul
#endif
#if Native
  internal import MeshNativeTransport
#endif
#if Admin
  public import MeshAdmin
#endif

/// How a mesh server listens, secures its connections, registers itself and drains.
///
/// Build it in code, or read it from the environment with ``fromEnvironment(_:)``.
public struct MeshServerConfiguration: Sendable {
  /// mTLS: this service's certificate and the callers it accepts.
  public struct TLS: Sendable {
    /// This service's certificate, key and the mesh CA (rotated while the server runs).
    public var credentials: MeshTLSConfiguration
    /// The callers accepted at the handshake. Default: any identity the mesh CA issued.
    public var clients: MeshIdentityPolicy

    public init(credentials: MeshTLSConfiguration, clients: MeshIdentityPolicy = .anyIdentity) {
      self.credentials = credentials
      self.clients = clients
    }
  }

  #if Consul
    /// Self-registration in Consul, with a gRPC health check of the server.
    public struct Registration: Sendable {
      /// The Consul agent to register with.
      public var consul: ConsulClientConfiguration
      /// The service ID; nil: `<service>-<host name>-<port>`.
      public var id: String?
      /// The address clients reach the instance at; nil: the bind host if it is not a wildcard,
      /// else Consul's node address (as Consul does for a registration without one).
      public var advertisedAddress: String?
      /// The port clients reach the instance at; nil: the bound port.
      public var advertisedPort: Int?
      /// Tags and metadata of the registration (`zone` in meta is a client's zone preference).
      public var tags: [String]
      public var meta: [String: String]
      /// How often, and within what time, the agent's gRPC check calls grpc.health.v1 Check.
      public var checkInterval: Duration
      public var checkTimeout: Duration
      /// How long the check may stay critical before Consul removes the instance (a crashed server
      /// that never deregistered).
      public var deregisterCriticalServiceAfter: Duration?

      public init(
        consul: ConsulClientConfiguration = ConsulClientConfiguration(),
        id: String? = nil,
        advertisedAddress: String? = nil,
        advertisedPort: Int? = nil,
        tags: [String] = [],
        meta: [String: String] = [:],
        checkInterval: Duration = .seconds(10),
        checkTimeout: Duration = .seconds(5),
        deregisterCriticalServiceAfter: Duration? = .seconds(600)
      ) {
        self.consul = consul
        self.id = id
        self.advertisedAddress = advertisedAddress
        self.advertisedPort = advertisedPort
        self.tags = tags
        self.meta = meta
        self.checkInterval = checkInterval
        self.checkTimeout = checkTimeout
        self.deregisterCriticalServiceAfter = deregisterCriticalServiceAfter
      }
    }
  #endif

  #if Consul
    /// Authorization by the service's Consul intentions: the server reads those that match it as
    /// a destination (`/v1/connect/intentions/match?by=destination`) with blocking queries, so
    /// that a change in Consul takes effect at once, without a restart, and keeps the last good
    /// set while Consul is unreachable. Calls before the first answer fail with UNAVAILABLE.
    ///
    /// L7 intentions decide per method: a permission's `PathExact` `/package.Service/Method` or
    /// `PathPrefix` `/package.Service/` (see ``MeshIntentionPolicy`` for the rules). The health
    /// service stays open to every verified caller.
    public struct Intentions: Sendable {
      /// The Consul agent to ask.
      public var consul: ConsulClientConfiguration
      /// What decides a call no intention matches: Consul's ACL default policy. Default `.deny`
      /// (fail closed, as Consul with ACLs enabled and `default_policy = "deny"`); a Consul
      /// without ACLs allows.
      public var defaultAction: MeshAuthorizationPolicy.Action
      /// The longest a blocking query waits for a change before it is asked again. Default
      /// 5 minutes (Consul's longest is 10).
      public var wait: Duration

      public init(
        consul: ConsulClientConfiguration = ConsulClientConfiguration(),
        defaultAction: MeshAuthorizationPolicy.Action = .deny,
        wait: Duration = .seconds(300)
      ) {
        self.consul = consul
        self.defaultAction = defaultAction
        self.wait = wait
      }
    }
  #endif

  /// The graceful drain: health NOT_SERVING, deregistration, ``delay`` while clients stop picking
  /// the instance, GOAWAY, then up to ``gracePeriod`` for RPCs in flight to finish.
  public struct Drain: Sendable, Hashable {
    /// Between deregistering and GOAWAY: the time clients' discovery and health watches take to
    /// stop picking the instance. Default 5 s.
    public var delay: Duration
    /// After GOAWAY, how long RPCs in flight may take before they are cancelled. Default 30 s.
    public var gracePeriod: Duration

    public init(delay: Duration = .seconds(5), gracePeriod: Duration = .seconds(30)) {
      self.delay = delay
      self.gracePeriod = gracePeriod
    }
  }

  /// How the server manages its connections (gRFC A8 and A9).
  public struct Connections: Sendable, Hashable {
    /// The streams one client connection may have open at once: 1 to 2^31-1, the default (no
    /// practical limit, as gRPC C++ and Go). A limit caps what a client multiplexes on one
    /// connection: past it grpcio queues new streams, so a client holding long-lived `Watch`
    /// streams stalls. (The mesh's TLS settings carry the Envoy sidecars' 100, and SwiftNIO
    /// enforces 100 when a server advertises nothing; a mesh server sets this instead.)
    public var maxConcurrentStreams: Int
    /// A connection with no RPC for this long is closed with GOAWAY; nil: never (A9
    /// `MAX_CONNECTION_IDLE`).
    public var maxIdleTime: Duration?
    /// Connections are closed with GOAWAY after this long, so that clients rebalance; nil: never
    /// (A9 `MAX_CONNECTION_AGE`). Each server takes it within ±10 %, so that a fleet's
    /// connections do not all end at once.
    public var maxAge: Duration?
    /// After the age's GOAWAY, how long the connection's RPCs may take before it is closed; nil:
    /// as long as they need (A9 `MAX_CONNECTION_AGE_GRACE`). grpc-swift applies it to every
    /// graceful close, so a drain's RPCs get the shorter of this and the drain's grace period.
    public var maxAgeGrace: Duration?
    /// The largest request message accepted; a larger one fails with RESOURCE_EXHAUSTED.
    /// Default 4 MiB, as gRPC's.
    public var maxRequestMessageBytes: Int

    public init(
      maxConcurrentStreams: Int = Int(Int32.max),
      maxIdleTime: Duration? = nil,
      maxAge: Duration? = nil,
      maxAgeGrace: Duration? = nil,
      maxRequestMessageBytes: Int = 4 * 1024 * 1024
    ) {
      self.maxConcurrentStreams = maxConcurrentStreams
      self.maxIdleTime = maxIdleTime
      self.maxAge = maxAge
      self.maxAgeGrace = maxAgeGrace
      self.maxRequestMessageBytes = maxRequestMessageBytes
    }
  }

  /// This service's name: its health service names, its registration and certificate.
  public var serviceName: String
  /// The address to bind: an IPv4 or IPv6 address. Default `0.0.0.0`.
  public var host: String
  /// The port to bind; 0 picks a free one. Default 8443.
  public var port: Int
  /// mTLS; nil: plaintext (a warning is logged).
  public var tls: TLS?
  #if Consul
    /// Self-registration in Consul; nil: none.
    public var registration: Registration?
    /// Authorization by the service's intentions in Consul, followed as they change; nil: none.
    /// Exclusive with ``authorization``.
    public var intentions: Intentions?
  #endif
  /// The graceful drain.
  public var drain: Drain
  /// Stream limits, idle and age limits, message size.
  public var connections: Connections
  /// Who may call what, by the caller's verified identity; nil: every caller the handshake
  /// accepted. With a policy, a call without a verified identity never reaches a handler, and
  /// the health service is open to every verified caller (Consul's checks, clients' health
  /// checking) unless a rule denies it.
  public var authorization: MeshAuthorizationPolicy?
  /// Where gRFC A66's server instruments go (``MeshServerMetricsInterceptor``); nil: swift-metrics'
  /// factory when the server is made (`MetricsSystem.factory`: the bootstrapped one, or none).
  public var metrics: (any MetricsFactory)?
  /// The tracer of the server's spans (``MeshServerTracingInterceptor``: `Recv.<service>.<method>`,
  /// continuing the caller's W3C trace); nil: swift-distributed-tracing's bootstrapped one (no
  /// tracing while none is).
  public var tracer: (any Tracer)?
  /// The share of allowed calls, 0 to 1, that the authorization (rules or intentions) writes to
  /// the audit log; every denial is written. Default 0.
  public var auditAllowedShare: Double = 0
  /// grpc-swift's HTTP/2 server transport settings, whole; nil: its defaults, with the TLS
  /// configuration's HTTP/2 tuning and keepalive under mTLS, and ``connections``. When set,
  /// ``connections`` is not applied. They apply on grpc-swift's transport only (``transportKind``
  /// `.nio`, which the initializers choose when given them); the native transport refuses them.
  public var transport: HTTP2ServerTransport.Posix.Config?
  /// Which HTTP/2 implementation the server listens with: with the Native trait (on by default),
  /// the mesh's native one (`.native(settings)`, the default; ``transport`` does not apply to
  /// it), or grpc-swift's NIO transport (`.nio`, the default without the trait).
  /// `MESH_TRANSPORT` (`native` or `nio`) sets it.
  public var transportKind: MeshServerTransportKind = .default
  #if Admin
    /// The process's admin endpoint (``MeshAdmin``: `/metrics`, `/clusters`, `/config_dump`,
    /// `/certs`, `/healthz`, `/ready`, `/logging`), run with the server; nil (the default): none.
    /// The server registers its port in Consul as the service meta `mesh_admin_port`, for
    /// Prometheus's Consul discovery. With no ``metrics`` factory set, the server's metrics go to
    /// the endpoint's registry.
    public var admin: MeshAdminConfiguration?
  #endif

  #if Consul
    /// Every setting; each defaults to what ``defaults`` has, but the service's name.
    public init(
      serviceName: String,
      host: String = "0.0.0.0",
      port: Int = 8443,
      tls: TLS? = nil,
      registration: Registration? = nil,
      drain: Drain = Drain(),
      connections: Connections = Connections(),
      authorization: MeshAuthorizationPolicy? = nil,
      intentions: Intentions? = nil,
      transport: HTTP2ServerTransport.Posix.Config? = nil
    ) {
      self.serviceName = serviceName
      self.host = host
      self.port = port
      self.tls = tls
      self.registration = registration
      self.intentions = intentions
      self.drain = drain
      self.connections = connections
      self.authorization = authorization
      self.transport = transport
      // grpc-swift's transport settings, given, choose grpc-swift's transport.
      if transport != nil { self.transportKind = .nio }
    }
  #else
    /// Every setting; each defaults to what ``defaults`` has, but the service's name.
    public init(
      serviceName: String,
      host: String = "0.0.0.0",
      port: Int = 8443,
      tls: TLS? = nil,
      drain: Drain = Drain(),
      connections: Connections = Connections(),
      authorization: MeshAuthorizationPolicy? = nil,
      transport: HTTP2ServerTransport.Posix.Config? = nil
    ) {
      self.serviceName = serviceName
      self.host = host
      self.port = port
      self.tls = tls
      self.drain = drain
      self.connections = connections
      self.authorization = authorization
      self.transport = transport
      // grpc-swift's transport settings, given, choose grpc-swift's transport.
      if transport != nil { self.transportKind = .nio }
    }
  #endif

  /// `serviceName` on `0.0.0.0:8443`, plaintext, not registered, a 5 s drain delay and a 30 s
  /// grace period, 2^31-1 streams a connection, no idle or age limit, 4 MiB messages.
  public static func defaults(serviceName: String) -> Self {
    Self(serviceName: serviceName)
  }

  /// Checks every setting; the error names the first bad one.
  public func validate() throws(MeshServerError) {
    guard !self.serviceName.isEmpty else {
      throw MeshServerError(code: .invalidConfiguration, message: "serviceName: must not be empty")
    }
    do {
      try self.check(naming: { $0 })
    } catch {
      throw MeshServerError(
        code: .invalidConfiguration,
        message: "\(error)",
        cause: error
      )
    }
  }

  /// Checks every setting but the name; `name` gives the name a field is reported under (its
  /// own, or the configuration file's).
  func check(naming name: (String) -> String) throws(MeshInputError) {
    let host = try MeshHost(self.host, field: name("host"))
    if case .dns = host {
      throw MeshInputError(
        code: .invalid,
        field: name("host"),
        message: "must be an IPv4 or IPv6 address to bind, not \(MeshInput.quoted(self.host))"
      )
    }
    _ = try MeshInput.integer(self.port, field: name("port"), in: 0...65_535)
    #if Admin
      try self.admin?.validate()
    #endif
    #if Consul
      if let registration = self.registration {
        if let id = registration.id, id.trimmingCharacters(in: .whitespaces).isEmpty {
          throw MeshInputError(
            code: .invalid,
            field: name("registration.id"),
            message: "must not be empty"
          )
        }
        if let address = registration.advertisedAddress {
          _ = try MeshHost(address, field: name("registration.advertisedAddress"))
        }
        if let port = registration.advertisedPort {
          _ = try MeshInput.port(port, field: name("registration.advertisedPort"))
        }
        try Self.positive(registration.checkInterval, name("registration.checkInterval"))
        try Self.positive(registration.checkTimeout, name("registration.checkTimeout"))
      }
      if let intentions = self.intentions {
        try Self.positive(intentions.wait, name("intentions.wait"))
        if self.authorization != nil {
          throw MeshInputError(
            code: .invalid,
            field: name("intentions"),
            message: "set with authorization: a server follows its rules or Consul's intentions"
          )
        }
      }
    #endif
    try Self.notNegative(self.drain.delay, name("drain.delay"))
    try Self.notNegative(self.drain.gracePeriod, name("drain.gracePeriod"))
    let connections = self.connections
    _ = try MeshInput.integer(
      connections.maxConcurrentStreams,
      field: name("connections.maxConcurrentStreams"),
      in: 1...Int(Int32.max)
    )
    for (value, field) in [
      (connections.maxIdleTime, "connections.maxIdleTime"),
      (connections.maxAge, "connections.maxAge"),
    ] {
      if let value { try Self.positive(value, name(field)) }
    }
    if let grace = connections.maxAgeGrace {
      try Self.notNegative(grace, name("connections.maxAgeGrace"))
    }
    _ = try MeshInput.integer(
      connections.maxRequestMessageBytes,
      field: name("connections.maxRequestMessageBytes"),
      in: 1...Int(Int32.max)
    )
    guard self.auditAllowedShare.isFinite, (0...1).contains(self.auditAllowedShare) else {
      throw MeshInputError(
        code: .outOfRange,
        field: name("auditAllowedShare"),
        message: "must be from 0 to 1, not \(self.auditAllowedShare)"
      )
    }
  }

  private static func positive(_ value: Duration, _ field: String) throws(MeshInputError) {
    guard value > .zero else {
      throw MeshInputError(
        code: .outOfRange,
        field: field,
        message: "must be positive, not \(value)"
      )
    }
  }

  private static func notNegative(_ value: Duration, _ field: String) throws(MeshInputError) {
    guard value >= .zero else {
      throw MeshInputError(
        code: .outOfRange,
        field: field,
        message: "must not be negative, not \(value)"
      )
    }
  }

  /// Reads the environment:
  ///
  /// | Variable | Meaning |
  /// | --- | --- |
  /// | `MESH_SERVICE_NAME` | this service's name (required) |
  /// | `MESH_SERVER_HOST`, `MESH_SERVER_PORT` | the address to bind (`0.0.0.0`, `8443`) |
  /// | `MESH_CERTS_DIR` | the certificates folder (`mesh certs` layout); mTLS when set |
  /// | `MESH_TRUST_DOMAIN` | callers must have a SPIFFE ID in it (with `MESH_CERTS_DIR`); default: any identity the mesh CA issued |
  /// | `CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_SSL`, `CONSUL_CACERT` | register with this Consul agent (with the Consul trait) |
  /// | `MESH_ADVERTISE_ADDRESS`, `MESH_ADVERTISE_PORT` | the address registered |
  /// | `MESH_INTENTIONS` | `deny` or `allow`: follow the service's Consul intentions, this deciding calls none matches (they replace the file's authorization rules) |
  /// | `MESH_DRAIN_DELAY`, `MESH_DRAIN_GRACE_PERIOD` | the drain: seconds (`2.5`) or Go durations (`2500ms`) |
  /// | `MESH_ADMIN_ADDRESS` | the admin endpoint's `host:port` (port 0: any free one); none when unset |
  /// | `MESH_TRANSPORT` | `native` (the default, with the Native trait) or `nio`: which HTTP/2 transport listens (``transportKind``) |
  /// | `MESH_CONFIG_FILE` | a configuration file whose `server` section (`MeshConfigurationFile.Server`) is applied first; the variables above override it |
  ///
  /// - Throws: ``MeshServerError`` naming the variable (or the file's field) for a missing or
  ///   bad value.
  public static func fromEnvironment(
    _ environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(MeshServerError) -> Self {
    func value(_ name: String) -> String? {
      environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
    var file: MeshConfigurationFile.Server?
    let path = value("MESH_CONFIG_FILE")
    if let path {
      do {
        file = try MeshConfigurationFile.load(path: path).server
      } catch {
        throw MeshServerError(
          code: .invalidConfiguration,
          message: "MESH_CONFIG_FILE: \(error)",
          cause: error
        )
      }
    }
    guard let service = value("MESH_SERVICE_NAME") ?? file?.serviceName else {
      throw MeshServerError(
        code: .invalidConfiguration,
        message:
          "MESH_SERVICE_NAME (or server.service_name in MESH_CONFIG_FILE) must name this service."
      )
    }
    var configuration = Self(serviceName: service)
    if var file, let path {
      file.serviceName = service
      do {
        try configuration.apply(file, file: path)
      } catch {
        throw MeshServerError(
          code: .invalidConfiguration,
          message: "MESH_CONFIG_FILE: \(error)",
          cause: error
        )
      }
    }
    do {
      switch try MeshTransportChoice(value("MESH_TRANSPORT"), field: "MESH_TRANSPORT") {
      case .nio:
        configuration.transportKind = .nio
      case .native:
        #if Native
          configuration.transportKind = .native(.defaults)
        #endif
      }
    } catch {
      throw MeshServerError(code: .invalidConfiguration, message: "\(error).", cause: error)
    }
    do {
      if let host = value("MESH_SERVER_HOST") { configuration.host = host }
      if let port = value("MESH_SERVER_PORT") {
        configuration.port = Int(
          try MeshInput.integer(port, field: "MESH_SERVER_PORT", in: 0...65_535)
        )
      }
      #if Admin
        if let address = value("MESH_ADMIN_ADDRESS") {
          var admin = try MeshAdminConfiguration(address: address)
          admin.metrics = configuration.admin?.metrics
          configuration.admin = admin
        }
      #endif
      let trustDomain = value("MESH_TRUST_DOMAIN")
      if let directory = value("MESH_CERTS_DIR") {
        configuration.tls = TLS(
          credentials: .directory(directory, service: service),
          clients: configuration.tls?.clients ?? .anyIdentity
        )
      }
      if let trustDomain, configuration.tls != nil {
        configuration.tls?.clients = .trustDomain(trustDomain)
      }
      for (name, keyPath) in [
        ("MESH_DRAIN_DELAY", \Drain.delay), ("MESH_DRAIN_GRACE_PERIOD", \Drain.gracePeriod),
      ] {
        if let text = value(name) {
          configuration.drain[keyPath: keyPath] = try MeshInput.duration(
            text,
            field: name,
            bareSeconds: true,
            in: .zero...MeshResiliencePolicy.maximumDuration
          )
        }
      }
      #if Consul
        // Registration when CONSUL_HTTP_ADDR names an agent or the file has a registration
        // section; either way with the agent the environment names, as Consul's tools.
        if value("CONSUL_HTTP_ADDR") != nil || configuration.registration != nil {
          var registration = configuration.registration ?? Registration()
          registration.consul = try .fromEnvironment(environment)
          if let address = value("MESH_ADVERTISE_ADDRESS") {
            registration.advertisedAddress = address
          }
          if let port = value("MESH_ADVERTISE_PORT") {
            registration.advertisedPort = try MeshInput.port(port, field: "MESH_ADVERTISE_PORT")
          }
          configuration.registration = registration
        }
        if let mode = value("MESH_INTENTIONS") {
          guard let action = MeshAuthorizationPolicy.Action(rawValue: mode) else {
            throw MeshInputError(
              code: .invalid,
              field: "MESH_INTENTIONS",
              message:
                "must be 'deny' or 'allow' (the default when none matches), not \(MeshInput.quoted(mode))"
            )
          }
          var intentions = configuration.intentions ?? Intentions()
          intentions.defaultAction = action
          configuration.intentions = intentions
          // The environment overrides the file: Consul's intentions replace its rules.
          configuration.authorization = nil
        }
        if configuration.intentions != nil {
          configuration.intentions?.consul = try .fromEnvironment(environment)
        }
      #endif
    } catch {
      throw MeshServerError(code: .invalidConfiguration, message: "\(error)", cause: error)
    }
    try configuration.validate()
    return configuration
  }
}
