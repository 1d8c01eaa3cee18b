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

public import GRPCCore
public import MeshCore

/// A resilience setting that cannot be used: its ``MeshInputError/field`` names it
/// (`retry.maxAttempts`), its ``MeshInputError/code`` says whether it is out of range or invalid.
public typealias MeshResilienceError = MeshInputError

/// Retries of failed attempts (gRFC A6), each on another endpoint when there is one.
///
/// Only methods that are safe to run twice should retry. A streaming RPC is retried only while
/// nothing has come back from the server, and only while its sent messages are still buffered
/// (grpc-swift keeps the first 64); past that the attempt is committed.
public struct MeshRetryPolicy: Hashable, Sendable {
  /// The attempts an RPC may make in all, the first included (gRPC's limit): 2 to 5.
  public static let maxAttemptsRange: ClosedRange<Int> = 2...5

  /// Attempts in all, the first included: 2...5 (gRPC caps attempts at 5). Envoy's
  /// `num_retries: 3` is 4.
  public var maxAttempts: Int
  /// The codes that are retried. UNAVAILABLE covers Envoy's `5xx`, `reset`, `connect-failure` and
  /// `refused-stream`: transport failures surface as UNAVAILABLE.
  public var retryableStatusCodes: Set<Status.Code>
  /// How long one attempt may wait for its response to start before it is abandoned and retried
  /// (as UNAVAILABLE) on another endpoint. Nil: only the RPC's deadline bounds an attempt.
  public var perTryTimeout: Duration?
  /// The first backoff's ceiling; each retry waits a random time up to the current ceiling (full
  /// jitter), and the ceiling grows by ``backoffMultiplier`` up to ``maxBackoff``.
  public var initialBackoff: Duration
  public var maxBackoff: Duration
  public var backoffMultiplier: Double

  /// The Envoy sidecars' retry policy this mesh replaces: 3 retries on UNAVAILABLE, 5 s per try, 0.25 s to 2 s backoff.
  public init(
    maxAttempts: Int = 4,
    retryableStatusCodes: Set<Status.Code> = [.unavailable],
    perTryTimeout: Duration? = .seconds(5),
    initialBackoff: Duration = .milliseconds(250),
    maxBackoff: Duration = .seconds(2),
    backoffMultiplier: Double = 2
  ) {
    self.maxAttempts = maxAttempts
    self.retryableStatusCodes = retryableStatusCodes
    self.perTryTimeout = perTryTimeout
    self.initialBackoff = initialBackoff
    self.maxBackoff = maxBackoff
    self.backoffMultiplier = backoffMultiplier
  }

  public func validate() throws(MeshResilienceError) {
    guard MeshRetryPolicy.maxAttemptsRange.contains(self.maxAttempts) else {
      throw MeshResilienceError(
        .outOfRange,
        field: "maxAttempts",
        "must be 2 to 5 (attempts in all, the first included), not \(self.maxAttempts)"
      )
    }
    guard !self.retryableStatusCodes.isEmpty else {
      throw MeshResilienceError(
        .invalid,
        field: "retryableStatusCodes",
        "must name at least one code"
      )
    }
    guard !self.retryableStatusCodes.contains(.ok) else {
      throw MeshResilienceError(.invalid, field: "retryableStatusCodes", "OK is not a failure")
    }
    if let perTryTimeout = self.perTryTimeout {
      try checkDuration(perTryTimeout, field: "perTryTimeout", positive: true)
    }
    try checkDuration(self.initialBackoff, field: "initialBackoff", positive: true)
    try checkDuration(self.maxBackoff, field: "maxBackoff", positive: true)
    guard self.maxBackoff >= self.initialBackoff else {
      throw MeshResilienceError(
        .outOfRange,
        field: "maxBackoff",
        "must be at least initialBackoff (\(self.initialBackoff)), not \(self.maxBackoff)"
      )
    }
    guard self.backoffMultiplier >= 1, self.backoffMultiplier.isFinite else {
      throw MeshResilienceError(
        .outOfRange,
        field: "backoffMultiplier",
        "must be a finite number of at least 1, not \(self.backoffMultiplier)"
      )
    }
  }

  /// grpc-swift's policy; call only after ``validate()`` (its initialiser traps on bad values).
  var grpcPolicy: RetryPolicy {
    RetryPolicy(
      maxAttempts: self.maxAttempts,
      initialBackoff: self.initialBackoff,
      maxBackoff: self.maxBackoff,
      backoffMultiplier: self.backoffMultiplier,
      retryableStatusCodes: self.retryableStatusCodes
    )
  }
}

/// Hedging (gRFC A6): further attempts, on other endpoints, when the first is slow to answer.
/// The first usable answer wins and the others are cancelled. Idempotent methods only.
public struct MeshHedgingPolicy: Hashable, Sendable {
  /// Attempts in all, the first included: 2...5.
  public var maxAttempts: Int
  /// The wait before each further attempt; zero sends them all at once.
  public var hedgingDelay: Duration
  /// Codes after which the other attempts go on; any other code ends the RPC.
  public var nonFatalStatusCodes: Set<Status.Code>

  public init(
    maxAttempts: Int = 2,
    hedgingDelay: Duration = .milliseconds(50),
    nonFatalStatusCodes: Set<Status.Code> = [.unavailable]
  ) {
    self.maxAttempts = maxAttempts
    self.hedgingDelay = hedgingDelay
    self.nonFatalStatusCodes = nonFatalStatusCodes
  }

  public func validate() throws(MeshResilienceError) {
    guard MeshRetryPolicy.maxAttemptsRange.contains(self.maxAttempts) else {
      throw MeshResilienceError(
        .outOfRange,
        field: "maxAttempts",
        "must be 2 to 5 (attempts in all, the first included), not \(self.maxAttempts)"
      )
    }
    try checkDuration(self.hedgingDelay, field: "hedgingDelay", positive: false)
  }
}

/// How one method (or every method of a target) is called: its timeout and retries or hedging.
public struct MeshMethodPolicy: Hashable, Sendable {
  /// The RPC's timeout over all its attempts. A caller's explicit timeout wins when shorter.
  public var timeout: Duration?
  /// Retries; nil: none.
  public var retry: MeshRetryPolicy?
  /// Hedging instead of retries; nil: none.
  public var hedging: MeshHedgingPolicy?
  /// In a per-method or per-service section: this method never retries or hedges, whatever the
  /// sections under it say (a section with neither `retry` nor `hedging` otherwise inherits
  /// them).
  public var retriesDisabled: Bool

  public init(
    timeout: Duration? = nil,
    retry: MeshRetryPolicy? = nil,
    hedging: MeshHedgingPolicy? = nil,
    retriesDisabled: Bool = false
  ) {
    self.timeout = timeout
    self.retry = retry
    self.hedging = hedging
    self.retriesDisabled = retriesDisabled
  }

  public func validate() throws(MeshResilienceError) {
    if let timeout = self.timeout {
      try checkDuration(timeout, field: "timeout", positive: true)
    }
    if self.retry != nil && self.hedging != nil {
      throw MeshResilienceError(
        .invalid,
        field: "hedging",
        "a method either retries or hedges, not both"
      )
    }
    if self.retriesDisabled && (self.retry != nil || self.hedging != nil) {
      throw MeshResilienceError(
        .invalid,
        field: "retriesDisabled",
        "a method with retries disabled sets neither retry nor hedging"
      )
    }
    do { try self.retry?.validate() } catch { throw error.nested(in: "retry") }
    do { try self.hedging?.validate() } catch { throw error.nested(in: "hedging") }
  }

  /// The settings of `self`, with `override`'s where it sets them.
  func merged(with override: MeshMethodPolicy) -> MeshMethodPolicy {
    var merged = self
    if let timeout = override.timeout { merged.timeout = timeout }
    if override.retry != nil || override.hedging != nil || override.retriesDisabled {
      merged.retry = override.retry
      merged.hedging = override.hedging
      merged.retriesDisabled = override.retriesDisabled
    }
    return merged
  }
}

/// Caps retries at a share of recent requests plus a floor per second (Finagle, linkerd2), so
/// retries cannot multiply an outage.
public struct MeshRetryBudgetPolicy: Hashable, Sendable {
  /// Retries allowed per request in the window: 0.2 is 20 %.
  public var ratio: Double
  /// Retries always allowed per second, whatever the traffic.
  public var minRetriesPerSecond: Int
  /// How long a request counts toward the budget.
  public var window: Duration

  public init(ratio: Double = 0.2, minRetriesPerSecond: Int = 10, window: Duration = .seconds(10)) {
    self.ratio = ratio
    self.minRetriesPerSecond = minRetriesPerSecond
    self.window = window
  }

  /// The ratios a budget may have: up to 1,000 retries per request.
  public static let ratios: ClosedRange<Double> = 0...1_000
  /// The floors a budget may have: up to a million retries a second, so that the floor times the
  /// window's seconds stays a small number.
  public static let minRetriesPerSecondRange: ClosedRange<Int> = 0...1_000_000
  /// The windows a budget may have: 1 s to 10 min (one bucket a second).
  public static let windows: ClosedRange<Duration> = .seconds(1)...(.seconds(600))

  public func validate() throws(MeshResilienceError) {
    guard Self.ratios.contains(self.ratio) else {
      throw MeshResilienceError(
        .outOfRange,
        field: "ratio",
        "must be 0 to 1000 (retries per request), not \(self.ratio)"
      )
    }
    guard Self.minRetriesPerSecondRange.contains(self.minRetriesPerSecond) else {
      throw MeshResilienceError(
        .outOfRange,
        field: "minRetriesPerSecond",
        "must be 0 to 1000000, not \(self.minRetriesPerSecond)"
      )
    }
    guard Self.windows.contains(self.window) else {
      throw MeshResilienceError(
        .outOfRange,
        field: "window",
        "must be 1 s to 10 min, not \(self.window)"
      )
    }
  }
}

/// Per-endpoint outlier detection: endpoints that fail are ejected (not picked) for a while.
///
/// An endpoint is ejected after ``consecutiveFailures`` failed attempts in a row, or when, over
/// an ``interval`` with enough traffic, its success rate falls more than ``successRateStdevFactor``
/// standard deviations below the mean of the endpoints, or when its share of failures over an
/// interval reaches ``failurePercentageThreshold`` (gRFC A50's failure-percentage ejection, for
/// few endpoints, where a standard deviation says little). Each ejection lasts ``baseEjectionTime``
/// times the number of times it was ejected, up to ``maxEjectionTime``; then the endpoint is
/// half-open: it takes one probe at a time, and ``halfOpenSuccesses`` successes in a row readmit
/// it (a failure ejects it again, for longer). At most ``maxEjectionShare`` of the endpoints are
/// ejected at once (one at least, never all).
///
/// Failures are UNAVAILABLE, INTERNAL, UNKNOWN and DATA_LOSS answers, transport failures and
/// per-try timeouts; other codes are the application's answers, not the endpoint's fault.
public struct MeshOutlierDetectionPolicy: Hashable, Sendable {
  /// The share of endpoints that may be ejected at once: 0 to 1.
  public static let maxEjectionShares: ClosedRange<Double> = 0...1

  public var consecutiveFailures: Int
  public var interval: Duration
  public var baseEjectionTime: Duration
  public var maxEjectionTime: Duration
  /// 0...1: 0.5 is half of the endpoints.
  public var maxEjectionShare: Double
  /// Nil turns success-rate ejection off.
  public var successRateStdevFactor: Double?
  /// Success rate needs this many endpoints with enough traffic.
  public var successRateMinimumHosts: Int
  /// Attempts an endpoint needs in an interval for either rate to judge it.
  public var minimumRequests: Int
  /// 0...1: an endpoint failing at least this share of its attempts in an interval is ejected.
  /// Nil turns failure-percentage ejection off.
  public var failurePercentageThreshold: Double?
  public var halfOpenSuccesses: Int

  public init(
    consecutiveFailures: Int = 5,
    interval: Duration = .seconds(10),
    baseEjectionTime: Duration = .seconds(30),
    maxEjectionTime: Duration = .seconds(300),
    maxEjectionShare: Double = 0.5,
    successRateStdevFactor: Double? = 1.9,
    successRateMinimumHosts: Int = 3,
    minimumRequests: Int = 100,
    failurePercentageThreshold: Double? = nil,
    halfOpenSuccesses: Int = 1
  ) {
    self.consecutiveFailures = consecutiveFailures
    self.interval = interval
    self.baseEjectionTime = baseEjectionTime
    self.maxEjectionTime = maxEjectionTime
    self.maxEjectionShare = maxEjectionShare
    self.successRateStdevFactor = successRateStdevFactor
    self.successRateMinimumHosts = successRateMinimumHosts
    self.minimumRequests = minimumRequests
    self.failurePercentageThreshold = failurePercentageThreshold
    self.halfOpenSuccesses = halfOpenSuccesses
  }

  public func validate() throws(MeshResilienceError) {
    guard self.consecutiveFailures >= 1 else {
      throw MeshResilienceError(
        .outOfRange,
        field: "consecutiveFailures",
        "must be at least 1, not \(self.consecutiveFailures)"
      )
    }
    try checkDuration(self.interval, field: "interval", positive: true)
    try checkDuration(self.baseEjectionTime, field: "baseEjectionTime", positive: true)
    try checkDuration(self.maxEjectionTime, field: "maxEjectionTime", positive: true)
    guard self.maxEjectionTime >= self.baseEjectionTime else {
      throw MeshResilienceError(
        .outOfRange,
        field: "maxEjectionTime",
        "must be at least baseEjectionTime (\(self.baseEjectionTime)), not \(self.maxEjectionTime)"
      )
    }
    guard Self.maxEjectionShares.contains(self.maxEjectionShare) else {
      throw MeshResilienceError(
        .outOfRange,
        field: "maxEjectionShare",
        "must be 0 to 1, not \(self.maxEjectionShare)"
      )
    }
    if let factor = self.successRateStdevFactor, !(factor > 0 && factor.isFinite) {
      throw MeshResilienceError(
        .outOfRange,
        field: "successRateStdevFactor",
        "must be positive, not \(factor)"
      )
    }
    guard self.successRateMinimumHosts >= 2 else {
      throw MeshResilienceError(
        .outOfRange,
        field: "successRateMinimumHosts",
        "must be at least 2, not \(self.successRateMinimumHosts)"
      )
    }
    guard self.minimumRequests >= 1 else {
      throw MeshResilienceError(
        .outOfRange,
        field: "minimumRequests",
        "must be at least 1, not \(self.minimumRequests)"
      )
    }
    if let threshold = self.failurePercentageThreshold, !(threshold > 0 && threshold <= 1) {
      throw MeshResilienceError(
        .outOfRange,
        field: "failurePercentageThreshold",
        "must be above 0 and at most 1, not \(threshold)"
      )
    }
    guard self.halfOpenSuccesses >= 1 else {
      throw MeshResilienceError(
        .outOfRange,
        field: "halfOpenSuccesses",
        "must be at least 1, not \(self.halfOpenSuccesses)"
      )
    }
  }
}

/// The resilience of calls to one target service.
public struct MeshResiliencePolicy: Hashable, Sendable {
  /// Every method's timeout and retries.
  public var defaults: MeshMethodPolicy
  /// Per-method settings over ``defaults``, keyed by `"package.Service/Method"` or by
  /// `"package.Service"` for all of a service's methods (the exact method wins).
  public var methods: [String: MeshMethodPolicy]
  /// Nil: retries are limited only by their attempts and the breaker.
  public var retryBudget: MeshRetryBudgetPolicy?
  public var circuitBreakers: MeshCircuitBreakerThresholds
  /// Nil: no ejection.
  public var outlierDetection: MeshOutlierDetectionPolicy?
  /// Taken off the remaining time of an incoming RPC when a server handler calls on (deadline
  /// propagation), for the time the answer takes to travel back.
  public var propagationMargin: Duration

  public init(
    defaults: MeshMethodPolicy = MeshMethodPolicy(retry: MeshRetryPolicy()),
    methods: [String: MeshMethodPolicy] = [:],
    retryBudget: MeshRetryBudgetPolicy? = MeshRetryBudgetPolicy(),
    circuitBreakers: MeshCircuitBreakerThresholds = MeshCircuitBreakerThresholds(),
    outlierDetection: MeshOutlierDetectionPolicy? = MeshOutlierDetectionPolicy(),
    propagationMargin: Duration = .milliseconds(10)
  ) {
    self.defaults = defaults
    self.methods = methods
    self.retryBudget = retryBudget
    self.circuitBreakers = circuitBreakers
    self.outlierDetection = outlierDetection
    self.propagationMargin = propagationMargin
  }

  public func validate() throws(MeshResilienceError) {
    do { try self.defaults.validate() } catch { throw error.nested(in: "defaults") }
    for (name, method) in self.methods.sorted(by: { $0.key < $1.key }) {
      guard Self.isMethodKey(name) else {
        throw MeshResilienceError(
          .invalid,
          field: "methods.\(name)",
          "must be named 'package.Service/Method' or 'package.Service'"
        )
      }
      do { try method.validate() } catch { throw error.nested(in: "methods.\(name)") }
    }
    do { try self.retryBudget?.validate() } catch { throw error.nested(in: "retryBudget") }
    do { try self.circuitBreakers.validate() } catch {
      throw error.nested(in: "circuitBreakers")
    }
    do { try self.outlierDetection?.validate() } catch {
      throw error.nested(in: "outlierDetection")
    }
    try checkDuration(self.propagationMargin, field: "propagationMargin", positive: false)
  }

  /// The longest any duration of a resilience policy may be: ten years. The transport adds these
  /// to its clock's now, multiplies ejection times and backoffs, and grpc-swift turns backoffs
  /// into whole seconds as `Int64`; bounded here, once, none of that can overflow.
  public static let maximumDuration: Duration = .seconds(10 * 365 * 86_400)

  /// The policy of `method`: the defaults, then the service's section, then the method's.
  public func policy(for method: MethodDescriptor) -> MeshMethodPolicy {
    if self.methods.isEmpty { return self.defaults }
    var policy = self.defaults
    if let service = self.methods[method.service.fullyQualifiedService] {
      policy = policy.merged(with: service)
    }
    if let exact = self.methods[method.fullyQualifiedMethod] {
      policy = policy.merged(with: exact)
    }
    return policy
  }

  /// Whether `key` names a method (`"package.Service/Method"`) or a service
  /// (`"package.Service"`), the keys of ``methods``.
  public static func isMethodKey(_ key: String) -> Bool {
    let parts = key.split(separator: "/", omittingEmptySubsequences: false)
    return (1...2).contains(parts.count)
      && parts.allSatisfy { !$0.isEmpty && !$0.contains(where: \.isWhitespace) }
  }
}

/// Checks that `value` is within 0 (or above it, when `positive`) and
/// ``MeshResiliencePolicy/maximumDuration``.
private func checkDuration(
  _ value: Duration,
  field: String,
  positive: Bool
) throws(MeshResilienceError) {
  if positive {
    guard value > .zero else {
      throw MeshResilienceError(.outOfRange, field: field, "must be positive, not \(value)")
    }
  } else {
    guard value >= .zero else {
      throw MeshResilienceError(.outOfRange, field: field, "must not be negative, not \(value)")
    }
  }
  guard value <= MeshResiliencePolicy.maximumDuration else {
    throw MeshResilienceError(
      .outOfRange,
      field: field,
      "must be at most 10 years (87600h), not \(value)"
    )
  }
}
