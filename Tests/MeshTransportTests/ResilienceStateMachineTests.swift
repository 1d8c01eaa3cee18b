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

import GRPCCore
import MeshTestKit
import MeshTransport
import Testing

private typealias Instant = MeshManualClock.Instant

private func at(_ milliseconds: Int64) -> Instant {
  Instant(offset: .milliseconds(milliseconds))
}

@Suite("Resilience state machines")
struct ResilienceStateMachineTests {
  @Test("The retry budget allows its floor per second plus its share of requests, in a window")
  func retryBudget() {
    var budget = MeshRetryBudget<Instant>(
      policy: MeshRetryBudgetPolicy(ratio: 0.2, minRetriesPerSecond: 1, window: .seconds(10))
    )
    // No traffic: the floor, 1/s over a 10 s window, allows 10 retries.
    for _ in 0..<10 { do { let allowed = budget.tryRetry(now: at(0)); #expect(allowed) } }
    do { let allowed = budget.tryRetry(now: at(0)); #expect(!allowed) }
    #expect(budget.refused == 1)
    // 100 requests allow 20 more.
    for _ in 0..<100 { budget.recordRequest(now: at(500)) }
    for _ in 0..<20 { do { let allowed = budget.tryRetry(now: at(600)); #expect(allowed) } }
    do { let allowed = budget.tryRetry(now: at(600)); #expect(!allowed) }
    let during = budget.totals(at: at(600))
    #expect(during.requests == 100 && during.retries == 30)
    // The first second's retries leave the window after 10 s; the requests of 0.5 s too.
    let after = budget.totals(at: at(10_000))
    #expect(after.requests == 0 && after.retries == 0)
    for _ in 0..<10 { do { let allowed = budget.tryRetry(now: at(10_000)); #expect(allowed) } }
    do { let allowed = budget.tryRetry(now: at(10_000)); #expect(!allowed) }
    #expect(budget.refused == 3)
  }

  @Test("A retry budget with no floor and no share refuses every retry")
  func emptyBudget() {
    var budget = MeshRetryBudget<Instant>(
      policy: MeshRetryBudgetPolicy(ratio: 0, minRetriesPerSecond: 0)
    )
    for _ in 0..<50 { budget.recordRequest(now: at(0)) }
    do { let allowed = budget.tryRetry(now: at(1)); #expect(!allowed) }
  }

  private func detector(
    consecutive: Int = 5,
    share: Double = 0.5,
    stdev: Double? = 1.0,
    minimumHosts: Int = 3,
    volume: Int = 10,
    halfOpenSuccesses: Int = 1
  ) -> MeshOutlierDetector<Instant> {
    var detector = MeshOutlierDetector<Instant>(
      policy: MeshOutlierDetectionPolicy(
        consecutiveFailures: consecutive,
        interval: .seconds(10),
        baseEjectionTime: .seconds(30),
        maxEjectionTime: .seconds(75),
        maxEjectionShare: share,
        successRateStdevFactor: stdev,
        successRateMinimumHosts: minimumHosts,
        minimumRequests: volume,
        halfOpenSuccesses: halfOpenSuccesses
      )
    )
    detector.setEndpoints(["a", "b", "c", "d"])
    _ = detector.tick(now: at(0))
    return detector
  }

  @Test("Consecutive failures eject; a success in between resets the count")
  func consecutiveFailures() {
    var detector = self.detector()
    for _ in 0..<4 {
      let changes = detector.finished("a", success: false, now: at(1))
      #expect(changes.isEmpty)
    }
    _ = detector.finished("a", success: true, now: at(1))
    for _ in 0..<4 {
      let changes = detector.finished("a", success: false, now: at(2))
      #expect(changes.isEmpty)
    }
    let changes = detector.finished("a", success: false, now: at(3))
    #expect(changes == [.ejected("a", until: at(30_003), reason: .consecutiveFailures)])
    #expect(detector.ejected == ["a"])
    #expect(!detector.admits("a"))
    #expect(detector.ejectionsTotal == 1)
  }

  @Test("A set that shrinks to ejected endpoints returns the soonest back half-open, never all out")
  func shrinkingSetReadmits() {
    var detector = self.detector(consecutive: 1)
    _ = detector.finished("a", success: false, now: at(0))
    _ = detector.finished("b", success: false, now: at(5))
    #expect(detector.ejected == ["a", "b"])
    // Two left, both ejected: one may stay out; "a", whose ejection ends first, returns.
    #expect(detector.setEndpoints(["a", "b"]) == [.halfOpen("a")])
    #expect(detector.ejected == ["b"])
    #expect(detector.admits("a"))
    // One left: it may not stay out.
    #expect(detector.setEndpoints(["b"]) == [.halfOpen("b")])
    #expect(detector.ejected.isEmpty)
    #expect(detector.state(of: "b") == .halfOpen)
    // A set that keeps the share changes nothing.
    var other = self.detector(consecutive: 1)
    _ = other.finished("a", success: false, now: at(0))
    #expect(other.setEndpoints(["a", "b", "c"]).isEmpty)
    #expect(other.ejected == ["a"])
  }

  @Test("Ejection time grows with each ejection up to the cap; half-open probes one at a time")
  func growingEjection() {
    var detector = self.detector(consecutive: 1)
    let changes1 = detector.finished("a", success: false, now: at(0))
    #expect(
      changes1 == [.ejected("a", until: at(30_000), reason: .consecutiveFailures)]
    )
    let changes2 = detector.tick(now: at(29_999))
    #expect(changes2.isEmpty)
    let changes3 = detector.tick(now: at(30_000))
    #expect(changes3 == [.halfOpen("a")])
    #expect(detector.state(of: "a") == .halfOpen)
    #expect(detector.admits("a"))
    detector.started("a")
    #expect(!detector.admits("a"))  // one probe at a time
    // The probe fails: ejected again, for twice as long.
    let changes4 = detector.finished("a", success: false, now: at(30_100))
    #expect(
      changes4 == [.ejected("a", until: at(90_100), reason: .failedProbe)]
    )
    _ = detector.tick(now: at(90_100))
    detector.started("a")
    // Third time: 90 s, capped at 75 s.
    let changes5 = detector.finished("a", success: false, now: at(90_200))
    #expect(
      changes5 == [.ejected("a", until: at(165_200), reason: .failedProbe)]
    )
    _ = detector.tick(now: at(165_200))
    detector.started("a")
    let changes6 = detector.finished("a", success: true, now: at(165_300))
    #expect(changes6 == [.readmitted("a")])
    #expect(detector.state(of: "a") == .active)
    #expect(detector.ejectionsTotal == 3)
  }

  @Test("At most the share is ejected (one at least), never all")
  func maxEjectionShare() {
    var detector = self.detector(consecutive: 1, share: 0.25)
    #expect(detector.maxEjected == 1)
    let changes7 = detector.finished("a", success: false, now: at(0))
    #expect(!changes7.isEmpty)
    let changes8 = detector.finished("b", success: false, now: at(0))
    #expect(changes8.isEmpty)
    #expect(detector.ejected == ["a"])

    var all = self.detector(consecutive: 1, share: 1)
    #expect(all.maxEjected == 3)
    for id in ["a", "b", "c", "d"] { _ = all.finished(id, success: false, now: at(0)) }
    #expect(all.ejectedCount == 3)

    var single = MeshOutlierDetector<Instant>(policy: MeshOutlierDetectionPolicy())
    single.setEndpoints(["only"])
    for _ in 0..<10 { _ = single.finished("only", success: false, now: at(0)) }
    #expect(single.ejectedCount == 0)
  }

  @Test("Success rate: an endpoint far below the others' mean is ejected at the interval")
  func successRate() {
    var detector = self.detector(consecutive: 1000)
    for id in ["a", "b", "c"] {
      for _ in 0..<20 { _ = detector.finished(id, success: true, now: at(1)) }
    }
    for index in 0..<20 { _ = detector.finished("d", success: index % 2 == 0, now: at(1)) }
    let changes9 = detector.tick(now: at(9_999))
    #expect(changes9.isEmpty)
    let changes10 = detector.tick(now: at(10_000))
    #expect(
      changes10 == [.ejected("d", until: at(40_000), reason: .successRate)]
    )
    // Too little traffic (under the request volume): no verdict.
    var quiet = self.detector(consecutive: 1000)
    for id in ["a", "b", "c"] { _ = quiet.finished(id, success: true, now: at(1)) }
    _ = quiet.finished("d", success: false, now: at(1))
    let changes11 = quiet.tick(now: at(10_000))
    #expect(changes11.isEmpty)
  }

  @Test("A budget floor near Int64.max allows retries instead of trapping at the first one")
  func budgetFloorNearMax() {
    for floor in [Int.max, Int.max - 1, Int.max / 2, Int.max / 10] {
      var budget = MeshRetryBudget<Instant>(
        policy: MeshRetryBudgetPolicy(ratio: 0.2, minRetriesPerSecond: floor, window: .seconds(10))
      )
      budget.recordRequest(now: at(0))
      for _ in 0..<3 { do { let allowed = budget.tryRetry(now: at(0)); #expect(allowed) } }
      #expect(budget.refused == 0)
    }
    // And validation refuses such a floor, naming the field, before any transport uses it.
    for floor in [Int.max, 1_000_001, -1] {
      var policy = MeshResiliencePolicy()
      policy.retryBudget = MeshRetryBudgetPolicy(minRetriesPerSecond: floor)
      #expect(
        (#expect(throws: MeshResilienceError.self) { try policy.validate() })?.field
          == "retryBudget.minRetriesPerSecond"
      )
    }
  }

  @Test("A budget with a window out of range is clamped to it, never sized by it")
  func budgetWindowOutOfRange() {
    var huge = MeshRetryBudget<Instant>(
      policy: MeshRetryBudgetPolicy(ratio: 0, minRetriesPerSecond: 1, window: .seconds(Int64.max))
    )
    // Clamped to 10 minutes: the floor allows 600 retries, not 9.2e18.
    for _ in 0..<600 { do { let allowed = huge.tryRetry(now: at(0)); #expect(allowed) } }
    do { let allowed = huge.tryRetry(now: at(0)); #expect(!allowed) }
    var tiny = MeshRetryBudget<Instant>(
      policy: MeshRetryBudgetPolicy(ratio: 0, minRetriesPerSecond: 1, window: .nanoseconds(-5))
    )
    do { let allowed = tiny.tryRetry(now: at(0)); #expect(allowed) }
    do { let allowed = tiny.tryRetry(now: at(0)); #expect(!allowed) }
  }

  @Test(
    "Durations past ten years are refused, naming the field, so timer arithmetic cannot overflow",
    arguments: [
      Duration.seconds(Int64.max), .nanoseconds(Int64.max), .seconds(10 * 365 * 86_400 + 1),
    ]
  )
  func durationsOutOfRange(duration: Duration) {
    func field(_ change: (inout MeshResiliencePolicy) -> Void) -> String? {
      var policy = MeshResiliencePolicy()
      change(&policy)
      do {
        try policy.validate()
        return nil
      } catch {
        return error.field
      }
    }
    #expect(field { $0.defaults.timeout = duration } == "defaults.timeout")
    #expect(field { $0.defaults.retry?.perTryTimeout = duration } == "defaults.retry.perTryTimeout")
    #expect(field { $0.defaults.retry?.maxBackoff = duration } == "defaults.retry.maxBackoff")
    #expect(
      field {
        $0.defaults.retry?.initialBackoff = duration
        $0.defaults.retry?.maxBackoff = duration
      } == "defaults.retry.initialBackoff"
    )
    #expect(
      field {
        $0.defaults.retry = nil
        $0.defaults.hedging = MeshHedgingPolicy(hedgingDelay: duration)
      } == "defaults.hedging.hedgingDelay"
    )
    #expect(field { $0.outlierDetection?.interval = duration } == "outlierDetection.interval")
    #expect(
      field { $0.outlierDetection?.maxEjectionTime = duration }
        == "outlierDetection.maxEjectionTime"
    )
    #expect(
      field {
        $0.outlierDetection?.baseEjectionTime = duration
        $0.outlierDetection?.maxEjectionTime = duration
      } == "outlierDetection.baseEjectionTime"
    )
    #expect(field { $0.propagationMargin = duration } == "propagationMargin")
    // Ten years exactly is still accepted.
    #expect(field { $0.defaults.timeout = MeshResiliencePolicy.maximumDuration } == nil)
  }

  @Test("Invalid settings are refused with the field's name")
  func validation() throws {
    var retry = MeshRetryPolicy()
    retry.maxAttempts = 1
    #expect(
      throws: MeshResilienceError(
        code: .outOfRange,
        field: "retry.maxAttempts",
        message: "must be 2 to 5 (attempts in all, the first included), not 1"
      )
    ) {
      try MeshMethodPolicy(retry: retry).validate()
    }
    var policy = MeshResiliencePolicy()
    policy.methods["grpc.health.v1.Health/Check"] = MeshMethodPolicy(timeout: .seconds(-1))
    let error = #expect(throws: MeshResilienceError.self) { try policy.validate() }
    #expect(error?.field == "methods.grpc.health.v1.Health/Check.timeout")
    policy.methods = ["bad key/"]
      .reduce(into: [:]) { $0[$1] = MeshMethodPolicy() }
    #expect((#expect(throws: MeshResilienceError.self) { try policy.validate() })?.code == .invalid)
    policy.methods = [:]
    policy.circuitBreakers.maxRequests = 0
    #expect(
      (#expect(throws: MeshResilienceError.self) { try policy.validate() })?.field
        == "circuitBreakers.maxRequests"
    )
    policy.circuitBreakers = MeshCircuitBreakerThresholds()
    policy.outlierDetection?.maxEjectionShare = 2
    #expect(
      (#expect(throws: MeshResilienceError.self) { try policy.validate() })?.field
        == "outlierDetection.maxEjectionShare"
    )
    policy.outlierDetection = nil
    policy.defaults = MeshMethodPolicy(retry: MeshRetryPolicy(), hedging: MeshHedgingPolicy())
    #expect(
      (#expect(throws: MeshResilienceError.self) { try policy.validate() })?.field
        == "defaults.hedging"
    )
  }

  @Test("Per-method sections override the service's, which override the defaults")
  func methodLookup() {
    let check = MethodDescriptor(fullyQualifiedService: "grpc.health.v1.Health", method: "Check")
    let watch = MethodDescriptor(fullyQualifiedService: "grpc.health.v1.Health", method: "Watch")
    let other = MethodDescriptor(fullyQualifiedService: "helloworld.Greeter", method: "SayHello")
    let policy = MeshResiliencePolicy(
      defaults: MeshMethodPolicy(timeout: .seconds(10), retry: MeshRetryPolicy()),
      methods: [
        "grpc.health.v1.Health": MeshMethodPolicy(timeout: .seconds(5)),
        "grpc.health.v1.Health/Watch": MeshMethodPolicy(
          hedging: MeshHedgingPolicy(maxAttempts: 3)
        ),
      ]
    )
    #expect(
      policy.policy(for: check) == MeshMethodPolicy(timeout: .seconds(5), retry: MeshRetryPolicy())
    )
    #expect(
      policy.policy(for: watch)
        == MeshMethodPolicy(timeout: .seconds(5), hedging: MeshHedgingPolicy(maxAttempts: 3))
    )
    #expect(policy.policy(for: other) == policy.defaults)
  }

  @Test("grpc-timeout values round-trip, rounded up to the unit that fits")
  func grpcTimeout() {
    #expect(MeshGRPCTimeout.encode(.milliseconds(250)) == "250000u")
    #expect(MeshGRPCTimeout.encode(.seconds(1000)) == "1000000m")
    #expect(MeshGRPCTimeout.encode(.seconds(3600 * 24 * 365)) == "525600M")
    #expect(MeshGRPCTimeout.encode(.seconds(3600 * 24 * 3650)) == "5256000M")
    // Twenty seconds is 20000000u in eight digits, which grpc-swift's servers refuse.
    #expect(MeshGRPCTimeout.encode(.seconds(20)) == "20000m")
    #expect(MeshGRPCTimeout.encode(.milliseconds(19_990)) == "19990m")
    // At most eight characters (what grpc-swift's servers read), never less time than asked,
    // and at most one unit step more.
    var duration = Duration.nanoseconds(1)
    while duration < .seconds(3600 * 24 * 365 * 20) {
      let text = MeshGRPCTimeout.encode(duration)
      #expect(text.utf8.count <= 8, "\(duration): \(text)")
      let decoded = MeshGRPCTimeout.decode(text)
      #expect(decoded.map { $0 >= duration } == true, "\(duration): \(text)")
      #expect(
        decoded.map { $0 <= duration + duration / 5_000 + .nanoseconds(1) } == true,
        "\(duration): \(text)"
      )
      duration = duration * 7 + .nanoseconds(3)
    }
    #expect(MeshGRPCTimeout.decode("250000u") == .milliseconds(250))
    #expect(MeshGRPCTimeout.decode("2S") == .seconds(2))
    #expect(MeshGRPCTimeout.decode("1H") == .seconds(3600))
    for bad in ["", "S", "123456789S", "12x", "-1S", "1.5S"] {
      #expect(MeshGRPCTimeout.decode(bad) == nil)
    }
  }
}

@Suite("Outlier detection: failure percentage")
struct FailurePercentageTests {
  @Test("An endpoint failing at least the threshold's share of enough attempts is ejected")
  func failurePercentage() {
    var detector = MeshOutlierDetector<MeshManualClock.Instant>(
      policy: MeshOutlierDetectionPolicy(
        consecutiveFailures: 1000,
        interval: .seconds(1),
        successRateStdevFactor: nil,
        minimumRequests: 10,
        failurePercentageThreshold: 0.4
      )
    )
    let start = MeshManualClock.Instant(offset: .zero)
    detector.setEndpoints(["flaky", "steady"])
    _ = detector.tick(now: start)
    for index in 0..<10 {
      _ = detector.finished("flaky", success: index % 2 == 0, now: start)
      _ = detector.finished("steady", success: index != 0, now: start)
    }
    let changes = detector.tick(now: start.advanced(by: .seconds(1)))
    #expect(
      changes == [
        .ejected("flaky", until: start.advanced(by: .seconds(31)), reason: .failurePercentage)
      ]
    )
  }
}
