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

/// A retry budget's state: requests and retries counted in one-second buckets over a window.
///
/// A retry is allowed while the retries in the window stay under `ratio` × the requests in it
/// plus `minRetriesPerSecond` × the window's seconds. A value with no I/O; the transport drives it
/// with its clock, tests with theirs.
public struct MeshRetryBudget<Instant: InstantProtocol> where Instant.Duration == Duration {
  public let policy: MeshRetryBudgetPolicy
  private var origin: Instant?
  private var buckets: [Bucket]
  /// Retries refused since the start, for a counter.
  public private(set) var refused = 0

  private struct Bucket {
    var second = -1
    var requests = 0
    var retries = 0
  }

  /// - Parameter policy: A validated policy (``MeshRetryBudgetPolicy/validate()``); values
  ///   outside its ranges are clamped to them here, never trusted to size or overflow anything.
  public init(policy: MeshRetryBudgetPolicy) {
    self.policy = policy
    let window = min(
      max(policy.window, MeshRetryBudgetPolicy.windows.lowerBound),
      MeshRetryBudgetPolicy.windows.upperBound
    )
    // Whole seconds of a window of at most 600 s: no conversion here can fail.
    let seconds = max(1, Int(window.components.seconds))
    self.buckets = Array(repeating: Bucket(), count: seconds)
  }

  /// A first attempt started.
  public mutating func recordRequest(now: Instant) {
    let index = self.bucket(at: now)
    self.buckets[index].requests += 1
  }

  /// Asks to retry now: true (and the retry is counted) when the budget allows it.
  public mutating func tryRetry(now: Instant) -> Bool {
    let (requests, retries) = self.totals(at: now)
    // In floating point: a floor near Int.max times the window's seconds would overflow an Int
    // (a trap at the first retry); as a Double it only makes the allowance large.
    let ratio = self.policy.ratio.isNaN ? 0 : self.policy.ratio
    let allowance =
      ratio * Double(requests)
      + Double(max(0, self.policy.minRetriesPerSecond)) * Double(self.buckets.count)
    guard Double(retries) + 1 <= allowance else {
      self.refused += 1
      return false
    }
    self.buckets[self.bucket(at: now)].retries += 1
    return true
  }

  /// The requests and retries counted in the window ending at `now`.
  public mutating func totals(at now: Instant) -> (requests: Int, retries: Int) {
    let current = self.second(of: now)
    var requests = 0
    var retries = 0
    for bucket in self.buckets where bucket.second > current - self.buckets.count {
      requests += bucket.requests
      retries += bucket.retries
    }
    return (requests, retries)
  }

  private mutating func second(of now: Instant) -> Int {
    guard let origin = self.origin else {
      self.origin = now
      return 0
    }
    return Int((origin.duration(to: now) / .seconds(1)).rounded(.down))
  }

  private mutating func bucket(at now: Instant) -> Int {
    let second = self.second(of: now)
    let index = ((second % self.buckets.count) + self.buckets.count) % self.buckets.count
    if self.buckets[index].second != second {
      self.buckets[index] = Bucket(second: second)
    }
    return index
  }
}
