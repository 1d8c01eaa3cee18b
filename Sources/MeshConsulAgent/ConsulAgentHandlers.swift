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
internal import HTTPTypes
internal import Hummingbird
internal import MeshConsul
internal import MeshCore

/// The handlers of the agent's endpoints. Every number and duration of a request is read by
/// MeshCore's checked parsers; anything out of range is a 400 with Consul's message.
extension ConsulAgentCore {
  // MARK: - Writes

  func register(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let registration = try Self.decodeRegistration(Data(call.body))
    let replace = call.query.flag("replace-existing-checks")
    try self.mutate { state, now throws(ConsulAgentError) in
      try state.register(registration, replaceExistingChecks: replace, now: now)
    }
    return .empty
  }

  func maintenance(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    guard let enable = call.query.value("enable") else {
      throw ConsulAgentError(400, "Missing value for enable")
    }
    guard let enabled = ConsulAgentQuery.parseBool(enable) else {
      throw ConsulAgentError(400, "Invalid value for enable: \(MeshInput.quoted(enable))")
    }
    let reason = call.query.value("reason")
    try self.mutate { state, _ throws(ConsulAgentError) in
      try state.setMaintenance(
        serviceID: ConsulAgentKey(call.parameter),
        enabled: enabled,
        reason: reason
      )
    }
    return .empty
  }

  func checkUpdate(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let update = try ConsulStrictJSON.decode(
      ConsulCheckUpdate.self,
      from: Data(call.body),
      schema: ConsulStrictJSON.checkUpdate
    )
    return try self.reportTTL(call.parameter, status: update.status, output: update.output)
  }

  func reportTTL(
    _ checkID: String,
    status: ConsulCheckStatus,
    output: String
  ) throws(ConsulAgentError) -> ConsulAgentReply {
    try self.mutate { state, now throws(ConsulAgentError) in
      try state.reportTTL(
        checkID: ConsulAgentKey(checkID),
        status: status,
        output: output,
        now: now
      )
    }
    return .empty
  }

  private static func decodeRegistration(_ body: Data) throws(ConsulAgentError)
    -> ConsulServiceRegistration
  {
    // Consul checks the name itself, with its own message, after decoding the body.
    let object = try ConsulStrictJSON.decode(
      ConsulJSONValue.self,
      from: body,
      schema: ConsulStrictJSON.registration
    )
    guard case .object(let fields) = object, case .string(let name) = fields["Name"] ?? .null,
      !name.isEmpty
    else {
      throw ConsulAgentError(400, "Missing service name")
    }
    return try ConsulStrictJSON.decode(
      ConsulServiceRegistration.self,
      from: body,
      schema: ConsulStrictJSON.registration
    )
  }

  // MARK: - Reads

  func healthService(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    var passing = false
    if let value = call.query.value("passing") {
      guard let parsed = value.isEmpty ? true : ConsulAgentQuery.parseBool(value) else {
        throw ConsulAgentError(400, "Invalid value for ?passing")
      }
      passing = parsed
    }
    if call.query.value("filter").map({ !$0.isEmpty }) == true {
      throw ConsulAgentError(
        400,
        "Failed to create boolean expression evaluator: filter expressions are not supported by the embedded agent"
      )
    }
    let tags = call.query.all("tag")
    let name = ConsulAgentKey(call.parameter)
    let passingOnly = passing
    return try await self.read(.service(name), call) { state in
      state.healthService(name, passingOnly: passingOnly, tags: tags)
    }
  }

  func healthState(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let state = call.parameter
    guard state == "any" || ConsulCheckStatus(rawValue: state) != nil else {
      throw ConsulAgentError(400, "Invalid check state: \(MeshInput.quoted(state))")
    }
    return try await self.read(.any, call) { $0.healthChecks(inState: state) ?? [] }
  }

  func agentService(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let id = ConsulAgentKey(call.parameter)
    let datacenter = self.configuration.datacenter
    let service = self.withState { state in
      state.services[id].map { ConsulAgentService($0, datacenter: datacenter).withContentHash() }
    }
    guard let service else {
      throw ConsulAgentError(404, "unknown service ID: \(id.text)")
    }
    var reply = try Self.encode(service, call)
    reply.headers[HTTPField.Name("X-Consul-ContentHash")!] = service.contentHash
    return reply
  }

  /// An agent-local read: no index, no blocking.
  func agentRead<Value: Encodable>(
    _ call: ConsulAgentCall,
    _ body: (ConsulAgentState<Clock.Instant>) -> Value
  ) throws -> ConsulAgentReply {
    try Self.encode(self.withState(body), call)
  }

  /// Answers a catalog or health read, blocking first when the query carries an `index`.
  func read<Value: Encodable>(
    _ key: ConsulAgentWatchKey,
    _ call: ConsulAgentCall,
    _ body: @escaping @Sendable (ConsulAgentState<Clock.Instant>) -> Value
  ) async throws -> ConsulAgentReply {
    let query = call.query
    if let datacenter = query.value("dc"), !datacenter.isEmpty,
      datacenter != self.configuration.datacenter
    {
      throw ConsulAgentError(500, "No path to datacenter")
    }
    let stale = query.has("stale")
    let consistent = query.has("consistent")
    if stale && consistent {
      throw ConsulAgentError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
    }
    var index: UInt64 = 0
    if let text = query.value("index"), !text.isEmpty {  // as Consul, empty is absent
      guard let parsed = try? MeshInput.integer(text, field: "index", in: 0...Int64.max) else {
        throw ConsulAgentError(400, "Invalid index")
      }
      index = UInt64(parsed)
    }
    var wait = self.configuration.defaultQueryTime
    if let text = query.value("wait"), !text.isEmpty {
      // Go's time.ParseDuration: past 64 bits of nanoseconds is as invalid as "soon".
      guard let parsed = try? MeshGoDuration.parse(text, field: "wait") else {
        throw ConsulAgentError(400, "Invalid wait time")
      }
      // As Consul: a non-positive wait is the default, a long one the maximum.
      if parsed > .zero { wait = min(parsed, self.configuration.maxQueryTime) }
    }

    if index > 0 {
      // Consul adds up to wait/16 of jitter so that watchers do not all wake together.
      let jittered = wait + wait / 16 * Double.random(in: 0..<1)
      await self.waitForChange(key, after: index, timeout: jittered)
    }

    let (value, currentIndex) = self.read(key, body)
    var reply = try Self.encode(value, call)
    reply.headers[HTTPField.Name("Vary")!] = "Accept-Encoding"
    reply.headers[HTTPField.Name("X-Consul-Default-Acl-Policy")!] = "allow"
    reply.headers[HTTPField.Name("X-Consul-Effective-Consistency")!] =
      stale ? "stale" : (consistent ? "consistent" : "leader")
    reply.headers[HTTPField.Name("X-Consul-Index")!] = String(currentIndex)
    reply.headers[HTTPField.Name("X-Consul-Knownleader")!] = "true"
    reply.headers[HTTPField.Name("X-Consul-Lastcontact")!] = "0"
    reply.headers[HTTPField.Name("X-Consul-Query-Backend")!] = "blocking-query"
    return reply
  }

  static func encode<Value: Encodable>(_ value: Value, _ call: ConsulAgentCall) throws
    -> ConsulAgentReply
  {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let pretty = call.query.has("pretty")
    if pretty { encoder.outputFormatting.insert(.prettyPrinted) }
    let mapKeys = ConsulAgentMapKeys()
    encoder.userInfo[ConsulAgentMapKeys.userInfoKey] = mapKeys
    let keyEncoder = JSONEncoder()
    keyEncoder.outputFormatting = .withoutEscapingSlashes
    var data = try mapKeys.substitute(in: encoder.encode(value), encoder: keyEncoder)
    if pretty { data.append(UInt8(ascii: "\n")) }
    return .json(data)
  }
}
