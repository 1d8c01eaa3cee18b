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

public import MeshTransport

/// What a mesh client or server shows on an admin endpoint (``MeshAdmin``).
///
/// `MeshClient` and `MeshServer` conform; a process running both shows both on one endpoint by
/// adding one to the other's (``MeshAdmin/add(_:)``).
public protocol MeshAdminSource: AnyObject, Sendable {
  /// The section it fills in `/config_dump` and `/certs`: "client", "server".
  var adminSection: String { get }

  /// Its targets' endpoints, for `/clusters` (a server has none).
  func adminClusters() -> [MeshAdminCluster]

  /// Its effective configuration, reflected (secrets redacted) into `/config_dump`.
  var adminConfiguration: any Sendable { get }

  /// Its credentials, for `/certs`; nil when it runs without TLS.
  var adminCredentials: MeshCredentials? { get }

  /// Why it is not ready to serve (for `/ready`), or nil when it is.
  func adminUnreadyReason() -> String?

  /// Brings its sampled gauges up to date: `/metrics` calls it before each scrape.
  func recordAdminMetrics()
}

/// One target of a client, as `/clusters` shows it.
public struct MeshAdminCluster: Sendable, Codable {
  /// The target service's name.
  public var target: String
  public var endpoints: [MeshEndpointStatus]
  /// Endpoints discovery reported.
  public var known: Int
  /// Endpoints picked from.
  public var pickable: Int
  public var ejected: Int
  public var halfOpen: Int
  public var connections: Int
  /// RPCs waiting for an endpoint.
  public var pending: Int
  public var attemptsInFlight: Int
  /// Calls refused by each circuit breaker since start.
  public var breakerRejections: [String: Int]
  /// Retries and hedges the retry budget refused since start.
  public var retryBudgetRefusals: Int
  public var ejectionsTotal: Int
  /// Endpoints discovery sent that could not be used (bad host or port).
  public var invalidEndpoints: Int
  /// Discovery's last error, while it is failing.
  public var discoveryError: String?
  public var draining: Bool

  public init(target: String, stats: MeshTransportStats, endpoints: [MeshEndpointStatus]) {
    self.target = target
    self.endpoints = endpoints
    self.known = stats.endpoints
    self.pickable = stats.pickable
    self.ejected = stats.ejected
    self.halfOpen = stats.halfOpen
    self.connections = stats.connections
    self.pending = stats.pending
    self.attemptsInFlight = stats.attemptsInFlight
    self.breakerRejections = Dictionary(
      uniqueKeysWithValues: stats.breakerRejections.map { ("\($0.key)", $0.value) }
    )
    self.retryBudgetRefusals = stats.retriesRefusedByBudget
    self.ejectionsTotal = stats.ejectionsTotal
    self.invalidEndpoints = stats.invalidEndpoints
    self.discoveryError = stats.discoveryError
    self.draining = stats.draining
  }
}

extension MeshAdminCluster {
  /// The target's cluster as its balancing transport sees it now.
  public init<Factory: MeshSubchannelFactory, C: Clock>(
    _ transport: MeshBalancingTransport<Factory, C>
  ) where C.Duration == Duration {
    self.init(
      target: transport.service,
      stats: transport.stats,
      endpoints: transport.endpointStatuses
    )
  }
}
