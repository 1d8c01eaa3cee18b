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

public import Foundation
internal import GRPCCore
internal import MeshCore
public import MeshTransport
internal import Yams

/// A configuration file that cannot be used: the field's path (`services.orders.retry_policy.
/// num_retries`) and why. Nothing of the file is applied.
public struct MeshConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The ``file`` of a setting read from an environment variable (its ``field``).
  public static let environment = "<environment>"

  /// The file the error is in; ``environment`` for an environment variable.
  public var file: String
  /// The field's path in the file; empty for the file as a whole.
  public var field: String
  public var reason: String

  public init(file: String, field: String, _ reason: String) {
    self.file = file
    self.field = field
    self.reason = reason
  }

  public var description: String {
    self.field.isEmpty
      ? "\(self.file): \(self.reason)" : "\(self.file): \(self.field): \(self.reason)"
  }
}

/// A mesh configuration file, JSON or YAML: timeouts, retries, hedging, retry budgets, circuit
/// breakers and outlier detection, for every target and per service and method, in the shape of
/// the Envoy configuration it replaces.
///
/// ```yaml
/// defaults:                      # every target service
///   timeout: 10s
///   retry_policy:
///     retry_on: 5xx,reset,connect-failure,refused-stream
///     num_retries: 3
///     per_try_timeout: 5s
///     retry_back_off: { base_interval: 0.25s, max_interval: 2s }
///   circuit_breakers: { max_connections: 100, max_pending_requests: 200, max_requests: 500, max_retries: 5 }
/// services:
///   orders:
///     timeout: 2s
///     methods:
///       orders.Orders/Create: { retry_policy: { num_retries: 0 } }
/// ```
///
/// A service's section replaces the defaults' value of each key it sets (a `retry_policy` there is
/// a whole retry policy, its unset fields at the built-in defaults); a method's section does the
/// same over its service's. Unknown fields and bad values are errors naming the field.
public struct MeshConfigurationFile: Sendable {
  /// The settings of every target, and of named ones.
  public var defaults: Section
  public var services: [String: Section]

  /// The settings of one section.
  public struct Section: Sendable {
    public var resilience: MeshResiliencePolicy
    /// The balancing policy, if the section names one.
    public var policy: MeshBalancingPolicy?
  }

  /// Reads and checks a file; `.json` is JSON, anything else YAML (a superset of JSON).
  public static func load(path: String) throws(MeshConfigurationError) -> Self {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw MeshConfigurationError(
        file: path,
        field: "",
        "cannot be read: \(error.localizedDescription)"
      )
    }
    return try Self.parse(data, format: path.hasSuffix(".json") ? .json : .yaml, file: path)
  }

  public enum Format: Sendable {
    case json
    case yaml
  }

  /// Checks a file's contents; `file` names it in errors.
  public static func parse(
    _ data: Data,
    format: Format,
    file: String = "<configuration>"
  ) throws(MeshConfigurationError) -> Self {
    let root: FileRoot
    do {
      switch format {
      case .json:
        root = try JSONDecoder().decode(FileRoot.self, from: data)
      case .yaml:
        guard let text = String(data: data, encoding: .utf8) else {
          throw MeshConfigurationError(file: file, field: "", "is not UTF-8 text")
        }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
          root = FileRoot()
        } else {
          root = try YAMLDecoder().decode(FileRoot.self, from: text)
        }
      }
    } catch let error as MeshConfigurationError {
      throw error
    } catch let error as FieldError {
      throw MeshConfigurationError(file: file, field: error.path, error.reason)
    } catch let error as DecodingError {
      throw Self.describe(error, file: file)
    } catch {
      throw MeshConfigurationError(
        file: file,
        field: "",
        "is not valid \(format == .json ? "JSON" : "YAML"): \(error)"
      )
    }
    do throws(FieldError) {
      let defaults = root.defaults ?? SectionFile()
      var services: [String: Section] = [:]
      for (name, section) in root.services ?? [:] {
        guard !name.isEmpty else {
          throw FieldError(path: "services", "a service name must not be empty")
        }
        services[name] = try section.over(defaults).section(at: "services.\(name)")
      }
      return Self(defaults: try defaults.section(at: "defaults"), services: services)
    } catch {
      throw MeshConfigurationError(file: file, field: error.path, error.reason)
    }
  }

  private static func describe(_ error: DecodingError, file: String) -> MeshConfigurationError {
    func path(_ codingPath: [any CodingKey]) -> String {
      codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
    switch error {
    case .typeMismatch(let type, let context):
      return MeshConfigurationError(
        file: file,
        field: path(context.codingPath),
        "expected \(Self.describe(type))"
      )
    case .valueNotFound(let type, let context):
      return MeshConfigurationError(
        file: file,
        field: path(context.codingPath),
        "expected \(Self.describe(type)), found null"
      )
    case .keyNotFound(let key, let context):
      return MeshConfigurationError(
        file: file,
        field: path(context.codingPath + [key]),
        "is required"
      )
    case .dataCorrupted(let context):
      // YAMLDecoder wraps what a field's decoder threw, and syntax errors, in dataCorrupted.
      if let field = context.underlyingError as? FieldError {
        return MeshConfigurationError(file: file, field: field.path, field.reason)
      }
      if let inner = context.underlyingError as? DecodingError {
        return Self.describe(inner, file: file)
      }
      if let underlying = context.underlyingError {
        return MeshConfigurationError(
          file: file,
          field: path(context.codingPath),
          "is not valid YAML: \(underlying)"
        )
      }
      return MeshConfigurationError(
        file: file,
        field: path(context.codingPath),
        context.codingPath.isEmpty
          ? "is not valid: \(context.debugDescription)" : context.debugDescription
      )
    @unknown default:
      return MeshConfigurationError(file: file, field: "", "\(error)")
    }
  }

  private static func describe(_ type: Any.Type) -> String {
    switch type {
    case is Int.Type: return "an integer"
    case is Double.Type: return "a number"
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    default: return "a section (a mapping of fields)"
    }
  }
}

/// A bad field, by its path in the file.
struct FieldError: Error {
  var path: String
  var reason: String

  init(path: String, _ reason: String) {
    self.path = path
    self.reason = reason
  }
}

/// Any key, to find the ones a section does not know.
private struct AnyKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

private func rejectUnknownKeys(
  in decoder: any Decoder,
  known: some Sequence<String>
) throws {
  let known = Set(known)
  let container = try decoder.container(keyedBy: AnyKey.self)
  for key in container.allKeys where !known.contains(key.stringValue) {
    let path = (decoder.codingPath + [key]).map(\.stringValue).joined(separator: ".")
    throw FieldError(
      path: path,
      "is not a known field (known: \(known.sorted().joined(separator: ", ")))"
    )
  }
}

private func dotted(_ path: [any CodingKey]) -> String {
  path.map(\.stringValue).joined(separator: ".")
}

/// A duration: Go syntax (`"250ms"`, `"0.25s"`, `"10s"`, `"1m30s"`), or a number of seconds, from
/// 0 to ``MeshResiliencePolicy/maximumDuration``; read through ``MeshInput``, so nothing out of
/// range can trap.
private struct FileDuration: Decodable {
  var value: Duration

  static let range = Duration.zero...MeshResiliencePolicy.maximumDuration

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    let path = dotted(decoder.codingPath)
    let seconds = try? container.decode(Double.self)
    let text = seconds == nil ? try? container.decode(String.self) : nil
    let value: Duration?
    do throws(MeshInputError) {
      if let seconds {
        value = try MeshInput.duration(seconds: seconds, field: path, in: Self.range)
      } else if let text {
        value = try MeshInput.duration(text, field: path, bareSeconds: true, in: Self.range)
      } else {
        value = nil
      }
    } catch {
      throw FieldError(
        path: path,
        "expected a duration like \"250ms\" or \"10s\": \(error.message)"
      )
    }
    guard let value else {
      throw FieldError(path: path, "expected a duration like \"250ms\" or \"10s\"")
    }
    self.value = value
  }
}

/// A whole number: an integer, or a number with no fraction (`3.0`), read through ``MeshInput``
/// so that values past 64 bits (`1e19`) are an error naming the field, not a trap or a
/// decoder's message.
private struct FileInteger: Decodable {
  var value: Int

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    let path = dotted(decoder.codingPath)
    if let integer = try? container.decode(Int.self) {
      self.value = integer
      return
    }
    guard let number = try? container.decode(Double.self) else {
      throw FieldError(path: path, "expected an integer")
    }
    do {
      self.value = Int(try MeshInput.integer(number, field: path))
    } catch {
      throw FieldError(path: path, "expected an integer: \(error.message)")
    }
  }

}

private struct FileRoot: Decodable {
  var defaults: SectionFile?
  var services: [String: SectionFile]?

  init() {}

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case defaults, services
  }

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.defaults = try container.decodeIfPresent(SectionFile.self, forKey: .defaults)
    self.services = try container.decodeIfPresent([String: SectionFile].self, forKey: .services)
  }
}

private struct SectionFile: Decodable {
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
      let methodPath = "\(path).methods.\(name)"
      guard MeshResiliencePolicy.isMethodKey(name) else {
        throw FieldError(
          path: methodPath,
          "must be named 'package.Service/Method' or 'package.Service'"
        )
      }
      resilience.methods[name] = try method.policy(at: methodPath, over: MeshMethodPolicy())
    }
    if let budget = self.retryBudget {
      resilience.retryBudget = try budget.policy(at: "\(path).retry_budget")
    }
    if let breakers = self.circuitBreakers {
      resilience.circuitBreakers = try breakers.thresholds(at: "\(path).circuit_breakers")
    }
    if let outlier = self.outlierDetection {
      resilience.outlierDetection = try outlier.policy(at: "\(path).outlier_detection")
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
    do {
      try resilience.validate()  // every value was checked above; this is the backstop
    } catch {
      throw FieldError(path: path, "\(error)")
    }
    return MeshConfigurationFile.Section(resilience: resilience, policy: policy)
  }
}

private struct MethodFile: Decodable {
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
    if self.retryPolicy != nil && self.hedgePolicy != nil {
      throw FieldError(path: "\(path).hedge_policy", "a method either retries or hedges, not both")
    }
    var policy = MeshMethodPolicy()
    if let timeout = self.timeout {
      guard timeout.value > .zero else {
        throw FieldError(path: "\(path).timeout", "must be positive")
      }
      policy.timeout = timeout.value
    } else {
      policy.timeout = base.timeout
    }
    if let retry = self.retryPolicy {
      policy.retry = try retry.policy(at: "\(path).retry_policy")
      policy.retriesDisabled = policy.retry == nil
    } else if let hedge = self.hedgePolicy {
      policy.hedging = try hedge.policy(at: "\(path).hedge_policy")
    } else {
      policy.retry = base.retry
      policy.hedging = base.hedging
      policy.retriesDisabled = base.retriesDisabled
    }
    return policy
  }
}

/// The status codes a `retry_on` names: Envoy's words and gRPC's code names.
private func statusCodes(_ words: [String], at path: String) throws(FieldError) -> Set<Status.Code>
{
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

private struct RetryFile: Decodable {
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

  /// Nil for `num_retries: 0` (no retries).
  func policy(at path: String) throws(FieldError) -> MeshRetryPolicy? {
    var policy = MeshRetryPolicy()
    if let retries = self.numRetries {
      guard (0...4).contains(retries) else {
        throw FieldError(
          path: "\(path).num_retries",
          "must be 0 to 4 (gRPC makes at most 5 attempts), not \(retries)"
        )
      }
      if retries == 0 { return nil }
      policy.maxAttempts = retries + 1
    }
    if let words = self.retryOn {
      policy.retryableStatusCodes = try statusCodes(words, at: "\(path).retry_on")
    }
    if let perTry = self.perTryTimeout {
      guard perTry.value > .zero else {
        throw FieldError(path: "\(path).per_try_timeout", "must be positive")
      }
      policy.perTryTimeout = perTry.value
    }
    if let base = self.baseInterval {
      guard base.value > .zero else {
        throw FieldError(path: "\(path).retry_back_off.base_interval", "must be positive")
      }
      policy.initialBackoff = base.value
      policy.maxBackoff = max(policy.maxBackoff, base.value)
    }
    if let maximum = self.maxInterval {
      guard maximum.value >= policy.initialBackoff else {
        throw FieldError(
          path: "\(path).retry_back_off.max_interval",
          "must be at least base_interval (\(policy.initialBackoff))"
        )
      }
      policy.maxBackoff = maximum.value
    }
    return policy
  }
}

private struct HedgeFile: Decodable {
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
    if let attempts = self.maxAttempts {
      guard (2...5).contains(attempts) else {
        throw FieldError(path: "\(path).max_attempts", "must be 2 to 5, not \(attempts)")
      }
      policy.maxAttempts = attempts
    }
    if let delay = self.hedgingDelay { policy.hedgingDelay = delay.value }
    if let codes = self.nonFatalCodes {
      policy.nonFatalStatusCodes = try statusCodes(codes, at: "\(path).non_fatal_codes")
    }
    return policy
  }
}

private struct BudgetFile: Decodable {
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

  func policy(at path: String) throws(FieldError) -> MeshRetryBudgetPolicy {
    var policy = MeshRetryBudgetPolicy()
    if let percent = self.budgetPercent {
      guard MeshRetryBudgetPolicy.ratios.contains(percent / 100) else {
        throw FieldError(
          path: "\(path).budget_percent",
          "must be 0 to \(Int(MeshRetryBudgetPolicy.ratios.upperBound * 100)), not \(percent)"
        )
      }
      policy.ratio = percent / 100
    }
    if let floor = self.minRetriesPerSecond {
      let range = MeshRetryBudgetPolicy.minRetriesPerSecondRange
      guard range.contains(floor) else {
        throw FieldError(
          path: "\(path).min_retries_per_second",
          "must be \(range.lowerBound) to \(range.upperBound), not \(floor)"
        )
      }
      policy.minRetriesPerSecond = floor
    }
    if let window = self.window {
      guard MeshRetryBudgetPolicy.windows.contains(window.value) else {
        throw FieldError(path: "\(path).window", "must be 1s to 10m")
      }
      policy.window = window.value
    }
    return policy
  }
}

private struct BreakersFile: Decodable {
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

  func thresholds(at path: String) throws(FieldError) -> MeshCircuitBreakerThresholds {
    var thresholds = MeshCircuitBreakerThresholds()
    for (field, value) in self.values {
      let minimum = field == "max_connections" || field == "max_requests" ? 1 : 0
      guard value >= minimum else {
        throw FieldError(path: "\(path).\(field)", "must be at least \(minimum), not \(value)")
      }
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

private struct OutlierFile: Decodable {
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
  func policy(at path: String) throws(FieldError) -> MeshOutlierDetectionPolicy? {
    if self.enabled == false { return nil }
    var policy = MeshOutlierDetectionPolicy()
    func positive(_ value: FileDuration?, _ field: String) throws(FieldError) -> Duration? {
      guard let value else { return nil }
      guard value.value > .zero else {
        throw FieldError(path: "\(path).\(field)", "must be positive")
      }
      return value.value
    }
    if let count = self.consecutive5xx {
      guard count >= 1 else {
        throw FieldError(path: "\(path).consecutive_5xx", "must be at least 1, not \(count)")
      }
      policy.consecutiveFailures = count
    }
    if let interval = try positive(self.interval, "interval") { policy.interval = interval }
    if let base = try positive(self.baseEjectionTime, "base_ejection_time") {
      policy.baseEjectionTime = base
      policy.maxEjectionTime = max(policy.maxEjectionTime, base)
    }
    if let maximum = try positive(self.maxEjectionTime, "max_ejection_time") {
      guard maximum >= policy.baseEjectionTime else {
        throw FieldError(
          path: "\(path).max_ejection_time",
          "must be at least base_ejection_time (\(policy.baseEjectionTime))"
        )
      }
      policy.maxEjectionTime = maximum
    }
    if let percent = self.maxEjectionPercent {
      guard (0...100).contains(percent) else {
        throw FieldError(path: "\(path).max_ejection_percent", "must be 0 to 100, not \(percent)")
      }
      policy.maxEjectionShare = percent / 100
    }
    if let factor = self.successRateStdevFactor {
      guard factor >= 0, factor.isFinite else {
        throw FieldError(path: "\(path).success_rate_stdev_factor", "must be 0 (off) or more")
      }
      policy.successRateStdevFactor = factor == 0 ? nil : factor
    }
    if let hosts = self.successRateMinimumHosts {
      guard hosts >= 2 else {
        throw FieldError(
          path: "\(path).success_rate_minimum_hosts",
          "must be at least 2, not \(hosts)"
        )
      }
      policy.successRateMinimumHosts = hosts
    }
    if let volume = self.requestVolume {
      guard volume >= 1 else {
        throw FieldError(path: "\(path).request_volume", "must be at least 1, not \(volume)")
      }
      policy.minimumRequests = volume
    }
    if let threshold = self.failurePercentageThreshold {
      guard threshold > 0, threshold <= 100 else {
        throw FieldError(
          path: "\(path).failure_percentage_threshold",
          "must be above 0 and at most 100, not \(threshold)"
        )
      }
      policy.failurePercentageThreshold = threshold / 100
    }
    if let successes = self.halfOpenSuccesses {
      guard successes >= 1 else {
        throw FieldError(
          path: "\(path).half_open_successes",
          "must be at least 1, not \(successes)"
        )
      }
      policy.halfOpenSuccesses = successes
    }
    return policy
  }
}
