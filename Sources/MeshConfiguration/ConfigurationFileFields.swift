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
internal import MeshTransport

/// Where the policy types' checks land in the file: a `MeshResilienceError` (a policy field,
/// such as `retry.maxAttempts`) becomes the file's field (`retry_policy.num_retries`), in the
/// file's units where they differ (retries rather than attempts, percentages rather than
/// shares). The ranges themselves are the policy types'; nothing here decides what is valid.
enum ConfigurationFileFields {
  /// The file's field and message for `error`, which `policy` (read from the section at
  /// `path`) failed; `error` is its cause.
  static func fieldError(
    for error: MeshResilienceError,
    in policy: MeshResiliencePolicy,
    at path: String
  ) -> FieldError {
    var fieldError = Self.place(error, in: policy, at: path)
    fieldError.cause = error
    return fieldError
  }

  private static func place(
    _ error: MeshResilienceError,
    in policy: MeshResiliencePolicy,
    at path: String
  ) -> FieldError {
    let field = error.field
    if let rest = field.dropPrefix("defaults.") {
      return Self.method(rest, error, policy.defaults, at: path)
    }
    if let rest = field.dropPrefix("methods.") {
      // Method names hold dots: the longest name the path starts with is the method's.
      for name in policy.methods.keys.sorted(by: { $0.count > $1.count }) {
        let methodPath = "\(path).methods.\(name)"
        if rest == name { return FieldError(path: methodPath, error.message) }
        if let inner = rest.dropPrefix(name + "."), let method = policy.methods[name] {
          return Self.method(inner, error, method, at: methodPath)
        }
      }
    }
    if let rest = field.dropPrefix("retryBudget.") {
      let budget = policy.retryBudget ?? MeshRetryBudgetPolicy()
      switch rest {
      case "ratio":
        let upper = MeshRetryBudgetPolicy.ratios.upperBound * 100
        return FieldError(
          path: "\(path).retry_budget.budget_percent",
          "must be 0 to \(Int(upper)), not \(budget.ratio * 100)"
        )
      default:
        return FieldError(path: "\(path).retry_budget.\(Self.snakeCased(rest))", error.message)
      }
    }
    if let rest = field.dropPrefix("circuitBreakers.") {
      return FieldError(path: "\(path).circuit_breakers.\(Self.snakeCased(rest))", error.message)
    }
    if let rest = field.dropPrefix("outlierDetection.") {
      return Self.outlier(rest, error, policy.outlierDetection, at: "\(path).outlier_detection")
    }
    if field == "propagationMargin" {
      return FieldError(path: "\(path).deadline_propagation_margin", error.message)
    }
    return FieldError(path: "\(path).\(field)", error.message)
  }

  /// A method's field (`timeout`, `retry.…`, `hedging.…`) at `path`.
  private static func method(
    _ field: String,
    _ error: MeshResilienceError,
    _ method: MeshMethodPolicy,
    at path: String
  ) -> FieldError {
    if field == "timeout" { return FieldError(path: "\(path).timeout", error.message) }
    if field == "hedging" { return FieldError(path: "\(path).hedge_policy", error.message) }
    if let rest = field.dropPrefix("retry.") {
      let retryPath = "\(path).retry_policy"
      switch rest {
      case "maxAttempts":
        let most = MeshRetryPolicy.maxAttemptsRange.upperBound
        let attempts = method.retry?.maxAttempts ?? 0
        let retries = attempts == Int.max ? "\(attempts)" : "\(attempts - 1)"
        return FieldError(
          path: "\(retryPath).num_retries",
          "must be 0 to \(most - 1) (gRPC makes at most \(most) attempts), not \(retries)"
        )
      case "retryableStatusCodes":
        return FieldError(path: "\(retryPath).retry_on", error.message)
      case "initialBackoff", "maxBackoff":
        let name = rest == "initialBackoff" ? "base_interval" : "max_interval"
        return FieldError(
          path: "\(retryPath).retry_back_off.\(name)",
          error.message.replacingOccurrences(of: "initialBackoff", with: "base_interval")
        )
      default:
        return FieldError(path: "\(retryPath).\(Self.snakeCased(rest))", error.message)
      }
    }
    if let rest = field.dropPrefix("hedging.") {
      let name = rest == "nonFatalStatusCodes" ? "non_fatal_codes" : Self.snakeCased(rest)
      return FieldError(path: "\(path).hedge_policy.\(name)", error.message)
    }
    return FieldError(path: "\(path).\(field)", error.message)
  }

  private static func outlier(
    _ field: String,
    _ error: MeshResilienceError,
    _ policy: MeshOutlierDetectionPolicy?,
    at path: String
  ) -> FieldError {
    let policy = policy ?? MeshOutlierDetectionPolicy()
    switch field {
    case "consecutiveFailures":
      return FieldError(path: "\(path).consecutive_5xx", error.message)
    case "minimumRequests":
      return FieldError(path: "\(path).request_volume", error.message)
    case "maxEjectionShare":
      let upper = MeshOutlierDetectionPolicy.maxEjectionShares.upperBound * 100
      return FieldError(
        path: "\(path).max_ejection_percent",
        "must be 0 to \(Int(upper)), not \(policy.maxEjectionShare * 100)"
      )
    case "failurePercentageThreshold":
      let threshold = (policy.failurePercentageThreshold ?? 0) * 100
      return FieldError(
        path: "\(path).failure_percentage_threshold",
        "must be above 0 and at most 100, not \(threshold)"
      )
    case "successRateStdevFactor":
      let factor = policy.successRateStdevFactor.map { "\($0)" } ?? "0"
      return FieldError(
        path: "\(path).success_rate_stdev_factor",
        "must be 0 (off) or more, not \(factor)"
      )
    default:
      return FieldError(
        path: "\(path).\(Self.snakeCased(field))",
        error.message.replacingOccurrences(of: "baseEjectionTime", with: "base_ejection_time")
      )
    }
  }

  /// `maxEjectionTime` as the file writes it: `max_ejection_time`.
  static func snakeCased(_ name: String) -> String {
    var result = ""
    for character in name {
      if character.isUppercase {
        result += "_" + character.lowercased()
      } else {
        result.append(character)
      }
    }
    return result
  }
}

extension String {
  /// The rest of the string after `prefix`, or nil if it does not start with it.
  fileprivate func dropPrefix(_ prefix: String) -> String? {
    self.hasPrefix(prefix) ? String(self.dropFirst(prefix.count)) : nil
  }
}
