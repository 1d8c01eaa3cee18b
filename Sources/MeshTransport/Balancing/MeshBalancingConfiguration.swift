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

/// The settings of a ``MeshBalancingTransport``: how it picks, checks and pools endpoints, and
/// how it calls them.
///
/// Start from ``defaults`` and change what differs, as with grpc-swift's transport configs:
///
/// ```swift
/// var configuration = MeshBalancingConfiguration.defaults
/// configuration.policy = .roundRobin
/// configuration.defaultTimeout = .seconds(10)
/// ```
public struct MeshBalancingConfiguration: Hashable, Sendable {
  /// Client-side health checking (gRFC A17).
  public struct HealthChecking: Hashable, Sendable {
    /// The grpc.health.v1 service name to watch; `""` is the whole server.
    public var serviceName: String

    /// Watches `serviceName`'s health on each endpoint.
    public init(serviceName: String = "") {
      self.serviceName = serviceName
    }
  }

  /// How an endpoint is picked for each attempt. Default: least request (P2C).
  public var policy: MeshBalancingPolicy
  /// The timeout of RPCs whose call options set none (the Python helper's
  /// `create_stub(target, Stub, timeout=10.0)`); nil: none. Must be positive.
  public var defaultTimeout: Duration?
  /// Client-side health checking; nil: endpoints are only checked for connectivity.
  public var healthChecking: HealthChecking?
  /// The streams one connection carries before another is opened to the same endpoint: the
  /// server's max concurrent streams. Default 100; at least 1.
  public var maxStreamsPerConnection: Int
  /// The most connections to one endpoint. Default 8; at least 1.
  public var maxConnectionsPerEndpoint: Int
  /// Timeouts, retries, breakers and outlier detection.
  public var resilience: MeshResiliencePolicy

  /// Every setting given.
  public init(
    policy: MeshBalancingPolicy,
    defaultTimeout: Duration?,
    healthChecking: HealthChecking?,
    maxStreamsPerConnection: Int,
    maxConnectionsPerEndpoint: Int,
    resilience: MeshResiliencePolicy
  ) {
    self.policy = policy
    self.defaultTimeout = defaultTimeout
    self.healthChecking = healthChecking
    self.maxStreamsPerConnection = maxStreamsPerConnection
    self.maxConnectionsPerEndpoint = maxConnectionsPerEndpoint
    self.resilience = resilience
  }

  /// Least request, no default timeout, connectivity checks only, 100 streams a connection and
  /// up to 8 connections an endpoint, the default resilience policy.
  public static var defaults: Self {
    Self(
      policy: .leastRequest,
      defaultTimeout: nil,
      healthChecking: nil,
      maxStreamsPerConnection: 100,
      maxConnectionsPerEndpoint: 8,
      resilience: MeshResiliencePolicy()
    )
  }

  /// Checks every setting; the error names the first bad one.
  public func validate() throws(MeshBalancingError) {
    try self.policy.validate()
    guard self.maxStreamsPerConnection >= 1 else {
      throw MeshBalancingError(
        code: .outOfRange,
        field: "maxStreamsPerConnection",
        message: "must be at least 1, not \(self.maxStreamsPerConnection)"
      )
    }
    guard self.maxConnectionsPerEndpoint >= 1 else {
      throw MeshBalancingError(
        code: .outOfRange,
        field: "maxConnectionsPerEndpoint",
        message: "must be at least 1, not \(self.maxConnectionsPerEndpoint)"
      )
    }
    if let defaultTimeout = self.defaultTimeout, defaultTimeout <= .zero {
      throw MeshBalancingError(
        code: .outOfRange,
        field: "defaultTimeout",
        message: "must be positive, not \(defaultTimeout)"
      )
    }
    do {
      try self.resilience.validate()
    } catch {
      throw MeshBalancingError(
        code: error.code,
        field: "resilience.\(error.field)",
        message: error.message,
        cause: error
      )
    }
  }
}
