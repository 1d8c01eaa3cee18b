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

/// Turns successive snapshots of a transport's stats into what its metrics record: gauges as
/// they are, and the growth of its running totals as counter increments (a counter only goes up,
/// by what happened since the last sample).
struct MeshStatsSampler: Sendable {
  /// One sample: the gauges' values and the counters' increments.
  struct Sample: Equatable, Sendable {
    /// Endpoints by state: known, pickable, ejected, half-open.
    var endpoints: [String: Int] = [:]
    var pending = 0
    var connections = 0
    var attemptsInFlight = 0
    /// RPCs each breaker rejected since the last sample, by its label value.
    var breakerRejections: [String: Int] = [:]
    var budgetRefusals = 0
  }

  private var lastBreakerRejections: [MeshCircuitBreaker: Int] = [:]
  private var lastBudgetRefusals = 0

  /// The label value of each breaker (`max_requests`).
  static func label(_ breaker: MeshCircuitBreaker) -> String {
    switch breaker {
    case .maxConnections: "max_connections"
    case .maxPendingRequests: "max_pending_requests"
    case .maxRequests: "max_requests"
    case .maxRetries: "max_retries"
    case .retryBudget: "retry_budget"
    }
  }

  mutating func sample(_ stats: MeshTransportStats) -> Sample {
    var sample = Sample()
    sample.endpoints = [
      "known": stats.endpoints, "pickable": stats.pickable, "ejected": stats.ejected,
      "half_open": stats.halfOpen,
    ]
    sample.pending = stats.pending
    sample.connections = stats.connections
    sample.attemptsInFlight = stats.attemptsInFlight
    for (breaker, total) in stats.breakerRejections {
      // A total below the last one (it cannot shrink) is taken as a new start.
      let growth = total - (self.lastBreakerRejections[breaker] ?? 0)
      let increment = growth >= 0 ? growth : total
      if increment > 0 { sample.breakerRejections[Self.label(breaker)] = increment }
      self.lastBreakerRejections[breaker] = total
    }
    let growth = stats.retriesRefusedByBudget - self.lastBudgetRefusals
    sample.budgetRefusals = growth >= 0 ? growth : stats.retriesRefusedByBudget
    self.lastBudgetRefusals = stats.retriesRefusedByBudget
    return sample
  }
}
