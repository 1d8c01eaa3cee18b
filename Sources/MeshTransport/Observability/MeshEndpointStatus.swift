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

internal import MeshDiscovery

/// One endpoint of a target as its balancer sees it now: what the admin endpoint's `/clusters`
/// shows for it.
public struct MeshEndpointStatus: Hashable, Sendable, Codable {
  /// Where the endpoint is in its life, most telling first.
  public enum State: String, Hashable, Sendable, Codable {
    /// Its first connection (and health stream) is being made.
    case connecting
    /// Connected and serving: picked from.
    case ready
    /// Connected, but its health service does not report SERVING.
    case notServing = "not_serving"
    /// Its last connection or health stream failed; reconnecting.
    case failing
    /// Ejected by outlier detection until ``MeshEndpointStatus/ejectedForSeconds`` pass.
    case ejected
    /// Back from an ejection: one probe at a time decides whether it stays.
    case halfOpen = "half_open"
  }

  /// The endpoint's instance key in the balancer.
  public var id: String
  /// `host:port` (IPv6 hosts in brackets).
  public var address: String
  public var zone: String?
  /// Its weight in picking (from discovery's weights and health).
  public var weight: Int
  /// Discovery's health of it: passing or warning.
  public var health: String
  public var state: State
  /// Connections open to it.
  public var connections: Int
  /// RPCs on it now.
  public var inFlight: Int
  /// Why outlier detection last ejected it, if it ever did.
  public var lastEjectionReason: String?
  /// While ejected: seconds until it comes back half-open.
  public var ejectedForSeconds: Double?
  /// Why its last connection or health stream failed, while it is not connected.
  public var lastError: String?

  public init(
    id: String,
    address: String,
    zone: String? = nil,
    weight: Int,
    health: String,
    state: State,
    connections: Int = 0,
    inFlight: Int = 0,
    lastEjectionReason: String? = nil,
    ejectedForSeconds: Double? = nil,
    lastError: String? = nil
  ) {
    self.id = id
    self.address = address
    self.zone = zone
    self.weight = weight
    self.health = health
    self.state = state
    self.connections = connections
    self.inFlight = inFlight
    self.lastEjectionReason = lastEjectionReason
    self.ejectedForSeconds = ejectedForSeconds
    self.lastError = lastError
  }
}

extension MeshBalancerStateMachine {
  /// Every endpoint's status, in discovery order; ejection times counted from `now`. O(n).
  func endpointStatuses(now: Instant) -> [MeshEndpointStatus] {
    self.order.compactMap { id -> MeshEndpointStatus? in
      guard let entry = self.entries[id] else { return nil }
      var status = MeshEndpointStatus(
        id: id,
        address: entry.endpoint.host.contains(":")
          ? "[\(entry.endpoint.host)]:\(entry.endpoint.port)"
          : "\(entry.endpoint.host):\(entry.endpoint.port)",
        zone: entry.endpoint.zone,
        weight: entry.endpoint.weight,
        health: entry.endpoint.health.description,
        state: entry.eligible ? .ready : entry.connected ? .notServing : .connecting,
        connections: entry.pool.count,
        // The first connection's health Watch holds one stream that is no RPC.
        inFlight: max(0, entry.pool.reduce(0) { $0 + $1.streams } - 1),
        lastError: entry.connected ? nil : entry.lastError
      )
      if !entry.connected, entry.lastError != nil { status.state = .failing }
      if let detector = self.detector {
        status.lastEjectionReason = detector.lastEjectionReason(of: id)?.rawValue
        switch detector.state(of: id) {
        case .active:
          break
        case .ejected(let until):
          status.state = .ejected
          let left = now.duration(to: until).components
          status.ejectedForSeconds = max(0, Double(left.seconds) + Double(left.attoseconds) / 1e18)
        case .halfOpen:
          status.state = .halfOpen
        }
      }
      return status
    }
  }
}
