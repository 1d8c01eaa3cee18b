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

import Foundation
import GRPCCore
import MeshClient
import MeshCore
import MeshDiscovery
import MeshTransport
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent()  // MeshClientTests
  .deletingLastPathComponent()  // Tests
  .deletingLastPathComponent()

private func parse(_ yaml: String) throws(MeshConfigurationError) -> MeshConfigurationFile {
  try MeshConfigurationFile.parse(Data(yaml.utf8), format: .yaml, file: "test.yaml")
}

private func failure(_ yaml: String) -> MeshConfigurationError? {
  do {
    _ = try parse(yaml)
    return nil
  } catch {
    return error
  }
}

@Suite("Configuration file")
struct ConfigurationFileTests {
  @Test("The README's example file: defaults, a service, per-method sections")
  func exampleFile() throws {
    let path = repositoryRoot.appendingPathComponent("Examples/mesh.yaml").path
    let file = try MeshConfigurationFile.load(path: path)

    let defaults = file.defaults.resilience
    #expect(file.defaults.policy == .leastRequest)
    #expect(defaults.defaults.timeout == .seconds(10))
    #expect(
      defaults.defaults.retry
        == MeshRetryPolicy(
          maxAttempts: 4,
          retryableStatusCodes: [.unavailable],
          perTryTimeout: .seconds(5),
          initialBackoff: .milliseconds(250),
          maxBackoff: .seconds(2)
        )
    )
    #expect(defaults.retryBudget == MeshRetryBudgetPolicy(ratio: 0.2, minRetriesPerSecond: 10))
    #expect(defaults.circuitBreakers == MeshCircuitBreakerThresholds())
    #expect(defaults.outlierDetection == MeshOutlierDetectionPolicy())
    #expect(defaults.propagationMargin == .milliseconds(10))

    let orders = try #require(file.services["orders"])
    #expect(orders.policy == .roundRobin)
    #expect(orders.resilience.defaults.timeout == .seconds(2))
    #expect(orders.resilience.defaults.retry == defaults.defaults.retry)  // inherited
    #expect(
      orders.resilience.circuitBreakers
        == MeshCircuitBreakerThresholds(maxRequests: 1000, maxRetries: 10)
    )
    #expect(orders.resilience.outlierDetection == defaults.outlierDetection)
    let create = MethodDescriptor(fullyQualifiedService: "orders.Orders", method: "CreateOrder")
    let get = MethodDescriptor(fullyQualifiedService: "orders.Orders", method: "GetOrder")
    let list = MethodDescriptor(fullyQualifiedService: "orders.Orders", method: "ListOrders")
    #expect(
      orders.resilience.policy(for: create)
        == MeshMethodPolicy(timeout: .seconds(2), retriesDisabled: true)
    )
    #expect(
      orders.resilience.policy(for: get)
        == MeshMethodPolicy(
          timeout: .milliseconds(500),
          hedging: MeshHedgingPolicy(
            maxAttempts: 3,
            hedgingDelay: .milliseconds(50),
            nonFatalStatusCodes: [.unavailable]
          )
        )
    )
    #expect(orders.resilience.policy(for: list) == orders.resilience.defaults)
  }

  @Test("JSON with the same fields reads the same")
  func json() throws {
    let json = """
      {"defaults": {"timeout": 1.5, "retry_policy": {"retry_on": ["unavailable", "resource-exhausted"],
       "num_retries": 2}}, "services": {"a": {"outlier_detection": {"enabled": false}}}}
      """
    let file = try MeshConfigurationFile.parse(Data(json.utf8), format: .json)
    #expect(file.defaults.resilience.defaults.timeout == .milliseconds(1500))
    #expect(file.defaults.resilience.defaults.retry?.maxAttempts == 3)
    #expect(
      file.defaults.resilience.defaults.retry?.retryableStatusCodes
        == [.unavailable, .resourceExhausted]
    )
    #expect(file.services["a"]?.resilience.outlierDetection == nil)
    #expect(file.services["a"]?.resilience.defaults.retry?.maxAttempts == 3)
  }

  @Test(
    "Bad fields and values are refused, naming the field",
    arguments: [
      ("defaults:\n  retry_polcy: {}\n", "defaults.retry_polcy", "is not a known field"),
      ("defaults:\n  timeout: soon\n", "defaults.timeout", "expected a duration"),
      ("defaults:\n  timeout: -1s\n", "defaults.timeout", "expected a duration"),
      ("defaults:\n  timeout: 0s\n", "defaults.timeout", "must be positive"),
      (
        "defaults:\n  retry_policy: {num_retries: 7}\n", "defaults.retry_policy.num_retries",
        "must be 0 to 4"
      ),
      (
        "defaults:\n  retry_policy: {num_retries: three}\n", "defaults.retry_policy.num_retries",
        "expected an integer"
      ),
      (
        "defaults:\n  retry_policy: {retry_on: \"5xx,sometimes\"}\n",
        "defaults.retry_policy.retry_on",
        "'sometimes' is not a retry condition"
      ),
      (
        "defaults:\n  retry_policy: {retry_back_off: {base_interval: 2s, max_interval: 1s}}\n",
        "defaults.retry_policy.retry_back_off.max_interval", "must be at least base_interval"
      ),
      (
        "defaults:\n  retry_policy: {retry_back_off: {base: 1s}}\n",
        "defaults.retry_policy.retry_back_off.base", "is not a known field"
      ),
      ("defaults:\n  lb_policy: random\n", "defaults.lb_policy", "must be round_robin"),
      (
        "services:\n  a:\n    circuit_breakers: {max_requests: 0}\n",
        "services.a.circuit_breakers.max_requests", "must be at least 1"
      ),
      (
        "services:\n  a:\n    outlier_detection: {max_ejection_percent: 150}\n",
        "services.a.outlier_detection.max_ejection_percent", "must be 0 to 100"
      ),
      (
        "services:\n  a:\n    methods:\n      'no/such/method': {timeout: 1s}\n",
        "services.a.methods.no/such/method", "must be named"
      ),
      (
        "services:\n  a:\n    methods:\n      p.S/M: {retry_policy: {}, hedge_policy: {}}\n",
        "services.a.methods.p.S/M.hedge_policy", "either retries or hedges"
      ),
      (
        "services:\n  a:\n    hedge_policy: {max_attempts: 9}\n",
        "services.a.hedge_policy.max_attempts", "must be 2 to 5"
      ),
      ("defaults: [1, 2]\n", "defaults", "expected"),
      ("services: {a: {timeout: 1s}\n", "", "is not valid YAML"),
    ]
  )
  func badFields(yaml: String, field: String, reason: String) {
    let error = failure(yaml)
    #expect(error?.field == field, "\(String(describing: error))")
    #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
    #expect(error?.file == "test.yaml")
    #expect(error?.code == (field.isEmpty ? .malformed : .invalidValue))
  }

  @Test("A value out of the policy's range keeps the policy's own check as the error's cause")
  func causeIsThePolicyCheck() throws {
    let error = try #require(failure("defaults:\n  retry_policy: {num_retries: 7}\n"))
    #expect(error.code == .invalidValue)
    let check = try #require(error.cause as? MeshResilienceError)
    #expect(check.code == .outOfRange)
    #expect(check.field == "defaults.retry.maxAttempts")
    let integer = try #require(failure("defaults:\n  timeout: soon\n")?.cause as? MeshInputError)
    #expect(integer.code == .invalid)
  }

  @Test(
    "Numbers out of range are errors naming the field, never a trap (YAML)",
    arguments: [
      ("defaults:\n  timeout: 1e308\n", "defaults.timeout", "expected a duration"),
      ("defaults:\n  timeout: .inf\n", "defaults.timeout", "expected a duration"),
      ("defaults:\n  timeout: 400000000\n", "defaults.timeout", "expected a duration"),
      ("defaults:\n  timeout: 2562047h47m16.854775808s\n", "defaults.timeout", "out of range"),
      ("defaults:\n  timeout: 9999999999999h\n", "defaults.timeout", "out of range"),
      ("defaults:\n  timeout: 87601h\n", "defaults.timeout", "87600h"),
      (
        "defaults:\n  retry_policy: {per_try_timeout: 1e19}\n",
        "defaults.retry_policy.per_try_timeout", "expected a duration"
      ),
      (
        "defaults:\n  retry_policy: {retry_back_off: {max_interval: 2562047h48m}}\n",
        "defaults.retry_policy.retry_back_off.max_interval", "out of range"
      ),
      (
        "defaults:\n  outlier_detection: {max_ejection_time: 1000000000000}\n",
        "defaults.outlier_detection.max_ejection_time", "expected a duration"
      ),
      (
        "defaults:\n  hedge_policy: {hedging_delay: 99999999999h}\n",
        "defaults.hedge_policy.hedging_delay", "out of range"
      ),
      (
        "defaults:\n  deadline_propagation_margin: -1e19\n",
        "defaults.deadline_propagation_margin", "expected a duration"
      ),
      (
        "defaults:\n  retry_budget: {min_retries_per_second: 9223372036854775807}\n",
        "defaults.retry_budget.min_retries_per_second", "must be"
      ),
      (
        "defaults:\n  retry_budget: {min_retries_per_second: 9223372036854775806}\n",
        "defaults.retry_budget.min_retries_per_second", "must be"
      ),
      (
        "defaults:\n  retry_budget: {min_retries_per_second: 1000001}\n",
        "defaults.retry_budget.min_retries_per_second", "must be 0 to 1000000"
      ),
      (
        "defaults:\n  retry_budget: {budget_percent: 1e308}\n",
        "defaults.retry_budget.budget_percent", "must be 0 to"
      ),
      (
        "defaults:\n  retry_policy: {num_retries: 1e19}\n", "defaults.retry_policy.num_retries",
        "expected an integer"
      ),
      (
        "defaults:\n  retry_policy: {num_retries: 2.5}\n", "defaults.retry_policy.num_retries",
        "expected an integer"
      ),
      (
        "defaults:\n  circuit_breakers: {max_requests: -1e300}\n",
        "defaults.circuit_breakers.max_requests", "expected an integer"
      ),
      (
        "defaults:\n  outlier_detection: {consecutive_5xx: 99999999999999999999}\n",
        "defaults.outlier_detection.consecutive_5xx", "expected an integer"
      ),
    ]
  )
  func numbersOutOfRangeYAML(yaml: String, field: String, reason: String) {
    let error = failure(yaml)
    #expect(error?.field == field, "\(String(describing: error))")
    #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
  }

  @Test(
    "Numbers out of range are errors naming the field, never a trap (JSON)",
    arguments: [
      (#"{"defaults": {"timeout": 1e19}}"#, "defaults.timeout", "expected a duration"),
      (#"{"defaults": {"timeout": -1e19}}"#, "defaults.timeout", "expected a duration"),
      (#"{"defaults": {"timeout": "1e308"}}"#, "defaults.timeout", "expected a duration"),
      (
        #"{"defaults": {"timeout": "2562047h47m16.854775807s"}}"#, "defaults.timeout",
        "expected a duration"
      ),
      (
        #"{"defaults": {"circuit_breakers": {"max_requests": 1e19}}}"#,
        "defaults.circuit_breakers.max_requests", "expected an integer"
      ),
      (
        #"{"defaults": {"retry_budget": {"min_retries_per_second": 9223372036854775807}}}"#,
        "defaults.retry_budget.min_retries_per_second", "must be"
      ),
      (
        #"{"defaults": {"retry_budget": {"window": 1e19}}}"#, "defaults.retry_budget.window",
        "expected a duration"
      ),
    ]
  )
  func numbersOutOfRangeJSON(json: String, field: String, reason: String) {
    var error: MeshConfigurationError?
    do {
      _ = try MeshConfigurationFile.parse(Data(json.utf8), format: .json, file: "test.json")
    } catch let caught {
      error = caught
    }
    #expect(error?.field == field, "\(String(describing: error))")
    #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
  }

  @Test("Numbers in range still read: whole numbers written as decimals, Go and bare durations")
  func numbersInRange() throws {
    let file = try parse(
      """
      defaults:
        timeout: "2.5"
        retry_policy: {num_retries: 2.0, per_try_timeout: 1m30s}
        retry_budget: {min_retries_per_second: 1000000}
        outlier_detection: {max_ejection_time: 87600h}
      """
    )
    let resilience = file.defaults.resilience
    #expect(resilience.defaults.timeout == .milliseconds(2500))
    #expect(resilience.defaults.retry?.maxAttempts == 3)
    #expect(resilience.defaults.retry?.perTryTimeout == .seconds(90))
    #expect(resilience.retryBudget?.minRetriesPerSecond == 1_000_000)
    #expect(resilience.outlierDetection?.maxEjectionTime == MeshResiliencePolicy.maximumDuration)
  }

  @Test("A missing file, and an empty one")
  func missingAndEmpty() throws {
    #expect(throws: MeshConfigurationError.self) {
      try MeshConfigurationFile.load(path: "/nonexistent/mesh.yaml")
    }
    let empty = try parse("")
    #expect(empty.services.isEmpty)
    #expect(empty.defaults.resilience == MeshResiliencePolicy())
  }

  @Test("MESH_CONFIG_FILE applies a file; a bad one is an error naming the variable and field")
  func environment() throws {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("mesh-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let good = directory.appendingPathComponent("good.yaml")
    try Data("services:\n  orders: {retry_policy: {num_retries: 1}}\n".utf8).write(to: good)
    let configuration = try MeshClientConfiguration.fromEnvironment(["MESH_CONFIG_FILE": good.path])
    #expect(configuration.targets["orders"]?.resilience?.defaults.retry?.maxAttempts == 2)
    #expect(configuration.resilience == MeshResiliencePolicy())

    let bad = directory.appendingPathComponent("bad.json")
    try Data(#"{"defaults": {"timeout": "later"}}"#.utf8).write(to: bad)
    let error = #expect(throws: MeshClientError.self) {
      try MeshClientConfiguration.fromEnvironment(["MESH_CONFIG_FILE": bad.path])
    }
    #expect(error?.message.contains("MESH_CONFIG_FILE") == true)
    #expect(error?.message.contains("defaults.timeout") == true)
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.configuration?.field == "defaults.timeout")
    #expect(error?.configuration?.file == bad.path)
  }
}

@Suite("Configuration file in a mesh client")
struct ConfigurationFileClientTests {
  @Test("A target's clients run with its section's resilience and policy; others with the defaults")
  func appliedToTransports() async throws {
    let yaml = """
      defaults:
        retry_policy: { num_retries: 1 }
      services:
        orders:
          lb_policy: round_robin
          circuit_breakers: { max_requests: 7 }
      """
    let file = try MeshConfigurationFile.parse(Data(yaml.utf8), format: .yaml)
    var configuration = MeshClientConfiguration(
      discovery: MeshStaticDiscovery(["orders": [], "billing": []])
    )
    configuration.apply(file)
    let mesh = try await MeshClient(configuration: configuration)
    _ = try mesh.client(for: "orders")
    _ = try mesh.client(for: "billing")
    let orders = try #require(mesh.transport(for: "orders"))
    let billing = try #require(mesh.transport(for: "billing"))
    #expect(orders.resilience.circuitBreakers.maxRequests == 7)
    #expect(orders.resilience.defaults.retry?.maxAttempts == 2)
    #expect(billing.resilience.circuitBreakers.maxRequests == 500)
    #expect(billing.resilience.defaults.retry?.maxAttempts == 2)
    let check = MethodDescriptor(fullyQualifiedService: "orders.Orders", method: "Get")
    #expect(orders.resilience.policy(for: check).retry?.maxAttempts == 2)
    #expect(mesh.stats(for: "orders")?.attemptsTotal == 0)
    #expect(mesh.stats(for: "unknown") == nil)
    mesh.beginGracefulShutdown()
    try await mesh.run()
  }

  @Test("Invalid resilience set in code is refused when the client is made, naming the field")
  func invalidInCode() async throws {
    var configuration = MeshClientConfiguration(discovery: MeshStaticDiscovery([:]))
    configuration.resilience.circuitBreakers.maxRequests = 0
    let error = await #expect(throws: MeshResilienceError.self) {
      _ = try await MeshClient(configuration: configuration)
    }
    #expect(error?.field == "circuitBreakers.maxRequests")
  }
}
