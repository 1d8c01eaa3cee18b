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

/// Outlier detection's state over a target's endpoints: a value with no I/O, driven by the
/// transport (and by tests) with an injected clock. See ``MeshOutlierDetectionPolicy``.
public struct MeshOutlierDetector<Instant: InstantProtocol> where Instant.Duration == Duration {
  public let policy: MeshOutlierDetectionPolicy
  private var hosts: [String: Host] = [:]
  private var nextEvaluation: Instant?
  /// When the earliest ejection ends: ticks before it have nothing to end (a tick is O(1) then).
  private var earliestEjectionEnd: Instant?
  /// Ejections and readmissions since the start, for counters.
  public private(set) var ejectionsTotal = 0
  public private(set) var readmissionsTotal = 0

  /// Where an endpoint stands.
  public enum State: Hashable, Sendable {
    case active
    case ejected(until: Instant)
    /// Back from ejection: one probe at a time until it proves itself.
    case halfOpen
  }

  /// Why an endpoint was ejected.
  public enum Reason: String, Hashable, Sendable {
    case consecutiveFailures = "consecutive failures"
    case successRate = "success rate"
    case failurePercentage = "failure percentage"
    case failedProbe = "failed half-open probe"
  }

  /// A change of an endpoint's state, to log and count.
  public enum Change: Hashable, Sendable {
    case ejected(String, until: Instant, reason: Reason)
    case halfOpen(String)
    case readmitted(String)
  }

  private struct Host {
    var state: State = .active
    var consecutiveFailures = 0
    var intervalSuccesses = 0
    var intervalFailures = 0
    /// Times ejected, less one per healthy interval: multiplies the ejection time.
    var multiplier = 0
    var probesInFlight = 0
    var probeSuccesses = 0
    /// Why the endpoint was last ejected.
    var reason: Reason?

    var isEjected: Bool {
      if case .ejected = self.state { return true }
      return false
    }
  }

  public init(policy: MeshOutlierDetectionPolicy) {
    self.policy = policy
  }

  /// Sets the endpoints; state survives for the IDs that stay. A smaller set can hold more
  /// ejected endpoints than ``maxEjected`` allows (every one, when only ejected ones stay): those
  /// whose ejection ends first return half-open until the limit holds again.
  @discardableResult
  public mutating func setEndpoints(_ ids: some Sequence<String>) -> [Change] {
    var hosts: [String: Host] = [:]
    for id in ids {
      hosts[id] = self.hosts[id] ?? Host()
    }
    self.hosts = hosts
    var ejected: [(id: String, until: Instant)] = hosts.compactMap { id, host in
      if case .ejected(let until) = host.state { return (id, until) }
      return nil
    }
    let excess = ejected.count - self.maxEjected
    guard excess > 0 else { return [] }
    ejected.sort { $0.until < $1.until || ($0.until == $1.until && $0.id < $1.id) }
    return ejected.prefix(excess).map { id, _ in
      self.hosts[id]?.state = .halfOpen
      self.hosts[id]?.probesInFlight = 0
      self.hosts[id]?.probeSuccesses = 0
      return .halfOpen(id)
    }
  }

  public func state(of id: String) -> State {
    self.hosts[id]?.state ?? .active
  }

  /// Why `id` was last ejected (nil if it never was): what an operator sees next to its state.
  public func lastEjectionReason(of id: String) -> Reason? {
    self.hosts[id]?.reason
  }

  /// Endpoints that must not be picked now: the ejected ones.
  public var ejected: Set<String> {
    Set(self.hosts.lazy.filter { $0.value.isEjected }.map(\.key))
  }

  public var ejectedCount: Int {
    self.hosts.values.lazy.filter(\.isEjected).count
  }

  /// Whether an attempt may go to `id` now: not ejected, and if half-open, no probe in flight.
  public func admits(_ id: String) -> Bool {
    guard let host = self.hosts[id] else { return true }
    switch host.state {
    case .active: return true
    case .ejected: return false
    case .halfOpen: return host.probesInFlight == 0
    }
  }

  /// An attempt started on `id`.
  public mutating func started(_ id: String) {
    if case .halfOpen = self.hosts[id]?.state {
      self.hosts[id]?.probesInFlight += 1
    }
  }

  /// An attempt on `id` ended; `success` false for the endpoint's failures.
  public mutating func finished(_ id: String, success: Bool, now: Instant) -> [Change] {
    guard var host = self.hosts[id] else { return [] }
    var changes: [Change] = []
    if success {
      host.intervalSuccesses += 1
      host.consecutiveFailures = 0
    } else {
      host.intervalFailures += 1
      host.consecutiveFailures += 1
    }
    switch host.state {
    case .halfOpen:
      host.probesInFlight = max(0, host.probesInFlight - 1)
      if success {
        host.probeSuccesses += 1
        if host.probeSuccesses >= self.policy.halfOpenSuccesses {
          host.state = .active
          host.probeSuccesses = 0
          self.readmissionsTotal += 1
          changes.append(.readmitted(id))
        }
      } else {
        self.hosts[id] = host
        return self.eject(id, now: now, reason: .failedProbe).map { [$0] } ?? []
      }
    case .active:
      if !success && host.consecutiveFailures >= self.policy.consecutiveFailures {
        self.hosts[id] = host
        return self.eject(id, now: now, reason: .consecutiveFailures).map { [$0] } ?? []
      }
    case .ejected:
      break  // an attempt that started before the ejection
    }
    self.hosts[id] = host
    return changes
  }

  /// Ends ejections whose time is up and, once per interval, ejects by success rate. Cheap when
  /// there is nothing to do; the transport calls it before picks.
  public mutating func tick(now: Instant) -> [Change] {
    var changes: [Change] = []
    if let earliest = self.earliestEjectionEnd, earliest <= now {
      self.earliestEjectionEnd = nil
      for (id, host) in self.hosts {
        guard case .ejected(let until) = host.state else { continue }
        if until <= now {
          self.hosts[id]?.state = .halfOpen
          self.hosts[id]?.probesInFlight = 0
          self.hosts[id]?.probeSuccesses = 0
          self.hosts[id]?.consecutiveFailures = 0
          changes.append(.halfOpen(id))
        } else {
          self.earliestEjectionEnd = self.earliestEjectionEnd.map { min($0, until) } ?? until
        }
      }
    }
    guard let next = self.nextEvaluation else {
      self.nextEvaluation = now.advanced(by: self.policy.interval)
      return changes
    }
    guard next <= now else { return changes }
    self.nextEvaluation = now.advanced(by: self.policy.interval)
    changes += self.evaluateSuccessRates(now: now)
    changes += self.evaluateFailurePercentages(now: now)
    for id in self.hosts.keys {
      if case .active = self.hosts[id]!.state, self.hosts[id]!.intervalFailures == 0 {
        self.hosts[id]!.multiplier = max(0, self.hosts[id]!.multiplier - 1)
      }
      self.hosts[id]!.intervalSuccesses = 0
      self.hosts[id]!.intervalFailures = 0
    }
    return changes
  }

  private mutating func evaluateSuccessRates(now: Instant) -> [Change] {
    guard let factor = self.policy.successRateStdevFactor else { return [] }
    let rates = self.hosts.compactMap { id, host -> (String, Double)? in
      let total = host.intervalSuccesses + host.intervalFailures
      guard case .active = host.state, total >= self.policy.minimumRequests else {
        return nil
      }
      return (id, Double(host.intervalSuccesses) / Double(total))
    }
    guard rates.count >= self.policy.successRateMinimumHosts else { return [] }
    let mean = rates.map(\.1).reduce(0, +) / Double(rates.count)
    let variance = rates.map { ($0.1 - mean) * ($0.1 - mean) }.reduce(0, +) / Double(rates.count)
    let threshold = mean - factor * variance.squareRoot()
    var changes: [Change] = []
    for (id, rate) in rates.sorted(by: { $0.1 < $1.1 }) where rate < threshold {
      if let change = self.eject(id, now: now, reason: .successRate) {
        changes.append(change)
      }
    }
    return changes
  }

  private mutating func evaluateFailurePercentages(now: Instant) -> [Change] {
    guard let threshold = self.policy.failurePercentageThreshold else { return [] }
    var changes: [Change] = []
    let judged = self.hosts.compactMap { id, host -> (String, Double)? in
      let total = host.intervalSuccesses + host.intervalFailures
      guard case .active = host.state, total >= self.policy.minimumRequests else { return nil }
      return (id, Double(host.intervalFailures) / Double(total))
    }
    for (id, share) in judged.sorted(by: { $0.1 > $1.1 }) where share >= threshold {
      if let change = self.eject(id, now: now, reason: .failurePercentage) {
        changes.append(change)
      }
    }
    return changes
  }

  /// The most endpoints ejected at once: the share, at least one, never all.
  public var maxEjected: Int {
    let count = self.hosts.count
    guard count > 1 else { return 0 }
    let share = Int((self.policy.maxEjectionShare * Double(count)).rounded(.down))
    return min(count - 1, max(1, share))
  }

  private mutating func eject(
    _ id: String,
    now: Instant,
    reason: Reason
  ) -> Change? {
    guard var host = self.hosts[id], !host.isEjected else { return nil }
    guard self.ejectedCount < self.maxEjected else { return nil }
    host.multiplier += 1
    let base = self.policy.baseEjectionTime * host.multiplier
    let time = min(base, self.policy.maxEjectionTime)
    let until = now.advanced(by: time)
    host.state = .ejected(until: until)
    host.reason = reason
    self.earliestEjectionEnd = self.earliestEjectionEnd.map { min($0, until) } ?? until
    host.consecutiveFailures = 0
    host.probesInFlight = 0
    host.probeSuccesses = 0
    self.hosts[id] = host
    self.ejectionsTotal += 1
    return .ejected(id, until: until, reason: reason)
  }
}
