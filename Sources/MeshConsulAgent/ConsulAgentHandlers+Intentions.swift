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
    let rawSource = try Self.required("source", call.query)
    let rawDestination = try Self.required("destination", call.query)
    let source = try Self.serviceName(rawSource, "source")
    let destination = try Self.serviceName(rawDestination, "destination")
    switch call.method {
    case .put, .delete:
      for (name, value) in [("source", rawSource), ("destination", rawDestination)]
      where value.isEmpty {
        throw ConsulAgentError(500, "required query parameter '\(name)' not set")
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
    var parsed: [(key: String, name: String)] = []
    for name in names { parsed.append((name, try Self.serviceName(name, "name"))) }
    let queries = parsed
    let bySource = by[0] == "source"
    return try await self.read(.intentions, call) { state in
      // Keyed by each name as given; a name with no intentions maps to null, as in Consul.
      ConsulAgentMap(
        queries.map { query in
          (
            key: ConsulAgentKey(query.key),
            value: bySource
              ? state.intentions.matching(source: query.name)
              : state.intentions.matching(destination: query.name)
          )
        }
      )
    }
  }

  /// `GET /v1/connect/intentions/check?source=&destination=`: `{"Allowed": …}`.
  func checkIntention(_ call: ConsulAgentCall) async throws -> ConsulAgentReply {
    let source = try Self.serviceName(try Self.required("source", call.query), "source")
    let destination = try Self.serviceName(
      try Self.required("destination", call.query),
      "destination"
    )
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
    let cas = try Self.cas(call.query)
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
      let cas = try Self.cas(call.query)
      var deleted = true
      try self.mutate { state, _ throws(ConsulAgentError) in
        if let cas {
          let current = state.intentions.entries[ConsulAgentKey(name)]?.modifyIndex ?? 0
          guard current == cas else {
            deleted = false
            return
          }
        }
        try state.editIntentions { intentions, index in
          intentions.deleteEntry(name, at: index)
        }
      }
      // Consul answers {} to a delete, and true or false to one with ?cas.
      return .json(Data((cas == nil ? "{}" : deleted ? "true" : "false").utf8))
    }
    guard let name, !name.isEmpty else {
      return try await self.read(.intentions, call) { state in
        state.intentions.entries.values.sorted { ConsulAgentKey($0.name) < ConsulAgentKey($1.name) }
      }
    }
    // A blocking query, also while the entry is missing; missing when it returns: 404, with the
    // index to block on next, as Consul answers.
    var reply = try await self.read(.intentions, call) { state in
      state.intentions.entries[ConsulAgentKey(name)]
    }
    if reply.body == Array("null".utf8) {
      var missing = ConsulAgentReply.error(
        ConsulAgentError(404, "Config entry not found for \"service-intentions\" / \"\(name)\"")
      )
      for field in reply.headers where field.name != .contentType {
        missing.headers.append(field)
      }
      reply = missing
    }
    return reply
  }

  /// `?cas=`: the index a compare-and-set write expects; nil without one.
  private static func cas(_ query: ConsulAgentQuery) throws(ConsulAgentError) -> UInt64? {
    guard let text = query.value("cas") else { return nil }
    guard let parsed = try? MeshInput.integer(text, field: "cas", in: 0...Int64.max) else {
      throw ConsulAgentError(
        500,
        "strconv.ParseUint: parsing \(MeshInput.quoted(text)): invalid syntax"
      )
    }
    return UInt64(parsed)
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

  /// A service name as Consul CE takes it in the intentions API, `name`, `default/name` (Consul's
  /// Go client sends the namespace when it is set) or `default/default/name`: the name.
  private static func serviceName(
    _ value: String,
    _ field: String
  ) throws(ConsulAgentError) -> String {
    let parts = value.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 3 else {
      throw ConsulAgentError(
        500,
        "\(field) \(MeshInput.quoted(value)) is invalid: input can contain at most two '/'"
      )
    }
    for part in parts.dropLast() where part != "default" {
      throw ConsulAgentError(
        500,
        "\(field) \(MeshInput.quoted(value)) is invalid: namespaces and partitions are a Consul "
          + "Enterprise feature"
      )
    }
    return String(parts[parts.count - 1])
  }
}
