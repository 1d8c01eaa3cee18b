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

/// The state of one Consul health watch, as a value with no I/O: which index to block on, how
/// long to back off after failures, and when the rate limit lets the next request go.
///
/// Follows Consul's documented client rules: an index that goes backwards resets to 0 (a
/// non-blocking read that starts over); an index of 0 is never blocked on (1 is used instead);
/// the loop is rate-limited by a token bucket; errors back off exponentially with jitter, to a
/// cap; the last good set is kept through failures.
package struct ConsulWatchState<Instant: InstantProtocol> where Instant.Duration == Duration {
  package struct Configuration: Sendable {
    /// Requests allowed back to back before the bucket throttles.
    package var burst: Int
    /// How often the bucket gains a request.
    package var refillInterval: Duration
    /// The first backoff after a failure.
    package var initialBackoff: Duration
    /// The longest backoff.
    package var maximumBackoff: Duration
    /// The spread of a backoff: 0.2 means ±20 %.
    package var jitter: Double

    package init(
      burst: Int,
      refillInterval: Duration,
      initialBackoff: Duration,
      maximumBackoff: Duration,
      jitter: Double
    ) {
      self.burst = burst
      self.refillInterval = refillInterval
      self.initialBackoff = initialBackoff
      self.maximumBackoff = maximumBackoff
      self.jitter = jitter
    }
  }

  package let configuration: Configuration
  /// The index to send with the next request; 0 for a non-blocking read.
  package private(set) var index: UInt64 = 0
  /// Consecutive failures since the last success.
  package private(set) var failures = 0
  /// The bucket, in time: each request costs one refill interval of credit.
  private var credit: Duration
  private var lastRefill: Instant

  package init(configuration: Configuration, now: Instant) {
    self.configuration = configuration
    self.credit = configuration.refillInterval * configuration.burst
    self.lastRefill = now
  }

  /// Takes a request token: nil if the request may go now, else how long to wait first.
  package mutating func takeToken(now: Instant) -> Duration? {
    let cost = self.configuration.refillInterval
    guard cost > .zero else { return nil }
    let capacity = cost * self.configuration.burst
    self.credit = min(capacity, self.credit + self.lastRefill.duration(to: now))
    self.lastRefill = now
    if self.credit >= cost {
      self.credit -= cost
      return nil
    }
    return cost - self.credit
  }

  /// Records a successful answer carrying `responseIndex`.
  package mutating func succeeded(responseIndex: UInt64) {
    self.failures = 0
    if responseIndex < self.index {
      // The agent restarted or its state was restored: start over with a non-blocking read.
      self.index = 0
    } else {
      self.index = max(responseIndex, 1)
    }
  }

  /// Records a failure; returns how long to back off, given `random` in 0..<1.
  package mutating func failed(random: Double) -> Duration {
    self.failures += 1
    let exponent = min(self.failures - 1, 30)
    let base = self.configuration.initialBackoff * Double(1 << exponent)
    let capped = min(base, self.configuration.maximumBackoff)
    let spread = 1 + self.configuration.jitter * (2 * random - 1)
    return capped * spread
  }
}
