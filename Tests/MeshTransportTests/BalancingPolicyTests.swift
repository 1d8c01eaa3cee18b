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

import MeshTransport
import Testing

/// A seeded generator (SplitMix64): the same picks on every run.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64

  init(seed: UInt64) {
    self.state = seed
  }

  mutating func next() -> UInt64 {
    self.state &+= 0x9E37_79B9_7F4A_7C15
    var z = self.state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

typealias Picker = MeshPickerState<ContinuousClock.Instant>

@Suite("Balancing policies")
struct BalancingPolicyTests {
  let now = ContinuousClock.now
  let three = [
    MeshPickerEndpoint(id: "a"), MeshPickerEndpoint(id: "b"), MeshPickerEndpoint(id: "c"),
  ]

  func counts(
    _ picker: inout Picker,
    picks: Int,
    seed: UInt64 = 1,
    excluding: Set<String> = []
  ) -> [String: Int] {
    var random = SeededGenerator(seed: seed)
    var counts: [String: Int] = [:]
    for _ in 0..<picks {
      if let id = picker.pick(excluding: excluding, now: self.now, using: &random) {
        counts[id, default: 0] += 1
      }
    }
    return counts
  }

  @Test("Round robin takes each endpoint in turn, skipping the one a retry excludes")
  func roundRobin() {
    var picker = Picker(policy: .roundRobin)
    picker.update(self.three)
    var random = SeededGenerator(seed: 1)
    let order = (0..<6).compactMap { _ in picker.pick(now: self.now, using: &random) }
    #expect(order == ["a", "b", "c", "a", "b", "c"])
    #expect(picker.pick(excluding: ["a"], now: self.now, using: &random) == "b")
    #expect(self.counts(&picker, picks: 300) == ["a": 100, "b": 100, "c": 100])
    picker.update([MeshPickerEndpoint(id: "b"), MeshPickerEndpoint(id: "c")])
    #expect(Set(self.counts(&picker, picks: 4).keys) == ["b", "c"])
  }

  @Test("Pick first sticks to the first endpoint until it goes away")
  func pickFirst() {
    var picker = Picker(policy: .pickFirst)
    picker.update(self.three)
    #expect(self.counts(&picker, picks: 50) == ["a": 50])
    #expect(self.counts(&picker, picks: 5, excluding: ["a"]) == ["b": 5])
    picker.update(Array(self.three.dropFirst()))
    #expect(self.counts(&picker, picks: 5) == ["b": 5])
  }

  @Test("Least request (P2C) avoids the loaded endpoint and spreads evenly among equals")
  func leastRequest() {
    var picker = Picker(policy: .leastRequest)
    picker.update(self.three)
    for _ in 0..<10 { picker.started("a") }
    let loaded = self.counts(&picker, picks: 3000)
    #expect(loaded["a"] == nil, "of two distinct choices, the loaded one always loses")
    #expect(abs((loaded["b"] ?? 0) - (loaded["c"] ?? 0)) < 200)

    for _ in 0..<10 { picker.finished("a", latency: .milliseconds(1), now: self.now) }
    #expect(picker.inFlight("a") == 0)
    let even = self.counts(&picker, picks: 3000)
    for id in ["a", "b", "c"] {
      #expect((850...1150).contains(even[id] ?? 0), "\(id): \(even)")
    }
    // A retry never lands on the endpoint it excludes while another exists.
    #expect(self.counts(&picker, picks: 200, excluding: ["b"])["b"] == nil)
  }

  @Test("Load survives an endpoint-set update by ID")
  func loadSurvivesUpdates() {
    var picker = Picker(policy: .leastRequest)
    picker.update(self.three)
    picker.started("a")
    picker.started("a")
    picker.update(self.three + [MeshPickerEndpoint(id: "d")])
    #expect(picker.inFlight("a") == 2)
    picker.update([MeshPickerEndpoint(id: "b")])
    #expect(picker.inFlight("a") == 0, "removed endpoints are forgotten")
  }

  @Test("Weighted picks follow the weights")
  func weighted() {
    var picker = Picker(policy: .weighted)
    picker.update([
      MeshPickerEndpoint(id: "heavy", weight: 10), MeshPickerEndpoint(id: "light", weight: 1),
    ])
    let counts = self.counts(&picker, picks: 11_000)
    #expect((9_600...10_400).contains(counts["heavy"] ?? 0), "\(counts)")
    picker.update([
      MeshPickerEndpoint(id: "zero", weight: 0), MeshPickerEndpoint(id: "one", weight: 1),
    ])
    #expect(self.counts(&picker, picks: 100) == ["one": 100])
  }

  @Test(
    "Weights from a registration past any sensible size are clamped, never summed into a trap",
    arguments: [MeshBalancingPolicy.weighted, .roundRobin, .leastRequest]
  )
  func hugeWeights(policy: MeshBalancingPolicy) {
    var picker = Picker(policy: policy)
    picker.update([
      MeshPickerEndpoint(id: "a", weight: .max), MeshPickerEndpoint(id: "b", weight: .max),
      MeshPickerEndpoint(id: "c", weight: .min),
    ])
    let counts = self.counts(&picker, picks: 1_000)
    #expect(counts.values.reduce(0, +) == 1_000)
    #expect((counts["a"] ?? 0) > 0 && (counts["b"] ?? 0) > 0, "\(counts)")
  }

  @Test("Peak EWMA avoids a slow endpoint, and forgives it as the spike decays")
  func peakEWMA() {
    var picker = Picker(policy: .peakEWMA(decay: .seconds(10)))
    picker.update([MeshPickerEndpoint(id: "slow"), MeshPickerEndpoint(id: "fast")])
    picker.started("slow")
    picker.finished("slow", latency: .seconds(1), now: self.now)
    picker.started("fast")
    picker.finished("fast", latency: .milliseconds(10), now: self.now)
    #expect(self.counts(&picker, picks: 100) == ["fast": 100])

    // Long after the spike, with the fast endpoint busy, the slow one is picked again.
    let later = self.now.advanced(by: .seconds(300))
    for _ in 0..<5 { picker.started("fast") }
    var random = SeededGenerator(seed: 3)
    #expect(picker.pick(now: later, using: &random) == "slow")
  }

  @Test("Zone preference stays local, and spills over when the zone has too few endpoints")
  func zonePreference() {
    var policy = MeshBalancingPolicy.roundRobin
    policy.zonePreference = .init(localZone: "z1", minimumLocalEndpoints: 2)
    var picker = Picker(policy: policy)
    picker.update([
      MeshPickerEndpoint(id: "a", zone: "z1"), MeshPickerEndpoint(id: "b", zone: "z1"),
      MeshPickerEndpoint(id: "c", zone: "z2"),
    ])
    #expect(Set(self.counts(&picker, picks: 10).keys) == ["a", "b"])
    picker.update([
      MeshPickerEndpoint(id: "a", zone: "z1"), MeshPickerEndpoint(id: "c", zone: "z2"),
    ])
    #expect(Set(self.counts(&picker, picks: 10).keys) == ["a", "c"])
  }

  @Test("A canary split sends its share to the tagged endpoints")
  func canary() {
    var policy = MeshBalancingPolicy.roundRobin
    policy.canary = .init(tag: "canary", share: 0.1)
    var picker = Picker(policy: policy)
    picker.update([
      MeshPickerEndpoint(id: "stable-1"), MeshPickerEndpoint(id: "stable-2"),
      MeshPickerEndpoint(id: "canary-1", tags: ["canary"]),
    ])
    let counts = self.counts(&picker, picks: 10_000)
    #expect((850...1150).contains(counts["canary-1"] ?? 0), "\(counts)")

    picker.update([MeshPickerEndpoint(id: "stable-1")])
    #expect(self.counts(&picker, picks: 100) == ["stable-1": 100], "no canary: all stable")
    picker.update([MeshPickerEndpoint(id: "canary-1", tags: ["canary"])])
    #expect(self.counts(&picker, picks: 100) == ["canary-1": 100], "only canaries: all to them")
  }

  @Test("The fast generator is deterministic per seed and spreads picks evenly")
  func fastRandom() {
    var first = MeshFastRandom(seed: 42)
    var second = MeshFastRandom(seed: 42)
    #expect((0..<10).map { _ in first.next() } == (0..<10).map { _ in second.next() })
    var random = MeshFastRandom(seed: 7)
    var buckets = [Int](repeating: 0, count: 10)
    for _ in 0..<100_000 { buckets[Int.random(in: 0..<10, using: &random)] += 1 }
    #expect(buckets.allSatisfy { (9_500...10_500).contains($0) }, "\(buckets)")
  }

  @Test("No endpoints, no pick; bad settings are refused naming the field")
  func edges() {
    var picker = Picker(policy: .leastRequest)
    var random = SeededGenerator(seed: 1)
    #expect(picker.pick(now: self.now, using: &random) == nil)
    picker.update([MeshPickerEndpoint(id: "only")])
    #expect(picker.pick(excluding: ["only"], now: self.now, using: &random) == "only")

    var policy = MeshBalancingPolicy.leastRequest
    policy.canary = .init(tag: "canary", share: 1.5)
    #expect(
      throws: MeshBalancingError(
        code: .outOfRange,
        field: "canary.share",
        message: "must be between 0 and 1, not 1.5"
      )
    ) { try policy.validate() }
    policy.canary = .init(tag: "", share: 0.5)
    #expect((#expect(throws: MeshBalancingError.self) { try policy.validate() })?.code == .invalid)
    policy.canary = nil
    policy.zonePreference = .init(localZone: "z", minimumLocalEndpoints: 0)
    #expect(
      (#expect(throws: MeshBalancingError.self) { try policy.validate() })?.field
        == "zonePreference.minimumLocalEndpoints"
    )
    #expect(throws: MeshBalancingError.self) {
      try MeshBalancingPolicy.peakEWMA(decay: .zero).validate()
    }
    var configuration = MeshBalancingConfiguration.defaults
    configuration.resilience.retryBudget?.ratio = -1
    let nested = #expect(throws: MeshBalancingError.self) { try configuration.validate() }
    #expect(nested?.field == "resilience.retryBudget.ratio")
    #expect((nested?.cause as? MeshResilienceError)?.field == "retryBudget.ratio")
    #expect(throws: Never.self) { try MeshBalancingPolicy.weighted.validate() }
  }
}
