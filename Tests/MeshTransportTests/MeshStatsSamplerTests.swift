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

import Testing

@testable import MeshTransport

@Suite("Stats sampler: gauges as they are, running totals as increments")
struct MeshStatsSamplerTests {
  @Test("Gauges are passed on; totals become what they grew by since the last sample")
  func increments() {
    var sampler = MeshStatsSampler()
    var stats = MeshTransportStats()
    stats.endpoints = 3
    stats.pickable = 2
    stats.ejectedEndpoints = ["a"]
    stats.halfOpen = 0
    stats.pending = 4
    stats.connections = 5
    stats.breakerRejections = [.maxRequests: 7]
    stats.retriesRefusedByBudget = 2

    let first = sampler.sample(stats)
    #expect(first.endpoints == ["known": 3, "pickable": 2, "ejected": 1, "half_open": 0])
    #expect(first.pending == 4)
    #expect(first.connections == 5)
    #expect(first.breakerRejections == ["max_requests": 7])
    #expect(first.budgetRefusals == 2)

    stats.breakerRejections = [.maxRequests: 10, .maxPendingRequests: 1]
    stats.retriesRefusedByBudget = 2
    let second = sampler.sample(stats)
    #expect(second.breakerRejections == ["max_requests": 3, "max_pending_requests": 1])
    #expect(second.budgetRefusals == 0)

    // Nothing new: no increment at all.
    let third = sampler.sample(stats)
    #expect(third.breakerRejections.isEmpty)
    #expect(third.budgetRefusals == 0)
  }

  @Test("A total that went down (a new transport's) counts from zero again")
  func reset() {
    var sampler = MeshStatsSampler()
    var stats = MeshTransportStats()
    stats.retriesRefusedByBudget = 10
    stats.breakerRejections = [.maxRetries: 10]
    _ = sampler.sample(stats)
    stats.retriesRefusedByBudget = 3
    stats.breakerRejections = [.maxRetries: 4]
    let sample = sampler.sample(stats)
    #expect(sample.budgetRefusals == 3)
    #expect(sample.breakerRejections == ["max_retries": 4])
  }

  @Test("Every breaker has a label value in Prometheus's style")
  func labels() {
    #expect(
      MeshCircuitBreaker.allCases.map(MeshStatsSampler.label) == [
        "max_connections", "max_pending_requests", "max_requests", "max_retries", "retry_budget",
      ]
    )
  }
}
