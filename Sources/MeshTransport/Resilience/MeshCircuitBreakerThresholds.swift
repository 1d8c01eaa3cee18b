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

public import MeshCore

/// Envoy-style circuit breakers of one target service. Past a threshold, RPCs fail fast with
/// UNAVAILABLE and a message naming the breaker.
public struct MeshCircuitBreakerThresholds: Hashable, Sendable {
  /// Connections to all the target's endpoints. The first connection of each endpoint is always
  /// made; past the threshold pools stop growing and streams queue on the open connections.
  public var maxConnections: Int
  /// RPCs waiting for an endpoint to become pickable.
  public var maxPendingRequests: Int
  /// RPC attempts in flight.
  public var maxRequests: Int
  /// Retry attempts in flight.
  public var maxRetries: Int

  /// The Envoy sidecars' thresholds: 100 / 200 / 500 / 5.
  public init(
    maxConnections: Int = 100,
    maxPendingRequests: Int = 200,
    maxRequests: Int = 500,
    maxRetries: Int = 5
  ) {
    self.maxConnections = maxConnections
    self.maxPendingRequests = maxPendingRequests
    self.maxRequests = maxRequests
    self.maxRetries = maxRetries
  }

  public func validate() throws(MeshResilienceError) {
    for (field, value, minimum) in [
      ("maxConnections", self.maxConnections, 1),
      ("maxPendingRequests", self.maxPendingRequests, 0),
      ("maxRequests", self.maxRequests, 1), ("maxRetries", self.maxRetries, 0),
    ] where value < minimum {
      throw MeshResilienceError(
        .outOfRange,
        field: field,
        "must be at least \(minimum), not \(value)"
      )
    }
  }
}
