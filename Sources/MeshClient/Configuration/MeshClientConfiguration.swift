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
public import GRPCCore
// The configuration file and its errors are part of the client's API.
@_exported public import MeshConfiguration
public import MeshCore
public import MeshDiscovery
public import MeshTransport
public import Tracing

#if Admin
  public import MeshAdmin
#endif
#if Native
  internal import MeshNativeTransport
#endif
#if Consul
  public import MeshConsul
#endif

/// How a mesh client finds, secures and balances the services it calls.
///
/// Build it in code, or read it from the environment with ``fromEnvironment(_:)`` (the Python
/// helper's `create_mesh_client()` with no arguments).
public struct MeshClientConfiguration: Sendable {
  /// This service's name (its certificate is `certs/services/<name>.crt`).
  public var serviceName: String?
  #if Consul
    /// The Consul agent to discover services through when ``discovery`` is nil.
    public var consul: ConsulClientConfiguration
  #endif
  /// Discovery to use instead of Consul (a static list, DNS, a test double).
  public var discovery: (any MeshDiscovery)?
  /// mTLS: this service's credentials and the target identities to expect. Nil: plaintext.
  public var tls: TLS?
  /// The timeout of RPCs that set none, for every target. Nil: none.
  public var defaultTimeout: Duration?
  /// The balancing policy of every target. Default: least request (P2C).
  public var policy: MeshBalancingPolicy
  /// Client-side health checking (gRFC A17): the grpc.health.v1 service name each endpoint is
  /// watched for; only SERVING endpoints are picked. Nil: endpoints are watched for
  /// connectivity only.
  public var healthCheckServiceName: String?
  /// Timeouts, retries, hedging, the retry budget, circuit breakers and outlier detection of
  /// every target. Default: the Envoy sidecars' (3 retries on UNAVAILABLE, 5 s per try, 0.25–2 s
  /// backoff; a 20 % + 10/s retry budget; breakers at 100/200/500/5; ejection after 5
  /// consecutive failures).
  public var resilience: MeshResiliencePolicy
  /// The streams one connection carries before another is opened to the same endpoint (the
  /// servers' max concurrent streams), and the most connections to one endpoint. Defaults 100
  /// and 8.
  public var maxStreamsPerConnection: Int
  public var maxConnectionsPerEndpoint: Int
  /// grpc-swift's HTTP/2 transport settings of every connection (HTTP/2 frame and window sizes,
  /// authority, keepalive, idle time, flush coalescing, compression, connection backoff), for
  /// plaintext and mTLS alike. Nil: grpc-swift's defaults, with the TLS configuration's HTTP/2
  /// tuning and keepalive under mTLS. They apply on grpc-swift's transport only (``transportKind``
  /// `.nio`, which the initializers choose when given them); the native transport refuses them.
  public var transport: MeshHTTP2TransportConfig?
  /// Which HTTP/2 implementation carries the connections: with the Native trait (on by default),
  /// the mesh's native one on libnghttp2 and OpenSSL (`.native(settings)`, the default;
  /// ``transport`` does not apply to it), or grpc-swift's NIO transport (`.nio`, the default
  /// without the trait). `MESH_TRANSPORT` (`native` or `nio`) sets it.
  public var transportKind: MeshTransportKind = .default
  /// Per-target settings, by target service name.
  public var targets: [String: Target]
  /// Where gRPC's client instruments go (gRFC A66's call and attempt metrics, A96's retries,
  /// A91's ejections; ``MeshMetricNames``). Nil: swift-metrics' bootstrapped factory (nothing is
  /// measured while none is).
  public var metrics: (any MetricsFactory)?
  /// The tracer of the calls' spans (gRFC A72: `Sent.<service>.<method>` and
  /// `Attempt.<service>.<method>`, W3C trace context sent to the server). Nil:
  /// swift-distributed-tracing's bootstrapped one (no spans while none is).
  public var tracer: (any Tracer)?
  #if Admin
    /// The process's admin endpoint (``MeshAdmin``: `/metrics`, `/clusters`, `/config_dump`,
    /// `/certs`, `/healthz`, `/ready`, `/logging`), run with the client; nil (the default): none.
    /// With no ``metrics`` factory set, the client's metrics go to the endpoint's registry.
    public var admin: MeshAdminConfiguration?
  #endif

  /// mTLS settings.
  public struct TLS: Sendable {
    /// This service's certificate, key and the mesh CA.
    public var credentials: MeshTLSConfiguration
    /// The trust domain of the targets' SPIFFE IDs. Default `mesh.local`.
    public var trustDomain: String
    /// The namespace of the targets' SPIFFE IDs. Default `default`.
    public var namespace: String

    public init(
      credentials: MeshTLSConfiguration,
      trustDomain: String = "mesh.local",
      namespace: String = "default"
    ) {
      self.credentials = credentials
      self.trustDomain = trustDomain
      self.namespace = namespace
    }
  }

  /// Settings of one target service.
  public struct Target: Sendable {
    /// Overrides ``MeshClientConfiguration/defaultTimeout``.
    public var timeout: Duration?
    /// Overrides ``MeshClientConfiguration/policy``.
    public var policy: MeshBalancingPolicy?
    /// The identities the target's servers may present; default: its SPIFFE ID or a DNS SAN
    /// naming it (the Python mesh's certificates). Several during a rename.
    public var identities: [MeshServiceIdentity]?
    /// Overrides ``MeshClientConfiguration/healthCheckServiceName``.
    public var healthCheckServiceName: String?
    /// Overrides ``MeshClientConfiguration/resilience``.
    public var resilience: MeshResiliencePolicy?
    /// Overrides ``MeshClientConfiguration/transport``.
    public var transport: MeshHTTP2TransportConfig?

    /// Settings of one target; each nil keeps the client's.
    public init(
      timeout: Duration? = nil,
      policy: MeshBalancingPolicy? = nil,
      identities: [MeshServiceIdentity]? = nil,
      healthCheckServiceName: String? = nil,
      resilience: MeshResiliencePolicy? = nil,
      transport: MeshHTTP2TransportConfig? = nil
    ) {
      self.timeout = timeout
      self.policy = policy
      self.identities = identities
      self.healthCheckServiceName = healthCheckServiceName
      self.resilience = resilience
      self.transport = transport
    }
  }

  /// The balancing transport settings of `target`: its own where it has them, else the client's.
  public func balancing(for target: String) -> MeshBalancingConfiguration {
    self.balancing(settings: self.targets[target])
  }

  private func balancing(settings: Target?) -> MeshBalancingConfiguration {
    MeshBalancingConfiguration(
      policy: settings?.policy ?? self.policy,
      defaultTimeout: settings?.timeout ?? self.defaultTimeout,
      healthChecking: (settings?.healthCheckServiceName ?? self.healthCheckServiceName).map {
        MeshBalancingConfiguration.HealthChecking(serviceName: $0)
      },
      maxStreamsPerConnection: self.maxStreamsPerConnection,
      maxConnectionsPerEndpoint: self.maxConnectionsPerEndpoint,
      resilience: settings?.resilience ?? self.resilience
    )
  }

  #if Consul
    /// Every setting; each defaults to what ``defaults`` has.
    public init(
      serviceName: String? = nil,
      consul: ConsulClientConfiguration = ConsulClientConfiguration(),
      discovery: (any MeshDiscovery)? = nil,
      tls: TLS? = nil,
      defaultTimeout: Duration? = nil,
      policy: MeshBalancingPolicy = .leastRequest,
      healthCheckServiceName: String? = nil,
      resilience: MeshResiliencePolicy = MeshResiliencePolicy(),
      maxStreamsPerConnection: Int = 100,
      maxConnectionsPerEndpoint: Int = 8,
      transport: MeshHTTP2TransportConfig? = nil,
      targets: [String: Target] = [:]
    ) {
      self.serviceName = serviceName
      self.consul = consul
      self.discovery = discovery
      self.tls = tls
      self.defaultTimeout = defaultTimeout
      self.policy = policy
      self.healthCheckServiceName = healthCheckServiceName
      self.resilience = resilience
      self.maxStreamsPerConnection = maxStreamsPerConnection
      self.maxConnectionsPerEndpoint = maxConnectionsPerEndpoint
      self.transport = transport
      // grpc-swift's transport settings, given, choose grpc-swift's transport.
      if transport != nil { self.transportKind = .nio }
      self.targets = targets
    }
  #else
    /// Every setting; each defaults to what ``defaults`` has. (Without the package's Consul
    /// trait there is no Consul agent to configure: ``discovery`` is required.)
    public init(
      serviceName: String? = nil,
      discovery: (any MeshDiscovery)? = nil,
      tls: TLS? = nil,
      defaultTimeout: Duration? = nil,
      policy: MeshBalancingPolicy = .leastRequest,
      healthCheckServiceName: String? = nil,
      resilience: MeshResiliencePolicy = MeshResiliencePolicy(),
      maxStreamsPerConnection: Int = 100,
      maxConnectionsPerEndpoint: Int = 8,
      transport: MeshHTTP2TransportConfig? = nil,
      targets: [String: Target] = [:]
    ) {
      self.serviceName = serviceName
      self.discovery = discovery
      self.tls = tls
      self.defaultTimeout = defaultTimeout
      self.policy = policy
      self.healthCheckServiceName = healthCheckServiceName
      self.resilience = resilience
      self.maxStreamsPerConnection = maxStreamsPerConnection
      self.maxConnectionsPerEndpoint = maxConnectionsPerEndpoint
      self.transport = transport
      // grpc-swift's transport settings, given, choose grpc-swift's transport.
      if transport != nil { self.transportKind = .nio }
      self.targets = targets
    }
  #endif

  /// Consul on `127.0.0.1:8500`, plaintext, no default timeout, least request, connectivity
  /// checks only, the default resilience policy, 100 streams a connection, 8 connections an
  /// endpoint, grpc-swift's transport defaults.
  public static var defaults: Self { Self() }

  /// Checks every setting of the client and its targets; the error names the first bad one.
  public func validate() throws(MeshBalancingError) {
    try self.balancing(settings: nil).validate()
    for name in self.targets.keys.sorted() {
      do {
        try self.balancing(settings: self.targets[name]).validate()
      } catch {
        throw error.nested(in: "targets.\(name)")
      }
    }
  }

  /// Applies a configuration file (`MeshConfigurationFile`): its defaults become every target's
  /// resilience (and balancing policy, if it names one), its services' sections theirs.
  public mutating func apply(_ file: MeshConfigurationFile) {
    self.resilience = file.defaults.resilience
    if let policy = file.defaults.policy { self.policy = policy }
    for (name, section) in file.services {
      var target = self.targets[name] ?? Target()
      target.resilience = section.resilience
      if let policy = section.policy { target.policy = policy }
      self.targets[name] = target
    }
  }

  /// Reads a configuration file (JSON, or YAML) and applies it; nothing is applied if it has an
  /// error.
  public mutating func load(configurationFile path: String) throws(MeshConfigurationError) {
    self.apply(try MeshConfigurationFile.load(path: path))
  }

  /// Reads the environment:
  ///
  /// | Variable | Meaning |
  /// | --- | --- |
  /// | `CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_SSL`, `CONSUL_CACERT` | the Consul agent, as Consul's tools read them (with the Consul trait) |
  /// | `MESH_SERVICE_NAME` | this service's name |
  /// | `MESH_CERTS_DIR` | the certificates folder (`mesh certs` layout); mTLS when set |
  /// | `MESH_TRUST_DOMAIN`, `MESH_NAMESPACE` | the targets' SPIFFE IDs (`mesh.local`, `default`) |
  /// | `MESH_DEFAULT_TIMEOUT` | the default RPC timeout: seconds (`2.5`) or Go syntax (`2500ms`), positive and at most ten years |
  /// | `MESH_TRANSPORT` | `native` (the default, with the Native trait) or `nio`: which HTTP/2 transport carries the connections (``transportKind``) |
  /// | `MESH_CONFIG_FILE` | a configuration file (`MeshConfigurationFile`) to apply |
  /// | `MESH_CLIENT_ADMIN_ADDRESS` | the client's own admin endpoint, `host:port` (port 0: any free one); none when unset (with the Admin trait). A process that also runs a MeshServer shows its client on the server's endpoint (`MESH_ADMIN_ADDRESS`) instead |
  ///
  /// - Throws: ``MeshClientError`` naming the variable for a bad value (and the field, for the
  ///   configuration file); its ``MeshClientError/configuration`` holds the setting at fault.
  public static func fromEnvironment(
    _ environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(MeshClientError) -> Self {
    var configuration = Self()
    #if Consul
      do {
        configuration.consul = try .fromEnvironment(environment)
      } catch {
        throw MeshClientError(
          code: .invalidConfiguration,
          message: "CONSUL_HTTP_ADDR: \(error.message)",
          cause: error
        )
      }
    #endif
    configuration.serviceName = environment["MESH_SERVICE_NAME"].flatMap { $0.isEmpty ? nil : $0 }
    if let directory = environment["MESH_CERTS_DIR"], !directory.isEmpty {
      guard let service = configuration.serviceName else {
        throw MeshClientError(
          code: .invalidConfiguration,
          message: "MESH_CERTS_DIR is set, so MESH_SERVICE_NAME must name this service."
        )
      }
      configuration.tls = TLS(
        credentials: .directory(directory, service: service),
        trustDomain: environment["MESH_TRUST_DOMAIN"].flatMap { $0.isEmpty ? nil : $0 }
          ?? "mesh.local",
        namespace: environment["MESH_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
      )
    }
    if let text = environment["MESH_DEFAULT_TIMEOUT"], !text.isEmpty {
      do {
        configuration.defaultTimeout = try MeshInput.duration(
          text,
          field: "MESH_DEFAULT_TIMEOUT",
          bareSeconds: true,
          in: .nanoseconds(1)...MeshResiliencePolicy.maximumDuration
        )
      } catch {
        let setting = MeshConfigurationError(
          code: .invalidValue,
          file: MeshConfigurationError.environment,
          field: error.field,
          message:
            "must be a positive number of seconds (such as 2.5) or a duration (such as 2500ms): "
            + error.message,
          cause: error
        )
        throw MeshClientError(
          code: .invalidConfiguration,
          message: "\(setting.field): \(setting.message)",
          cause: setting
        )
      }
    }
    do {
      switch try MeshTransportChoice(environment["MESH_TRANSPORT"], field: "MESH_TRANSPORT") {
      case .nio:
        configuration.transportKind = .nio
      case .native:
        // Named, or (unset) the default.
        #if Native
          configuration.transportKind = .native(.defaults)
        #endif
      }
    } catch {
      let setting = MeshConfigurationError(
        code: .invalidValue,
        file: MeshConfigurationError.environment,
        field: error.field,
        message: error.message,
        cause: error
      )
      throw MeshClientError(
        code: .invalidConfiguration,
        message: "\(setting.field): \(setting.message)",
        cause: setting
      )
    }
    #if Admin
      if let address = environment["MESH_CLIENT_ADMIN_ADDRESS"], !address.isEmpty {
        do {
          configuration.admin = try MeshAdminConfiguration(
            address: address,
            field: "MESH_CLIENT_ADMIN_ADDRESS"
          )
        } catch {
          throw MeshClientError(code: .invalidConfiguration, message: "\(error)", cause: error)
        }
      }
    #endif
    if let path = environment["MESH_CONFIG_FILE"], !path.isEmpty {
      do {
        try configuration.load(configurationFile: path)
      } catch {
        throw MeshClientError(
          code: .invalidConfiguration,
          message: "MESH_CONFIG_FILE: \(error)",
          cause: error
        )
      }
    }
    return configuration
  }
}

/// A mesh client's error: a bad setting from outside, or a client asked of a mesh client that
/// shut down.
///
/// It ends an RPC (thrown where one is served or called) as `UNAVAILABLE` after shutdown, or as
/// `FAILED_PRECONDITION` for a bad setting.
public struct MeshClientError: MeshError, Hashable, RPCErrorConvertible {
  /// What kind of problem this is. New codes may be added; switch with a `default`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Value: String, Hashable, Sendable {
      case invalidConfiguration
      case shutDown
    }

    private let value: Value

    private init(_ value: Value) {
      self.value = value
    }

    /// A setting from outside (an environment variable, a configuration file) can't be used.
    public static let invalidConfiguration = Self(.invalidConfiguration)
    /// The mesh client shut down; it makes no new clients.
    public static let shutDown = Self(.shutDown)

    /// The code's name: `invalidConfiguration` or `shutDown`.
    public var description: String {
      self.value.rawValue
    }
  }

  /// What kind of problem this is.
  public var code: Code
  /// What was wrong, naming the variable (and the file's field) for a bad setting.
  public var message: String
  /// The error underneath: a `MeshConfigurationError` for a setting from outside, the Consul
  /// client's for a bad `CONSUL_HTTP_ADDR`.
  public var cause: (any Error)?

  /// An error of kind `code`, described by `message`, with the underlying `cause` if any.
  public init(code: Code, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  /// For a bad setting from outside (an environment variable, a configuration file): where it
  /// is (the file, or `MeshConfigurationError.environment`) and its field.
  public var configuration: MeshConfigurationError? {
    self.cause as? MeshConfigurationError
  }

  /// The ``message``.
  public var description: String { self.message }

  /// `UNAVAILABLE` after shutdown, `FAILED_PRECONDITION` for a bad setting.
  public var rpcErrorCode: RPCError.Code {
    self.code == .shutDown ? .unavailable : .failedPrecondition
  }

  /// The ``message``.
  public var rpcErrorMessage: String {
    self.message
  }
}
