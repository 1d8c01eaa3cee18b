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
internal import MeshConsul
internal import MeshCore

// The intentions API (Consul 1.9+, `agent/intentions_endpoint.go`, `agent/config_endpoint.go`):
// intentions are the sources of `service-intentions` config entries. As in Consul, bad query
// parameters and invalid intentions are answered with 500, an undecodable body with 400.
extension ConsulAgentCore {
  /// `GET`, `PUT` and `DELETE /v1/connect/intentions/exact?source=&destination=`.
  func exactIntention(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let source = try Self.required("source", call.query)
    let destination = try Self.required("destination", call.query)
    switch call.method {
    case .put, .delete:
      for (name, value) in [("source", source), ("destination", destination)] {
        guard !value.isEmpty else {
          throw ConsulAgentError(500, "required query parameter '\(name)' not set")
        }
        try Self.checkName(value, name)
      }
      if call.method == .put {
        let intention = try ConsulStrictJSON.decode(
          ConsulIntention.self,
          from: Data(call.body),
          schema: ConsulStrictJSON.intention
        )
        try self.mutate { state, _ throws(ConsulAgentError) in
          try state.editIntentions { intentions, index throws(ConsulAgentError) in
            try intentions.upsert(
              source: source,
              destination: destination,
              from: intention,
              at: index
            )
          }
        }
      } else {
        try self.mutate { state, _ throws(ConsulAgentError) in
          try state.editIntentions { intentions, index throws(ConsulAgentError) in
            try intentions.delete(source: source, destination: destination, at: index)
          }
        }
      }
      return .json(Data("true".utf8))
    default:
      guard !source.isEmpty else {
        throw ConsulAgentError(500, "1 error occurred:\n\t* SourceName is missing\n\n")
      }
      guard !destination.isEmpty else {
        throw ConsulAgentError(500, "1 error occurred:\n\t* DestinationName is missing\n\n")
      }
      let found = self.withState {
        $0.intentions.intention(source: source, destination: destination)
      }
      guard let found else { throw ConsulAgentError(404, "Intention not found") }
      return try Self.encode(found, call)
    }
  }

  /// `GET /v1/connect/intentions/match?by=source|destination&name=…`: a blocking query.
  func matchIntentions(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let by = call.query.all("by")
    guard by.count == 1 else {
      throw ConsulAgentError(500, "required query parameter 'by' not set")
    }
    guard by[0] == "source" || by[0] == "destination" else {
      throw ConsulAgentError(500, "'by' parameter must be one of 'source' or 'destination'")
    }
    let names = call.query.all("name")
    guard !names.isEmpty else {
      throw ConsulAgentError(500, "required query parameter 'name' not set")
    }
    for name in names { try Self.checkName(name, "name") }
    let bySource = by[0] == "source"
    return try await self.read(.intentions, call) { state in
      // Keyed by each name as given; a name with no intentions maps to null, as in Consul.
      ConsulAgentMap(
        names.map { name in
          (
            key: ConsulAgentKey(name),
            value: bySource
              ? state.intentions.matching(source: name)
              : state.intentions.matching(destination: name)
          )
        }
      )
    }
  }

  /// `GET /v1/connect/intentions/check?source=&destination=`: `{"Allowed": …}`.
  func checkIntention(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let source = try Self.required("source", call.query)
    let destination = try Self.required("destination", call.query)
    if let type = call.query.value("source-type"), type != "consul" {
      throw ConsulAgentError(500, "unsupported SourceType: \(MeshInput.quoted(type))")
    }
    let allowed = self.withState {
      $0.intentions.allows(source: source, destination: destination)
    }
    // No intention matches: the default, allow (the agent has no ACLs, as Consul in dev mode).
    return try Self.encode(["Allowed": allowed ?? true], call)
  }

  /// `PUT /v1/config`: a `service-intentions` entry (the only kind the agent keeps).
  func setConfigEntry(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let kind = try ConsulStrictJSON.configEntryKind(Data(call.body))
    guard kind == "service-intentions" else {
      throw ConsulAgentError(
        400,
        "Request decoding failed: config entry kind \(MeshInput.quoted(kind)) is not kept by this agent (only service-intentions)"
      )
    }
    let entry = try ConsulStrictJSON.decode(
      ConsulServiceIntentions.self,
      from: Data(call.body),
      schema: ConsulStrictJSON.serviceIntentions
    )
    var cas: UInt64?
    if let text = call.query.value("cas") {
      guard let parsed = try? MeshInput.integer(text, field: "cas", in: 0...Int64.max) else {
        throw ConsulAgentError(
          500,
          "strconv.ParseUint: parsing \(MeshInput.quoted(text)): invalid syntax"
        )
      }
      cas = UInt64(parsed)
    }
    var applied = true
    try self.mutate { state, _ throws(ConsulAgentError) in
      if let cas {
        let current = state.intentions.entries[ConsulAgentKey(entry.name)]?.modifyIndex ?? 0
        guard current == cas else {
          applied = false
          return
        }
      }
      try state.editIntentions { intentions, index throws(ConsulAgentError) in
        try intentions.set(entry, at: index)
      }
    }
    return .json(Data((applied ? "true" : "false").utf8))
  }

  /// `GET /v1/config/:kind[/:name]` (a blocking query) and `DELETE /v1/config/:kind/:name`.
  func configEntry(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let parts = call.parameter.split(separator: "/", maxSplits: 1).map(String.init)
    let kind = parts.first ?? ""
    let name = parts.count > 1 ? parts[1] : nil
    guard kind == "service-intentions" else {
      throw ConsulAgentError(400, "invalid config entry kind: \(kind)")
    }
    if call.method == .delete {
      guard let name, !name.isEmpty else {
        throw ConsulAgentError(404, "Must provide both a kind and name to delete")
      }
      try self.mutate { state, _ throws(ConsulAgentError) in
        try state.editIntentions { intentions, index in
          intentions.deleteEntry(name, at: index)
        }
      }
      return .json(Data("{}".utf8))
    }
    guard let name, !name.isEmpty else {
      return try await self.read(.intentions, call) { state in
        state.intentions.entries.values.sorted { ConsulAgentKey($0.name) < ConsulAgentKey($1.name) }
      }
    }
    let exists = self.withState { $0.intentions.entries[ConsulAgentKey(name)] != nil }
    guard exists else {
      throw ConsulAgentError(404, "Config entry not found for \"service-intentions\" / \"\(name)\"")
    }
    return try await self.read(.intentions, call) { state in
      state.intentions.entries[ConsulAgentKey(name)]
    }
  }

  /// A query parameter given exactly once, as Consul requires.
  private static func required(
    _ name: String,
    _ query: ConsulAgentQuery
  ) throws(ConsulAgentError) -> String {
    let values = query.all(name)
    guard values.count == 1 else {
      throw ConsulAgentError(500, "required query parameter '\(name)' not set")
    }
    return values[0]
  }

  /// A service name as Consul CE accepts it in the intentions API: `name` or `default/name`.
  private static func checkName(_ value: String, _ field: String) throws(ConsulAgentError) {
    let parts = value.split(separator: "/", omittingEmptySubsequences: false)
    if parts.count > 2 {
      throw ConsulAgentError(
        500,
        "\(field) \(MeshInput.quoted(value)) is invalid: input can contain at most two '/'"
      )
    }
    if parts.count == 2, parts[0] != "default" {
      throw ConsulAgentError(
        500,
        "\(field) \(MeshInput.quoted(value)) is invalid: namespaces are a Consul Enterprise feature"
      )
    }
  }
}
