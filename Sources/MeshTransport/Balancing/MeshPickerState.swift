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

internal import Foundation

/// An endpoint as the picker sees it: its ID, weight, zone and tags.
public struct MeshPickerEndpoint: Hashable, Sendable {
  public var id: String
  public var weight: Int
  public var zone: String?
  public var tags: [String]

  public init(id: String, weight: Int = 1, zone: String? = nil, tags: [String] = []) {
    self.id = id
    self.weight = weight
    self.zone = zone
    self.tags = tags
  }
}

/// The balancing policy's state: a value with no I/O, driven by the transport.
///
/// Candidate groups are computed when the endpoint set changes (zone preference, then the canary
/// split), so a pick touches one group: O(1) for round robin, pick-first and the two P2C
/// algorithms, O(log n) for weighted picks. Per-endpoint load (RPCs in flight) and latency
/// survive endpoint-set updates by ID.
public struct MeshPickerState<Instant: InstantProtocol> where Instant.Duration == Duration {
  public let policy: MeshBalancingPolicy
  public private(set) var endpoints: [MeshPickerEndpoint] = []
  /// Load per endpoint, indexed like `endpoints`: picks read it without hashing.
  private var loads: [Load] = []
  /// Endpoint index by ID, for `started`/`finished`.
  private var indexByID: [String: Int] = [:]

  /// The groups traffic is split into: the canary group (maybe empty) and the rest.
  private var canaryGroup = Group()
  private var stableGroup = Group()

  private struct Load {
    var inFlight = 0
    /// Peak-EWMA latency in seconds, and when it was last updated.
    var ewma: Double = 0
    var updated: Instant?
  }

  private struct Group {
    var members: [Int] = []  // indexes into `endpoints`
    var cumulativeWeights: [Int] = []
    var nextRoundRobin = 0
  }

  public init(policy: MeshBalancingPolicy) {
    self.policy = policy
  }

  /// Replaces the endpoint set.
  public mutating func update(_ endpoints: [MeshPickerEndpoint]) {
    let previousStable = self.stableGroup.nextRoundRobin
    let previousCanary = self.canaryGroup.nextRoundRobin
    // Carry each surviving endpoint's load over, by ID.
    var loads: [Load] = []
    var indexByID: [String: Int] = [:]
    loads.reserveCapacity(endpoints.count)
    for (index, endpoint) in endpoints.enumerated() {
      loads.append(self.indexByID[endpoint.id].map { self.loads[$0] } ?? Load())
      indexByID[endpoint.id] = index
    }
    self.endpoints = endpoints
    self.loads = loads
    self.indexByID = indexByID

    var candidates = Array(endpoints.indices)
    if let zone = self.policy.zonePreference {
      let local = candidates.filter { endpoints[$0].zone == zone.localZone }
      if local.count >= zone.minimumLocalEndpoints {
        candidates = local
      }
    }
    var canary: [Int] = []
    var stable: [Int] = []
    if let split = self.policy.canary {
      for index in candidates {
        if endpoints[index].tags.contains(split.tag) {
          canary.append(index)
        } else {
          stable.append(index)
        }
      }
    } else {
      stable = candidates
    }
    self.canaryGroup = self.makeGroup(canary, roundRobinStart: previousCanary)
    self.stableGroup = self.makeGroup(stable, roundRobinStart: previousStable)
  }

  /// The largest weight an endpoint counts with. Weights come from the registry (any Int a
  /// registration carries); clamped, a sum over every endpoint a process could hold stays far
  /// from Int.max.
  static var maxWeight: Int { 1 << 32 }

  private func makeGroup(_ members: [Int], roundRobinStart: Int) -> Group {
    var total = 0
    let cumulative = members.map { index in
      total += min(max(0, self.endpoints[index].weight), Self.maxWeight)
      return total
    }
    return Group(
      members: members,
      cumulativeWeights: cumulative,
      nextRoundRobin: members.isEmpty ? 0 : roundRobinStart % members.count
    )
  }

  /// Picks an endpoint for one attempt, avoiding `excluded` IDs when another choice exists (a
  /// retry goes elsewhere). Nil when there is no endpoint.
  public mutating func pick(
    excluding excluded: Set<String> = [],
    now: Instant,
    using random: inout some RandomNumberGenerator
  ) -> String? {
    guard !self.endpoints.isEmpty else { return nil }
    var useCanary = false
    if let split = self.policy.canary {
      if self.stableGroup.members.isEmpty {
        useCanary = true
      } else if !self.canaryGroup.members.isEmpty {
        useCanary = Double.random(in: 0..<1, using: &random) < split.share
      }
    }
    // Only the group's round-robin cursor changes; its arrays are shared, not copied.
    var group = useCanary ? self.canaryGroup : self.stableGroup
    let picked = self.pick(in: &group, excluding: excluded, now: now, using: &random)
    if useCanary { self.canaryGroup = group } else { self.stableGroup = group }
    return picked.map { self.endpoints[$0].id }
  }

  private func pick(
    in group: inout Group,
    excluding excluded: Set<String>,
    now: Instant,
    using random: inout some RandomNumberGenerator
  ) -> Int? {
    let members = group.members
    guard !members.isEmpty else { return nil }
    func allowed(_ index: Int) -> Bool {
      !excluded.contains(self.endpoints[index].id)
    }

    switch self.policy.algorithm {
    case .pickFirst:
      return members.first(where: allowed) ?? members.first

    case .roundRobin:
      // At most one full turn to step over excluded endpoints.
      for _ in 0..<members.count {
        let index = members[group.nextRoundRobin]
        group.nextRoundRobin = (group.nextRoundRobin + 1) % members.count
        if allowed(index) { return index }
      }
      return members[group.nextRoundRobin]

    case .weighted:
      guard let total = group.cumulativeWeights.last, total > 0 else {
        return members.randomElement(using: &random)
      }
      var choice = self.weightedChoice(group, total: total, using: &random)
      if !allowed(choice) {
        // One more draw for a retry; if it lands on an excluded endpoint too, take it anyway.
        choice = self.weightedChoice(group, total: total, using: &random)
      }
      return choice

    case .leastRequest, .peakEWMA:
      if members.count == 1 { return members[0] }
      let first = members[Int.random(in: 0..<members.count, using: &random)]
      var second = members[Int.random(in: 0..<(members.count - 1), using: &random)]
      if second == first { second = members[members.count - 1] }
      switch (allowed(first), allowed(second)) {
      case (true, false): return first
      case (false, true): return second
      default: break
      }
      let costs = (self.cost(of: first, now: now), self.cost(of: second, now: now))
      if costs.0 == costs.1 { return Bool.random(using: &random) ? first : second }
      return costs.0 < costs.1 ? first : second
    }
  }

  private func weightedChoice(
    _ group: Group,
    total: Int,
    using random: inout some RandomNumberGenerator
  ) -> Int {
    let target = Int.random(in: 0..<total, using: &random)
    // The first cumulative weight above the target (binary search).
    var low = 0
    var high = group.cumulativeWeights.count - 1
    while low < high {
      let middle = (low + high) / 2
      if group.cumulativeWeights[middle] > target { high = middle } else { low = middle + 1 }
    }
    return group.members[low]
  }

  private func cost(of index: Int, now: Instant) -> Double {
    let load = self.loads[index]
    switch self.policy.algorithm {
    case .peakEWMA(let decay):
      // Latency decays toward zero while the endpoint is idle; load multiplies it.
      let ewma = Self.decayed(load, to: now, decay: decay)
      return (ewma + 1e-6) * Double(load.inFlight + 1)
    default:
      return Double(load.inFlight)
    }
  }

  private static func decayed(_ load: Load, to now: Instant, decay: Duration) -> Double {
    guard let updated = load.updated else { return load.ewma }
    let elapsed = updated.duration(to: now) / decay
    return load.ewma * exp(-max(0, elapsed))
  }

  /// An attempt started on `id`.
  public mutating func started(_ id: String) {
    guard let index = self.indexByID[id] else { return }
    self.loads[index].inFlight += 1
  }

  /// An attempt on `id` finished after `latency`.
  public mutating func finished(_ id: String, latency: Duration, now: Instant) {
    guard let index = self.indexByID[id] else { return }
    var load = self.loads[index]
    load.inFlight = max(0, load.inFlight - 1)
    if case .peakEWMA(let decay) = self.policy.algorithm {
      let seconds = latency / .seconds(1)
      let current = Self.decayed(load, to: now, decay: decay)
      // Peak-sensitive: a slower sample replaces the average at once; faster ones blend in.
      if seconds > current {
        load.ewma = seconds
      } else {
        let weight = load.updated.map { exp(-max(0, $0.duration(to: now) / decay)) } ?? 0
        load.ewma = current * weight + seconds * (1 - weight)
      }
      load.updated = now
    }
    self.loads[index] = load
  }

  /// RPCs in flight on `id`.
  public func inFlight(_ id: String) -> Int {
    self.indexByID[id].map { self.loads[$0].inFlight } ?? 0
  }
}
