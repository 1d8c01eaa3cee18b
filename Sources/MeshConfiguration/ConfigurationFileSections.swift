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
internal import GRPCCore
internal import MeshTransport

// A section of the file (every target's defaults, or a service's) and its methods, read into
// a resilience policy. Nothing here checks a range: the policy types do, once.

struct SectionFile: Decodable {
  var timeout: FileDuration?
  var lbPolicy: String?
  var retryPolicy: RetryFile?
  var hedgePolicy: HedgeFile?
  var retryBudget: BudgetFile?
  var circuitBreakers: BreakersFile?
  var outlierDetection: OutlierFile?
  var deadlinePropagationMargin: FileDuration?
  var methods: [String: MethodFile]?

  init() {}

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case timeout
    case lbPolicy = "lb_policy"
    case retryPolicy = "retry_policy"
    case hedgePolicy = "hedge_policy"
    case retryBudget = "retry_budget"
    case circuitBreakers = "circuit_breakers"
    case outlierDetection = "outlier_detection"
    case deadlinePropagationMargin = "deadline_propagation_margin"
    case methods
  }

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.timeout = try container.decodeIfPresent(FileDuration.self, forKey: .timeout)
    self.lbPolicy = try container.decodeIfPresent(String.self, forKey: .lbPolicy)
    self.retryPolicy = try container.decodeIfPresent(RetryFile.self, forKey: .retryPolicy)
    self.hedgePolicy = try container.decodeIfPresent(HedgeFile.self, forKey: .hedgePolicy)
    self.retryBudget = try container.decodeIfPresent(BudgetFile.self, forKey: .retryBudget)
    self.circuitBreakers = try container.decodeIfPresent(
      BreakersFile.self,
      forKey: .circuitBreakers
    )
    self.outlierDetection = try container.decodeIfPresent(
      OutlierFile.self,
      forKey: .outlierDetection
    )
    self.deadlinePropagationMargin = try container.decodeIfPresent(
      FileDuration.self,
      forKey: .deadlinePropagationMargin
    )
    self.methods = try container.decodeIfPresent([String: MethodFile].self, forKey: .methods)
  }

  /// This section, with `defaults`' value for each key it leaves unset.
  func over(_ defaults: SectionFile) -> SectionFile {
    var merged = self
    merged.timeout = self.timeout ?? defaults.timeout
    merged.lbPolicy = self.lbPolicy ?? defaults.lbPolicy
    if self.retryPolicy == nil && self.hedgePolicy == nil {
      merged.retryPolicy = defaults.retryPolicy
      merged.hedgePolicy = defaults.hedgePolicy
    }
    merged.retryBudget = self.retryBudget ?? defaults.retryBudget
    merged.circuitBreakers = self.circuitBreakers ?? defaults.circuitBreakers
    merged.outlierDetection = self.outlierDetection ?? defaults.outlierDetection
    merged.deadlinePropagationMargin =
      self.deadlinePropagationMargin ?? defaults.deadlinePropagationMargin
    var methods = defaults.methods ?? [:]
    for (name, method) in self.methods ?? [:] { methods[name] = method }
    merged.methods = methods.isEmpty ? nil : methods
    return merged
  }

  func section(at path: String) throws(FieldError) -> MeshConfigurationFile.Section {
    var resilience = MeshResiliencePolicy()
    resilience.defaults = try MethodFile(
      timeout: self.timeout,
      retryPolicy: self.retryPolicy,
      hedgePolicy: self.hedgePolicy
    ).policy(at: path, over: resilience.defaults)
    for (name, method) in self.methods ?? [:] {
      resilience.methods[name] = try method.policy(
        at: "\(path).methods.\(name)",
        over: MeshMethodPolicy()
      )
    }
    if let budget = self.retryBudget {
      resilience.retryBudget = budget.policy
    }
    if let breakers = self.circuitBreakers {
      resilience.circuitBreakers = breakers.thresholds
    }
    if let outlier = self.outlierDetection {
      resilience.outlierDetection = outlier.policy
    }
    if let margin = self.deadlinePropagationMargin {
      resilience.propagationMargin = margin.value
    }
    var policy: MeshBalancingPolicy?
    if let name = self.lbPolicy {
      switch name.lowercased().replacingOccurrences(of: "-", with: "_") {
      case "round_robin": policy = .roundRobin
      case "pick_first": policy = .pickFirst
      case "least_request": policy = .leastRequest
      case "peak_ewma": policy = .peakEWMA()
      case "weighted", "consul_weights": policy = .weighted
      default:
        throw FieldError(
          path: "\(path).lb_policy",
          "must be round_robin, pick_first, least_request, peak_ewma or weighted, not '\(name)'"
        )
      }
    }
    // Every range is checked once, by the policy types; an error is reported at the file's field.
    do {
      try resilience.validate()
    } catch {
      throw ConfigurationFileFields.fieldError(for: error, in: resilience, at: path)
    }
    return MeshConfigurationFile.Section(resilience: resilience, policy: policy)
  }
}

struct MethodFile: Decodable {
  var timeout: FileDuration?
  var retryPolicy: RetryFile?
  var hedgePolicy: HedgeFile?

  init(timeout: FileDuration?, retryPolicy: RetryFile?, hedgePolicy: HedgeFile?) {
    self.timeout = timeout
    self.retryPolicy = retryPolicy
    self.hedgePolicy = hedgePolicy
  }

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case timeout
    case retryPolicy = "retry_policy"
    case hedgePolicy = "hedge_policy"
  }

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.timeout = try container.decodeIfPresent(FileDuration.self, forKey: .timeout)
    self.retryPolicy = try container.decodeIfPresent(RetryFile.self, forKey: .retryPolicy)
    self.hedgePolicy = try container.decodeIfPresent(HedgeFile.self, forKey: .hedgePolicy)
  }

  /// The policy these fields make, over `base` (a method over its service: unset keys keep the
  /// service's values).
  func policy(at path: String, over base: MeshMethodPolicy) throws(FieldError) -> MeshMethodPolicy {
    var policy = MeshMethodPolicy()
    policy.timeout = self.timeout?.value ?? base.timeout
    if self.retryPolicy != nil || self.hedgePolicy != nil {
      // Both set is an error the policy reports (a method either retries or hedges).
      policy.retry = try self.retryPolicy?.policy(at: "\(path).retry_policy")
      policy.retriesDisabled = self.retryPolicy != nil && policy.retry == nil
      policy.hedging = try self.hedgePolicy?.policy(at: "\(path).hedge_policy")
    } else {
      policy.retry = base.retry
      policy.hedging = base.hedging
      policy.retriesDisabled = base.retriesDisabled
    }
    return policy
  }
}

/// The status codes a `retry_on` names: Envoy's words and gRPC's code names.
func statusCodes(_ words: [String], at path: String) throws(FieldError) -> Set<Status.Code> {
  var codes: Set<Status.Code> = []
  for word in words {
    let normalized = word.trimmingCharacters(in: .whitespaces).lowercased()
      .replacingOccurrences(of: "_", with: "-")
    switch normalized {
    case "": continue
    // Envoy's conditions: failures of the connection or the stream surface as UNAVAILABLE.
    case "5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "unavailable":
      codes.insert(.unavailable)
    case "cancelled": codes.insert(.cancelled)
    case "deadline-exceeded": codes.insert(.deadlineExceeded)
    case "internal": codes.insert(.internalError)
    case "resource-exhausted": codes.insert(.resourceExhausted)
    case "unknown": codes.insert(.unknown)
    case "aborted": codes.insert(.aborted)
    case "data-loss": codes.insert(.dataLoss)
    default:
      throw FieldError(
        path: path,
        """
        '\(word)' is not a retry condition (5xx, gateway-error, reset, connect-failure, \
        refused-stream, or a gRPC code: unavailable, cancelled, deadline-exceeded, internal, \
        resource-exhausted, unknown, aborted, data-loss)
        """
      )
    }
  }
  guard !codes.isEmpty else { throw FieldError(path: path, "must name at least one condition") }
  return codes
}
