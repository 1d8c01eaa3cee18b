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
import PropertyBased
import Testing

/// The policies the properties run under: every algorithm, and the zone and canary splits.
private let policies: [MeshBalancingPolicy] = {
  var zoned = MeshBalancingPolicy.roundRobin
  zoned.zonePreference = .init(localZone: "a", minimumLocalEndpoints: 2)
  var canary = MeshBalancingPolicy.leastRequest
  canary.canary = .init(tag: "canary", share: 0.3)
  var both = MeshBalancingPolicy.weighted
  both.zonePreference = .init(localZone: "b", minimumLocalEndpoints: 1)
  both.canary = .init(tag: "canary", share: 0.5)
  return [
    .roundRobin, .pickFirst, .leastRequest, .peakEWMA(decay: .seconds(1)), .weighted, zoned,
    canary, both,
  ]
}()

/// The IDs endpoints are drawn from, so that sets overlap from one update to the next.
private let pool = (0..<8).map { "endpoint-\($0)" }

/// A step of a random run: its kind and the bits it draws its arguments from.
private let steps = Gen<UInt64>.value().array(of: 1...200)

@Suite("Picker properties")
struct MeshPickerPropertyTests {
  @Test(
    "Picks only endpoints of the current set, and one whenever the set is not empty",
    arguments: policies
  )
  func picksOnlyCurrentEndpoints(policy: MeshBalancingPolicy) async {
    await propertyCheck(count: 300, input: Gen<UInt64>.value(), steps) { seed, steps in
      var picker = MeshPickerState<ContinuousClock.Instant>(policy: policy)
      var random = SeededGenerator(seed: seed)
      var now = ContinuousClock.Instant.now
      var current: Set<String> = []
      for step in steps {
        now = now.advanced(by: .milliseconds(Int64(step % 50)))
        switch step % 8 {
        case 0:
          let endpoints = Self.endpoints(step >> 3)
          picker.update(endpoints)
          current = Set(endpoints.map(\.id))
        case 1:
          picker.started(pool[Int(step >> 3) % pool.count])
        case 2:
          let latency = Duration.milliseconds(Int64((step >> 8) % 2_000))
          picker.finished(pool[Int(step >> 3) % pool.count], latency: latency, now: now)
        default:
          let excluded = Self.subset(of: pool, bits: step >> 3)
          let picked = picker.pick(excluding: excluded, now: now, using: &random)
          if let picked {
            #expect(current.contains(picked), "picked \(picked), not in \(current.sorted())")
          } else {
            #expect(current.isEmpty, "picked nothing from \(current.sorted())")
          }
        }
      }
    }
  }

  @Test(
    "Never picks an excluded endpoint while another can be picked",
    arguments: [MeshBalancingPolicy.roundRobin, .pickFirst]
  )
  func avoidsExcludedEndpoints(policy: MeshBalancingPolicy) async {
    await propertyCheck(count: 300, input: Gen<UInt64>.value(), steps) { seed, steps in
      var picker = MeshPickerState<ContinuousClock.Instant>(policy: policy)
      var random = SeededGenerator(seed: seed)
      var current: Set<String> = []
      for step in steps {
        if step % 4 == 0 {
          let endpoints = Self.endpoints(step >> 2)
          picker.update(endpoints)
          current = Set(endpoints.map(\.id))
          continue
        }
        let excluded = Self.subset(of: pool, bits: step >> 2)
        let picked = picker.pick(excluding: excluded, now: .now, using: &random)
        if !current.subtracting(excluded).isEmpty, let picked {
          #expect(!excluded.contains(picked), "picked excluded \(picked) of \(current.sorted())")
        }
      }
    }
  }

  /// The two-choice algorithms compare two distinct endpoints, so with two endpoints an excluded
  /// one is never picked over the other. (With more, both draws can be excluded; the transport
  /// then picks again without them.)
  @Test(
    "Two-choice algorithms never pick the excluded one of two",
    arguments: [MeshBalancingPolicy.leastRequest, .peakEWMA(decay: .seconds(1))]
  )
  func twoChoicesAvoidExcluded(policy: MeshBalancingPolicy) async {
    await propertyCheck(count: 300, input: Gen<UInt64>.value(), steps) { seed, steps in
      var picker = MeshPickerState<ContinuousClock.Instant>(policy: policy)
      var random = SeededGenerator(seed: seed)
      picker.update([MeshPickerEndpoint(id: "a"), MeshPickerEndpoint(id: "b")])
      for step in steps {
        if step % 3 == 0 {
          picker.started(step % 2 == 0 ? "a" : "b")
          continue
        }
        let excluded: Set<String> = step % 2 == 0 ? ["a"] : ["b"]
        let picked = picker.pick(excluding: excluded, now: .now, using: &random)
        #expect(picked.map { !excluded.contains($0) } == true, "\(String(describing: picked))")
      }
    }
  }

  /// Up to eight endpoints of the pool, with weights (some zero), zones and canary tags drawn
  /// from `bits`.
  private static func endpoints(_ bits: UInt64) -> [MeshPickerEndpoint] {
    var bits = bits
    var endpoints: [MeshPickerEndpoint] = []
    for id in pool {
      let word = bits & 0x1F
      bits >>= 5
      guard word & 1 == 1 else { continue }
      endpoints.append(
        MeshPickerEndpoint(
          id: id,
          weight: Int((word >> 1) & 3),
          zone: word & 8 == 0 ? "a" : "b",
          tags: word & 16 == 0 ? [] : ["canary"]
        )
      )
    }
    return endpoints
  }

  private static func subset(of ids: [String], bits: UInt64) -> Set<String> {
    Set(ids.indices.filter { bits & (1 << UInt64($0)) != 0 }.map { ids[$0] })
  }
}
