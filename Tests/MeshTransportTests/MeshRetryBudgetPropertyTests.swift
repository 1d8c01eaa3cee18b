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

import MeshTestKit
import MeshTransport
import PropertyBased
import Testing

private typealias Instant = MeshManualClock.Instant

/// Ratios from none to the most a policy may have.
private let ratios = Gen.int(in: 0...4).map { choice -> Double in
  [0, 0.1, 0.2, 1, 1_000][choice]
}

/// Floors from none to one no policy validation would let through (an Int.max floor must not
/// overflow anything).
private let floors = zip(Gen.int(in: 0...4), Gen.int(in: 0...1_000)).map { choice, any -> Int in
  [0, 1, 10, any, Int.max][choice]
}

@Suite("Retry budget properties")
struct MeshRetryBudgetPropertyTests {
  @Test("Never allows more retries than its ratio of the window's requests plus its floor")
  func neverAllowsMoreThanRatioPlusFloor() async {
    await propertyCheck(
      count: 500,
      input: ratios,
      floors,
      Gen.int(in: 1...20),
      Gen<UInt64>.value().array(of: 1...400)
    ) { ratio, floor, windowSeconds, steps in
      let policy = MeshRetryBudgetPolicy(
        ratio: ratio,
        minRetriesPerSecond: floor,
        window: .seconds(windowSeconds)
      )
      var budget = MeshRetryBudget<Instant>(policy: policy)
      // The model: every request and allowed retry with its second since the first event.
      var requests: [Int] = []
      var retries: [Int] = []
      var now = Instant(offset: .seconds(1_000))
      var origin: Instant?
      for step in steps {
        if step % 4 == 0 {
          now = now.advanced(by: .milliseconds(Int64((step >> 2) % 3_000)))
          continue
        }
        if origin == nil { origin = now }
        let second = Int((origin!.duration(to: now) / .seconds(1)).rounded(.down))
        if step % 4 == 1 {
          budget.recordRequest(now: now)
          requests.append(second)
          continue
        }
        guard budget.tryRetry(now: now) else { continue }
        retries.append(second)
        let inWindow = { (events: [Int]) in
          events.filter { $0 > second - windowSeconds && $0 <= second }.count
        }
        let allowance =
          ratio * Double(inWindow(requests)) + Double(floor) * Double(windowSeconds)
        #expect(
          Double(inWindow(retries)) <= allowance,
          "\(inWindow(retries)) retries allowed against \(inWindow(requests)) requests"
        )
      }
    }
  }
}
