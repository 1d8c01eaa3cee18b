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

/// Policies that eject readily: a low failure streak, short intervals, few requests to judge a
/// success rate or failure percentage, and ejection shares up to all of them.
private let policies: [MeshOutlierDetectionPolicy] = [
  MeshOutlierDetectionPolicy(
    consecutiveFailures: 1,
    interval: .seconds(1),
    baseEjectionTime: .seconds(2),
    maxEjectionTime: .seconds(10),
    maxEjectionShare: 1.0,
    successRateStdevFactor: 0.1,
    successRateMinimumHosts: 2,
    minimumRequests: 1,
    failurePercentageThreshold: 0.01,
    halfOpenSuccesses: 2
  ),
  MeshOutlierDetectionPolicy(
    consecutiveFailures: 3,
    interval: .milliseconds(500),
    baseEjectionTime: .seconds(1),
    maxEjectionTime: .seconds(60),
    maxEjectionShare: 0.5,
    successRateStdevFactor: 1.9,
    successRateMinimumHosts: 3,
    minimumRequests: 5,
    failurePercentageThreshold: nil,
    halfOpenSuccesses: 1
  ),
  MeshOutlierDetectionPolicy(
    consecutiveFailures: 2,
    interval: .seconds(2),
    maxEjectionShare: 0.0,
    successRateStdevFactor: nil,
    minimumRequests: 1,
    failurePercentageThreshold: 0.5
  ),
]

private let pool = (0..<6).map { "endpoint-\($0)" }

@Suite("Outlier detection properties")
struct MeshOutlierDetectorPropertyTests {
  @Test(
    "Never ejects every endpoint, whatever the successes, failures and ticks",
    arguments: policies.indices
  )
  func neverEjectsAll(policy: Int) async {
    await propertyCheck(
      count: 300,
      input: Gen.int(in: 1...pool.count),
      Gen<UInt64>.value().array(of: 1...300)
    ) { count, steps in
      var detector = MeshOutlierDetector<Instant>(policy: policies[policy])
      let endpoints = Array(pool.prefix(count))
      detector.setEndpoints(endpoints)
      var now = Instant(offset: .zero)
      for step in steps {
        let id = endpoints[Int(step >> 3) % endpoints.count]
        switch step % 8 {
        case 0, 1:
          now = now.advanced(by: .milliseconds(Int64((step >> 8) % 3_000)))
          _ = detector.tick(now: now)
        case 2:
          detector.started(id)
          _ = detector.finished(id, success: true, now: now)
        default:
          detector.started(id)
          _ = detector.finished(id, success: false, now: now)
        }
        #expect(
          detector.ejectedCount < endpoints.count || endpoints.count == 0,
          "all \(endpoints.count) ejected"
        )
        #expect(detector.ejectedCount <= detector.maxEjected)
        #expect(detector.ejected.count == detector.ejectedCount)
      }
    }
  }

  @Test(
    "Never has every endpoint ejected as the endpoint set changes",
    arguments: policies.indices
  )
  func neverAllEjectedAcrossSetChanges(policy: Int) async {
    await self.checkNeverAllEjectedAcrossSetChanges(policy: policies[policy])
  }

  private func checkNeverAllEjectedAcrossSetChanges(policy: MeshOutlierDetectionPolicy) async {
    await propertyCheck(count: 300, input: Gen<UInt64>.value().array(of: 1...300)) { steps in
      var detector = MeshOutlierDetector<Instant>(policy: policy)
      var endpoints = pool
      detector.setEndpoints(endpoints)
      var now = Instant(offset: .zero)
      for step in steps {
        switch step % 16 {
        case 0:
          // A new set: the endpoints whose bit is set, in pool order.
          endpoints = pool.indices.filter { step & (1 << UInt64($0 + 4)) != 0 }.map { pool[$0] }
          detector.setEndpoints(endpoints)
        case 1, 2, 3:
          now = now.advanced(by: .milliseconds(Int64((step >> 8) % 3_000)))
          _ = detector.tick(now: now)
        default:
          guard !endpoints.isEmpty else { continue }
          let id = endpoints[Int(step >> 4) % endpoints.count]
          detector.started(id)
          _ = detector.finished(id, success: step % 16 == 4, now: now)
        }
        if endpoints.count > 0 {
          #expect(detector.ejectedCount < endpoints.count, "all of \(endpoints) ejected")
        }
        #expect(detector.ejectedCount <= detector.maxEjected)
      }
    }
  }
}
