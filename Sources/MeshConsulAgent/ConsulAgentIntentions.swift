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

package import MeshConsul
internal import MeshCore

/// The agent's intentions, kept as Consul 1.9+ keeps them: one `service-intentions` config
/// entry per destination, whose sources are the intentions to it. A value with no I/O.
///
/// Writes are validated with Consul's messages (`agent/structs/config_entry_intentions.go`):
/// Consul answers those with 500 and plain text, as the agent does.
package struct ConsulAgentIntentions: Equatable, Sendable {
  /// Entries by destination name.
  package private(set) var entries: [ConsulAgentKey: ConsulServiceIntentions] = [:]
  /// The index of the last change (Consul: the config entries table's), 0 before any.
  package private(set) var index: UInt64 = 0

  package init() {}

  // MARK: - Writes

  /// Stores `entry` whole (`PUT /v1/config`); false, storing nothing, when it equals the
  /// stored one (Consul skips such writes and keeps its index).
  @discardableResult
  package mutating func set(
    _ entry: ConsulServiceIntentions,
    at index: UInt64
  ) throws(ConsulAgentError) -> Bool {
    var entry = try Self.normalised(entry)
    let key = ConsulAgentKey(entry.name)
    if let stored = self.entries[key] {
      entry.createIndex = stored.createIndex
      entry.modifyIndex = stored.modifyIndex
      if entry == stored { return false }
    } else {
      entry.createIndex = index
    }
    entry.modifyIndex = index
    self.entries[key] = entry
    self.index = index
    return true
  }

  /// Removes the entry of `destination` (`DELETE /v1/config/service-intentions/:name`);
  /// removing a missing one is not an error.
  package mutating func deleteEntry(_ destination: String, at index: UInt64) {
    guard self.entries.removeValue(forKey: ConsulAgentKey(destination)) != nil else { return }
    self.index = index
  }

  /// Creates or replaces the intention from `source` to `destination` (`PUT
  /// /v1/connect/intentions/exact`): only its action, permissions and description are taken
  /// from `intention`; its meta must be absent or equal the entry's.
  package mutating func upsert(
    source: String,
    destination: String,
    from intention: ConsulIntention,
    at index: UInt64
  ) throws(ConsulAgentError) {
    let existing = self.entries[ConsulAgentKey(destination)]
    if let meta = intention.meta, !meta.isEmpty {
      guard let existing else { throw ConsulAgentError(500, "Meta must not be specified") }
      guard existing.meta == meta else {
        throw ConsulAgentError(
          500,
          "Meta must not be specified, or should be unchanged during an update."
        )
      }
    }
    var entry = existing ?? ConsulServiceIntentions(name: destination, sources: [])
    var updated = ConsulSourceIntention(
      name: source,
      action: intention.action,
      permissions: intention.permissions,
      description: intention.description
    )
    // Checked (and refused) with the entry's sources.
    updated.peer = intention.sourcePeer
    updated.samenessGroup = intention.sourceSamenessGroup
    updated.partition = intention.sourcePartition
    updated.jwt = intention.jwt
    if let position = entry.sources.firstIndex(where: { Self.same($0.name, source) }) {
      entry.sources[position] = updated
    } else {
      entry.sources.append(updated)
    }
    try self.set(entry, at: index)
  }

  /// Removes the intention from `source` to `destination`, and the entry with its last source
  /// (`DELETE /v1/connect/intentions/exact`); removing a missing one is not an error.
  package mutating func delete(
    source: String,
    destination: String,
    at index: UInt64
  ) throws(ConsulAgentError) {
    guard var entry = self.entries[ConsulAgentKey(destination)],
      let position = entry.sources.firstIndex(where: { Self.same($0.name, source) })
    else { return }
    entry.sources.remove(at: position)
    if entry.sources.isEmpty {
      self.deleteEntry(destination, at: index)
    } else {
      try self.set(entry, at: index)
    }
  }

  // MARK: - Reads

  /// The intention from `source` to `destination`, if any.
  package func intention(source: String, destination: String) -> ConsulIntention? {
    guard let entry = self.entries[ConsulAgentKey(destination)],
      let found = entry.sources.first(where: { Self.same($0.name, source) })
    else { return nil }
    return Self.intention(found, of: entry)
  }

  /// Every intention, in Consul's precedence order.
  package var all: [ConsulIntention] {
    Self.sorted(
      self.entries.values.flatMap { entry in entry.sources.map { Self.intention($0, of: entry) } }
    )
  }

  /// The intentions that apply to calls to `destination` (to it, or to `*`), in precedence order;
  /// nil when none (Consul answers `null`).
  package func matching(destination: String) -> [ConsulIntention]? {
    var found =
      self.entries[ConsulAgentKey("*")].map { entry in
        entry.sources.map { Self.intention($0, of: entry) }
      } ?? []
    if destination != "*", let entry = self.entries[ConsulAgentKey(destination)] {
      found += entry.sources.map { Self.intention($0, of: entry) }
    }
    return found.isEmpty ? nil : Self.sorted(found)
  }

  /// The intentions from `source` (it, or `*`), in precedence order; nil when none.
  package func matching(source: String) -> [ConsulIntention]? {
    let found = self.all.filter {
      Self.same($0.sourceName, source) || (source != "*" && $0.sourceName == "*")
    }
    return found.isEmpty ? nil : found
  }

  /// Whether `source` may call `destination` as `/v1/connect/intentions/check` answers: the most
  /// specific intention from `source` to `destination` decides, an L7 one denying; nil when none
  /// matches (the default decides).
  package func allows(source: String, destination: String) -> Bool? {
    for intention in self.matching(source: source) ?? []
    where Self.same(intention.destinationName, destination) || intention.destinationName == "*" {
      guard intention.permissions?.isEmpty ?? true else { return false }
      return intention.action == "allow"
    }
    return nil
  }

  // MARK: - Consul's rules

  private static func same(_ lhs: String, _ rhs: String) -> Bool {
    ConsulAgentKey(lhs) == ConsulAgentKey(rhs)
  }

  private static func intention(
    _ source: ConsulSourceIntention,
    of entry: ConsulServiceIntentions
  ) -> ConsulIntention {
    ConsulIntention(
      sourceName: source.name,
      destinationName: entry.name,
      action: source.action,
      permissions: source.permissions,
      description: source.description,
      meta: entry.meta,
      precedence: source.precedence,
      createIndex: entry.createIndex,
      modifyIndex: entry.modifyIndex
    )
  }

  /// Precedence, highest first; then source and destination names, byte by byte.
  private static func sorted(_ intentions: [ConsulIntention]) -> [ConsulIntention] {
    intentions.sorted { lhs, rhs in
      if lhs.precedence != rhs.precedence { return lhs.precedence > rhs.precedence }
      let left = [lhs.sourceNS, lhs.sourceName, lhs.destinationNS, lhs.destinationName]
      let right = [rhs.sourceNS, rhs.sourceName, rhs.destinationNS, rhs.destinationName]
      for (a, b) in zip(left, right) where a != b {
        return ConsulAgentKey(a) < ConsulAgentKey(b)
      }
      return false
    }
  }

  private static let methods: Set<String> = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
  ]

  /// `entry` checked as Consul's `Validate` does, with Consul's normalisation: kind, source
  /// types, precedence, upper-case methods, sources by precedence.
  static func normalised(
    _ entry: ConsulServiceIntentions
  ) throws(ConsulAgentError) -> ConsulServiceIntentions {
    func invalid(_ message: String) -> ConsulAgentError { ConsulAgentError(500, message) }
    func checkWildcard(_ name: String, _ field: String) throws(ConsulAgentError) {
      if name != "*" && name.contains("*") {
        throw invalid("\(field): wildcard character '*' cannot be used with partial values")
      }
    }
    var entry = entry
    entry.kind = "service-intentions"
    guard !entry.name.isEmpty else { throw invalid("Name is required") }
    try checkWildcard(entry.name, "Name")
    guard !entry.sources.isEmpty else { throw invalid("At least one source is required") }
    var seen: Set<ConsulAgentKey> = []
    for (i, source) in entry.sources.enumerated() {
      var source = source
      let field = "Sources[\(i)]"
      guard !source.name.isEmpty else { throw invalid("\(field).Name is required") }
      try checkWildcard(source.name, "\(field).Name")
      guard seen.insert(ConsulAgentKey(source.name)).inserted else {
        throw invalid("\(field) defines \"\(source.name)\" more than once")
      }
      // What this agent cannot keep is refused, never dropped: a source narrowed to a peer, a
      // sameness group, another namespace or partition, or JWT holders, read as the plain
      // service, would allow more than it says.
      for (key, value) in [
        ("Peer", source.peer), ("SamenessGroup", source.samenessGroup),
        ("Namespace", source.namespace.flatMap { $0 == "default" ? nil : $0 }),
        ("Partition", source.partition.flatMap { $0 == "default" ? nil : $0 }),
      ] where !(value ?? "").isEmpty {
        throw invalid("\(field).\(key) is not supported by this agent (Consul CE, one cluster)")
      }
      if source.jwt != nil || (source.permissions ?? []).contains(where: { $0.jwt != nil }) {
        throw invalid("\(field): JWT requirements are not supported by this agent")
      }
      if (source.description?.utf8.count ?? 0) > 512 {
        throw invalid("\(field).Description exceeds maximum length 512")
      }
      if source.description?.isEmpty == true { source.description = nil }
      if source.type.isEmpty { source.type = "consul" }
      guard source.type == "consul" else { throw invalid("\(field).Type must be set to 'consul'") }
      if source.action?.isEmpty == true { source.action = nil }
      if let permissions = source.permissions, !permissions.isEmpty {
        guard source.action == nil else {
          throw invalid("\(field).Action must be omitted if Permissions are specified")
        }
        guard entry.name != "*" else {
          throw invalid(
            "\(field).Permissions cannot be specified on intentions with wildcarded destinations"
          )
        }
        var normalised: [ConsulIntentionPermission] = []
        for (j, permission) in permissions.enumerated() {
          normalised.append(try Self.normalised(permission, field: "\(field).Permissions[\(j)]"))
        }
        source.permissions = normalised
      } else {
        source.permissions = nil
        guard source.action == "allow" || source.action == "deny" else {
          throw invalid("\(field).Action must be set to 'allow' or 'deny'")
        }
      }
      source.precedence = ConsulIntention.precedence(source: source.name, destination: entry.name)
      entry.sources[i] = source
    }
    // Stable: equal precedences keep the order they were given in.
    entry.sources = entry.sources.enumerated()
      .sorted { ($0.element.precedence, -$0.offset) > ($1.element.precedence, -$1.offset) }
      .map(\.element)
    if entry.meta?.isEmpty == true { entry.meta = nil }
    return entry
  }

  private static func normalised(
    _ permission: ConsulIntentionPermission,
    field: String
  ) throws(ConsulAgentError) -> ConsulIntentionPermission {
    func invalid(_ message: String) -> ConsulAgentError { ConsulAgentError(500, message) }
    guard permission.action == "allow" || permission.action == "deny" else {
      throw invalid("\(field).Action must be set to 'allow' or 'deny'")
    }
    guard var http = permission.http else { throw invalid("\(field).HTTP is required") }
    let paths = [http.pathExact, http.pathPrefix, http.pathRegex].compactMap { $0 }
    if paths.isEmpty && (http.header ?? []).isEmpty && (http.methods ?? []).isEmpty {
      throw invalid("\(field).HTTP should not be empty")
    }
    if paths.count > 1 {
      throw invalid(
        "\(field).HTTP should only contain at most one of PathExact, PathPrefix, or PathRegex"
      )
    }
    for (name, path) in [("PathExact", http.pathExact), ("PathPrefix", http.pathPrefix)] {
      if let path, !path.hasPrefix("/") {
        throw invalid("\(field).HTTP.\(name) doesn't start with '/': \(MeshInput.quoted(path))")
      }
    }
    for (k, header) in (http.header ?? []).enumerated() {
      guard !header.name.isEmpty else {
        throw invalid("\(field).HTTP.Header[\(k)] missing required Name field")
      }
      let conditions = [
        header.present == true, header.exact != nil, header.prefix != nil, header.suffix != nil,
        header.regex != nil,
      ]
      if conditions.filter({ $0 }).count > 1 {
        throw invalid(
          "\(field).HTTP.Header[\(k)] should only contain one of Present, Exact, Prefix, Suffix, or Regex"
        )
      }
    }
    if let methods = http.methods {
      var seen: Set<String> = []
      var upper: [String] = []
      for method in methods {
        let method = method.uppercased()
        guard Self.methods.contains(method) else {
          throw invalid(
            "\(field).HTTP.Methods contains an invalid method \(MeshInput.quoted(method))"
          )
        }
        guard seen.insert(method).inserted else {
          throw invalid("\(field).HTTP.Methods contains \(MeshInput.quoted(method)) more than once")
        }
        upper.append(method)
      }
      http.methods = upper.isEmpty ? nil : upper
    }
    return ConsulIntentionPermission(action: permission.action, http: http)
  }
}
