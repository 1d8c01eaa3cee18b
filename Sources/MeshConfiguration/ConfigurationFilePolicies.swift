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

internal import MeshTransport

// The policies of a section as the file spells them (Envoy's names and units), mapped to the
// mesh's policy types with no range checks of their own.

struct RetryFile: Decodable {
  var retryOn: [String]?
  var numRetries: Int?
  var perTryTimeout: FileDuration?
  var baseInterval: FileDuration?
  var maxInterval: FileDuration?
  var path = ""

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case retryOn = "retry_on"
    case numRetries = "num_retries"
    case perTryTimeout = "per_try_timeout"
    case retryBackOff = "retry_back_off"
  }

  private enum BackOffKeys: String, CodingKey, CaseIterable {
    case baseInterval = "base_interval"
    case maxInterval = "max_interval"
  }

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
    let container = try decoder.container(keyedBy: CodingKeys.self)
    if let list = try? container.decodeIfPresent([String].self, forKey: .retryOn) {
      self.retryOn = list
    } else if let text = try container.decodeIfPresent(String.self, forKey: .retryOn) {
      self.retryOn = text.split(separator: ",").map(String.init)
    }
    self.numRetries = try container.decodeIfPresent(FileInteger.self, forKey: .numRetries)?.value
    self.perTryTimeout = try container.decodeIfPresent(FileDuration.self, forKey: .perTryTimeout)
    if container.contains(.retryBackOff) {
      let backOff = try container.superDecoder(forKey: .retryBackOff)
      try rejectUnknownKeys(in: backOff, known: BackOffKeys.allCases.map(\.rawValue))
      let intervals = try backOff.container(keyedBy: BackOffKeys.self)
      self.baseInterval = try intervals.decodeIfPresent(FileDuration.self, forKey: .baseInterval)
      self.maxInterval = try intervals.decodeIfPresent(FileDuration.self, forKey: .maxInterval)
    }
  }

  /// Nil for `num_retries: 0` (no retries). Only the retry conditions are checked here (they are
  /// words to parse); every range is the policy's to check.
  func policy(at path: String) throws(FieldError) -> MeshRetryPolicy? {
    var policy = MeshRetryPolicy()
    if let retries = self.numRetries {
      if retries == 0 { return nil }
      // Saturating: a count past the policy's range is refused by it, never an overflow here.
      policy.maxAttempts = retries < Int.max ? retries + 1 : Int.max
    }
    if let words = self.retryOn {
      policy.retryableStatusCodes = try statusCodes(words, at: "\(path).retry_on")
    }
    if let perTry = self.perTryTimeout { policy.perTryTimeout = perTry.value }
    if let base = self.baseInterval {
      policy.initialBackoff = base.value
      // A base past the default maximum raises it, unless the file sets one.
      policy.maxBackoff = max(policy.maxBackoff, base.value)
    }
    if let maximum = self.maxInterval { policy.maxBackoff = maximum.value }
    return policy
  }
}

struct HedgeFile: Decodable {
  var maxAttempts: Int?
  var hedgingDelay: FileDuration?
  var nonFatalCodes: [String]?

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case maxAttempts = "max_attempts"
    case hedgingDelay = "hedging_delay"
    case nonFatalCodes = "non_fatal_codes"
  }

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.maxAttempts = try container.decodeIfPresent(FileInteger.self, forKey: .maxAttempts)?.value
    self.hedgingDelay = try container.decodeIfPresent(FileDuration.self, forKey: .hedgingDelay)
    self.nonFatalCodes = try container.decodeIfPresent([String].self, forKey: .nonFatalCodes)
  }

  func policy(at path: String) throws(FieldError) -> MeshHedgingPolicy {
    var policy = MeshHedgingPolicy()
    if let attempts = self.maxAttempts { policy.maxAttempts = attempts }
    if let delay = self.hedgingDelay { policy.hedgingDelay = delay.value }
    if let codes = self.nonFatalCodes {
      policy.nonFatalStatusCodes = try statusCodes(codes, at: "\(path).non_fatal_codes")
    }
    return policy
  }
}

struct BudgetFile: Decodable {
  var budgetPercent: Double?
  var minRetriesPerSecond: Int?
  var window: FileDuration?

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case budgetPercent = "budget_percent"
    case minRetriesPerSecond = "min_retries_per_second"
    case window
  }

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.budgetPercent = try container.decodeIfPresent(Double.self, forKey: .budgetPercent)
    self.minRetriesPerSecond = try container.decodeIfPresent(
      FileInteger.self,
      forKey: .minRetriesPerSecond
    )?.value
    self.window = try container.decodeIfPresent(FileDuration.self, forKey: .window)
  }

  var policy: MeshRetryBudgetPolicy {
    var policy = MeshRetryBudgetPolicy()
    if let percent = self.budgetPercent { policy.ratio = percent / 100 }
    if let floor = self.minRetriesPerSecond { policy.minRetriesPerSecond = floor }
    if let window = self.window { policy.window = window.value }
    return policy
  }
}

struct BreakersFile: Decodable {
  var values: [String: Int] = [:]

  fileprivate static let fields = [
    "max_connections", "max_pending_requests", "max_requests", "max_retries",
  ]

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: Self.fields)
    let container = try decoder.container(keyedBy: AnyKey.self)
    for key in container.allKeys {
      self.values[key.stringValue] = try container.decode(FileInteger.self, forKey: key).value
    }
  }

  var thresholds: MeshCircuitBreakerThresholds {
    var thresholds = MeshCircuitBreakerThresholds()
    for (field, value) in self.values {
      switch field {
      case "max_connections": thresholds.maxConnections = value
      case "max_pending_requests": thresholds.maxPendingRequests = value
      case "max_requests": thresholds.maxRequests = value
      default: thresholds.maxRetries = value
      }
    }
    return thresholds
  }
}

struct OutlierFile: Decodable {
  var consecutive5xx: Int?
  var interval: FileDuration?
  var baseEjectionTime: FileDuration?
  var maxEjectionTime: FileDuration?
  var maxEjectionPercent: Double?
  var successRateStdevFactor: Double?
  var successRateMinimumHosts: Int?
  var requestVolume: Int?
  var failurePercentageThreshold: Double?
  var halfOpenSuccesses: Int?
  var enabled: Bool?

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case consecutive5xx = "consecutive_5xx"
    case interval
    case baseEjectionTime = "base_ejection_time"
    case maxEjectionTime = "max_ejection_time"
    case maxEjectionPercent = "max_ejection_percent"
    case successRateStdevFactor = "success_rate_stdev_factor"
    case successRateMinimumHosts = "success_rate_minimum_hosts"
    case requestVolume = "request_volume"
    case failurePercentageThreshold = "failure_percentage_threshold"
    case halfOpenSuccesses = "half_open_successes"
    case enabled
  }

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.consecutive5xx = try c.decodeIfPresent(FileInteger.self, forKey: .consecutive5xx)?.value
    self.interval = try c.decodeIfPresent(FileDuration.self, forKey: .interval)
    self.baseEjectionTime = try c.decodeIfPresent(FileDuration.self, forKey: .baseEjectionTime)
    self.maxEjectionTime = try c.decodeIfPresent(FileDuration.self, forKey: .maxEjectionTime)
    self.maxEjectionPercent = try c.decodeIfPresent(Double.self, forKey: .maxEjectionPercent)
    self.successRateStdevFactor = try c.decodeIfPresent(
      Double.self,
      forKey: .successRateStdevFactor
    )
    self.successRateMinimumHosts = try c.decodeIfPresent(
      FileInteger.self,
      forKey: .successRateMinimumHosts
    )?.value
    self.requestVolume = try c.decodeIfPresent(FileInteger.self, forKey: .requestVolume)?.value
    self.failurePercentageThreshold = try c.decodeIfPresent(
      Double.self,
      forKey: .failurePercentageThreshold
    )
    self.halfOpenSuccesses = try c.decodeIfPresent(FileInteger.self, forKey: .halfOpenSuccesses)?
      .value
    self.enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
  }

  /// Nil for `enabled: false`.
  var policy: MeshOutlierDetectionPolicy? {
    if self.enabled == false { return nil }
    var policy = MeshOutlierDetectionPolicy()
    if let count = self.consecutive5xx { policy.consecutiveFailures = count }
    if let interval = self.interval { policy.interval = interval.value }
    if let base = self.baseEjectionTime {
      policy.baseEjectionTime = base.value
      // A base past the default maximum raises it, unless the file sets one.
      policy.maxEjectionTime = max(policy.maxEjectionTime, base.value)
    }
    if let maximum = self.maxEjectionTime { policy.maxEjectionTime = maximum.value }
    if let percent = self.maxEjectionPercent { policy.maxEjectionShare = percent / 100 }
    if let factor = self.successRateStdevFactor {
      policy.successRateStdevFactor = factor == 0 ? nil : factor  // 0 turns it off
    }
    if let hosts = self.successRateMinimumHosts { policy.successRateMinimumHosts = hosts }
    if let volume = self.requestVolume { policy.minimumRequests = volume }
    if let threshold = self.failurePercentageThreshold {
      policy.failurePercentageThreshold = threshold / 100
    }
    if let successes = self.halfOpenSuccesses { policy.halfOpenSuccesses = successes }
    return policy
  }
}
