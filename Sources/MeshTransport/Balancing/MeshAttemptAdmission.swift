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

internal import GRPCCore

/// Which attempts may start: the `max requests` and `max retries` breakers and the retry budget,
/// with the counters they keep. A value, part of the balancer's state.
struct MeshAttemptAdmission<Instant: InstantProtocol> where Instant.Duration == Duration {
  let service: String
  let breakers: MeshCircuitBreakerThresholds
  private(set) var budget: MeshRetryBudget<Instant>?
  private(set) var attemptsInFlight = 0
  private(set) var retriesInFlight = 0
  private(set) var attemptsTotal = 0
  private(set) var retriesTotal = 0
  private(set) var rejections: [MeshCircuitBreaker: Int] = [:]

  init(service: String, breakers: MeshCircuitBreakerThresholds, budget: MeshRetryBudgetPolicy?) {
    self.service = service
    self.breakers = breakers
    self.budget = budget.map { MeshRetryBudget(policy: $0) }
  }

  /// Admits an attempt or throws the RPC's failure. `retry` is the failure the attempt retries
  /// (nil for an RPC's first attempt): a refused retry fails with it, naming the breaker.
  mutating func admit(retry: RPCError?, now: Instant) throws(RPCError) {
    if let retry {
      if self.retriesInFlight >= self.breakers.maxRetries {
        self.reject(.maxRetries)
        throw self.refusal(of: retry, breaker: .maxRetries, limit: self.breakers.maxRetries)
      }
      if self.budget?.tryRetry(now: now) == false {
        self.reject(.retryBudget)
        throw self.refusal(of: retry, breaker: .retryBudget, limit: nil)
      }
    } else {
      self.budget?.recordRequest(now: now)
    }
    if self.attemptsInFlight >= self.breakers.maxRequests {
      self.reject(.maxRequests)
      throw RPCError(
        code: .unavailable,
        message: """
          Circuit breaker '\(MeshCircuitBreaker.maxRequests)' of '\(self.service)' is open: \
          \(self.breakers.maxRequests) RPCs are in flight.
          """
      )
    }
    self.attemptsInFlight += 1
    self.attemptsTotal += 1
    if retry != nil {
      self.retriesInFlight += 1
      self.retriesTotal += 1
    }
  }

  /// The end of an admitted attempt.
  mutating func finish(isRetry: Bool) {
    self.attemptsInFlight -= 1
    if isRetry { self.retriesInFlight -= 1 }
  }

  /// Counts an RPC (or a pool growth) a breaker refused.
  mutating func reject(_ breaker: MeshCircuitBreaker) {
    self.rejections[breaker, default: 0] += 1
  }

  /// Writes the counters into `stats`.
  func record(into stats: inout MeshTransportStats) {
    stats.attemptsInFlight = self.attemptsInFlight
    stats.retriesInFlight = self.retriesInFlight
    stats.attemptsTotal = self.attemptsTotal
    stats.retriesTotal = self.retriesTotal
    stats.breakerRejections = self.rejections
    stats.retriesRefusedByBudget = self.budget?.refused ?? 0
  }

  private func refusal(of failure: RPCError, breaker: MeshCircuitBreaker, limit: Int?) -> RPCError {
    let detail = limit.map { ": \($0) retries are in flight" } ?? ": retries are at their cap"
    return RPCError(
      code: failure.code,
      message: """
        \(failure.message) (not retried: circuit breaker '\(breaker)' of \
        '\(self.service)' is open\(detail))
        """,
      cause: failure
    )
  }
}
