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

/// An HTTP error the agent answers with: a status and Consul's plain-text message.
public struct ConsulAgentError: Error, Hashable, Sendable {
  public var status: Int
  public var message: String

  public init(_ status: Int, _ message: String) {
    self.status = status
    self.message = message
  }
}

/// How the agent runs a check.
package enum ConsulAgentCheckKind: Hashable, Sendable {
  /// The application reports it; it turns critical when `ttl` passes without a report.
  case ttl(Duration)
  /// The agent calls grpc.health.v1 Check on `target` every `interval`.
  case grpc(ConsulGRPCCheckTarget, interval: Duration, timeout: Duration)
  /// Maintenance mode: always critical.
  case maintenance
}

/// Where a gRPC check calls, parsed from `host:port[/service]`.
package struct ConsulGRPCCheckTarget: Hashable, Sendable {
  package var host: String
  package var port: Int
  package var service: String
  package var useTLS: Bool
  package var tlsServerName: String?
  package var tlsSkipVerify: Bool
  /// The text Consul shows in outputs (`host:port/service` as registered).
  package var text: String

  package init(parsing text: String, useTLS: Bool, tlsServerName: String?, tlsSkipVerify: Bool)
    throws(ConsulAgentError)
  {
    let slash = text.firstIndex(of: "/")
    let address = slash.map { text[..<$0] } ?? Substring(text)
    let service = slash.map { String(text[text.index(after: $0)...]) } ?? ""
    guard let colon = address.lastIndex(of: ":"),
      let port = Int(address[address.index(after: colon)...]), (1...65_535).contains(port)
    else {
      throw ConsulAgentError(400, "Invalid check: GRPC must be host:port[/service], not '\(text)'")
    }
    var host = String(address[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") {
      host = String(host.dropFirst().dropLast())
    }
    self.host = host
    self.port = port
    self.service = service
    self.useTLS = useTLS
    self.tlsServerName = tlsServerName
    self.tlsSkipVerify = tlsSkipVerify
    self.text = text
  }
}

/// The agent's catalog and checks, as a value with no I/O.
///
/// Every change takes the next value of one agent-wide index, Consul's raft index; each service
/// remembers the highest index of any change that touched it (deletions included), which is the
/// `X-Consul-Index` of its queries. Blocking queries wait for that index to pass theirs.
package struct ConsulAgentState<Instant: InstantProtocol> where Instant.Duration == Duration {
  package struct Check {
    package var health: ConsulHealthCheck
    package var kind: ConsulAgentCheckKind
    /// TTL checks: when the TTL runs out.
    package var ttlDeadline: Instant?
    /// Remove the service once this check has been critical for this long.
    package var deregisterCriticalAfter: Duration?
    /// When the check last turned critical.
    package var criticalSince: Instant?
  }

  package let node: ConsulNode
  package private(set) var services: [String: ConsulNodeService] = [:]
  /// Checks by check ID.
  package private(set) var checks: [String: Check] = [:]
  /// The agent-wide index of the last change.
  package private(set) var index: UInt64
  /// The index of the last change that touched each service name.
  private var serviceIndexes: [String: UInt64] = [:]
  /// The index of the last change to the set of services or their tags.
  private var catalogIndex: UInt64

  package init(node: ConsulNode, startIndex: UInt64 = 10) {
    self.node = node
    self.index = startIndex
    self.catalogIndex = startIndex
  }

  /// The index queries of `service` report (never 0).
  package func index(ofService service: String) -> UInt64 {
    max(self.serviceIndexes[service] ?? self.catalogIndex, 1)
  }

  /// The index of `/v1/catalog/services` (never 0).
  package var indexOfCatalog: UInt64 {
    max(self.catalogIndex, 1)
  }

  private mutating func touch(_ serviceNames: some Sequence<String>, catalog: Bool) -> UInt64 {
    self.index += 1
    for name in serviceNames {
      self.serviceIndexes[name] = self.index
    }
    if catalog {
      self.catalogIndex = self.index
    }
    return self.index
  }

  // MARK: - Registration

  /// `PUT /v1/agent/service/register`.
  package mutating func register(
    _ registration: ConsulServiceRegistration,
    replaceExistingChecks: Bool,
    now: Instant
  ) throws(ConsulAgentError) {
    guard !registration.name.isEmpty else { throw ConsulAgentError(400, "Missing service name") }
    let serviceID = registration.id.flatMap { $0.isEmpty ? nil : $0 } ?? registration.name
    if let address = registration.address, address == "0.0.0.0" || address == "::" {
      throw ConsulAgentError(400, "Invalid service address")
    }
    let weights = registration.weights ?? ConsulWeights()
    guard weights.passing >= 1, weights.passing <= 65_535 else {
      throw ConsulAgentError(400, "Invalid Weights: Passing must be greater than 0")
    }
    guard weights.warning >= 0, weights.warning <= 65_535 else {
      throw ConsulAgentError(400, "Invalid Weights: Warning must be greater or equal than 0")
    }
    try Self.validate(meta: registration.meta ?? [:])

    // Validate every check before changing anything.
    let definitions = registration.allChecks
    var newChecks: [String: Check] = [:]
    var order: [String] = []
    for (position, definition) in definitions.enumerated() {
      let checkID =
        definition.checkID.flatMap { $0.isEmpty ? nil : $0 }
        ?? (definitions.count > 1 ? "service:\(serviceID):\(position + 1)" : "service:\(serviceID)")
      let check = try Self.makeCheck(
        definition,
        checkID: checkID,
        node: self.node.node,
        serviceID: serviceID,
        serviceName: registration.name,
        tags: registration.tags ?? [],
        now: now
      )
      newChecks[checkID] = check
      order.append(checkID)
    }

    let previous = self.services[serviceID]
    var touched: Set<String> = [registration.name]
    if let previous { touched.insert(previous.service) }
    let index = self.touch(touched, catalog: true)

    var service = ConsulNodeService(
      id: serviceID,
      service: registration.name,
      tags: registration.tags ?? [],
      address: registration.address ?? "",
      taggedAddresses: Self.taggedAddresses(registration),
      meta: registration.meta,
      port: registration.port ?? 0,
      weights: weights,
      enableTagOverride: registration.enableTagOverride ?? false,
      createIndex: previous?.createIndex ?? index,
      modifyIndex: index
    )
    if service.meta?.isEmpty == true { service.meta = nil }
    self.services[serviceID] = service

    // Checks of this service not in the request stay unless asked to replace them.
    for (checkID, check) in self.checks where check.health.serviceID == serviceID {
      if check.kind == .maintenance { continue }
      if newChecks[checkID] == nil && replaceExistingChecks {
        self.checks[checkID] = nil
      } else {
        self.checks[checkID]?.health.serviceTags = service.tags
        self.checks[checkID]?.health.serviceName = service.service
      }
    }
    for checkID in order {
      var check = newChecks[checkID]!
      if let existing = self.checks[checkID] {
        // Re-registering keeps a check's history, as Consul does.
        check.health.createIndex = existing.health.createIndex
        check.health.status = existing.health.status
        check.health.output = existing.health.output
        check.criticalSince = existing.criticalSince
      } else {
        check.health.createIndex = index
      }
      check.health.modifyIndex = index
      self.checks[checkID] = check
    }
  }

  /// `PUT /v1/agent/service/deregister/:service_id`.
  package mutating func deregister(serviceID: String) throws(ConsulAgentError) {
    guard let service = self.services.removeValue(forKey: serviceID) else {
      throw ConsulAgentError(
        404,
        "Unknown service ID \"\(serviceID)\". Ensure that the service ID is passed, not the service name."
      )
    }
    self.checks = self.checks.filter { $0.value.health.serviceID != serviceID }
    _ = self.touch([service.service], catalog: true)
  }

  /// `PUT /v1/agent/service/maintenance/:service_id`.
  package mutating func setMaintenance(
    serviceID: String,
    enabled: Bool,
    reason: String?
  ) throws(ConsulAgentError) {
    guard let service = self.services[serviceID] else {
      throw ConsulAgentError(404, "No service registered with ID \"\(serviceID)\"")
    }
    let checkID = "_service_maintenance:\(serviceID)"
    if enabled {
      guard self.checks[checkID] == nil else { return }  // idempotent
      let index = self.touch([service.service], catalog: false)
      let notes =
        reason.flatMap { $0.isEmpty ? nil : $0 }
        ?? "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
      var health = ConsulHealthCheck(
        node: self.node.node,
        checkID: checkID,
        name: "Service Maintenance Mode",
        status: .critical,
        notes: notes,
        serviceID: serviceID,
        serviceName: service.service,
        serviceTags: service.tags,
        createIndex: index,
        modifyIndex: index
      )
      health.type = ""
      self.checks[checkID] = Check(health: health, kind: .maintenance)
    } else if self.checks.removeValue(forKey: checkID) != nil {
      _ = self.touch([service.service], catalog: false)
    }
  }

  // MARK: - Check results

  /// `PUT /v1/agent/check/{pass,warn,fail,update}/:check_id`: a TTL report.
  package mutating func reportTTL(
    checkID: String,
    status: ConsulCheckStatus,
    output: String,
    now: Instant
  ) throws(ConsulAgentError) {
    guard let check = self.checks[checkID] else {
      throw ConsulAgentError(
        404,
        "Unknown check ID \"\(checkID)\". Ensure that the check ID is passed, not the check name."
      )
    }
    guard case .ttl(let ttl) = check.kind else {
      throw ConsulAgentError(500, "CheckID \"\(checkID)\" does not have associated TTL")
    }
    self.checks[checkID]?.ttlDeadline = now.advanced(by: ttl)
    self.setStatus(checkID: checkID, status: status, output: output, now: now)
  }

  /// Records a probe's result (gRPC checks).
  package mutating func recordProbe(
    checkID: String,
    status: ConsulCheckStatus,
    output: String,
    now: Instant
  ) {
    guard self.checks[checkID] != nil else { return }
    self.setStatus(checkID: checkID, status: status, output: output, now: now)
  }

  private mutating func setStatus(
    checkID: String,
    status: ConsulCheckStatus,
    output: String,
    now: Instant
  ) {
    guard var check = self.checks[checkID] else { return }
    let truncated = String(output.utf8.prefix(4096)) ?? output
    if status == .critical {
      if check.health.status != .critical || check.criticalSince == nil {
        check.criticalSince = now
      }
    } else {
      check.criticalSince = nil
    }
    // Like Consul, a report that changes nothing is not a change: blocking queries stay asleep.
    guard check.health.status != status || check.health.output != truncated else {
      self.checks[checkID] = check
      return
    }
    let index = self.touch([check.health.serviceName], catalog: false)
    check.health.status = status
    check.health.output = truncated
    check.health.modifyIndex = index
    self.checks[checkID] = check
  }

  /// Expires TTLs that ran out and removes services critical for longer than their checks'
  /// `DeregisterCriticalServiceAfter`. Returns the IDs of the services removed.
  package mutating func tick(now: Instant) -> [String] {
    for (checkID, check) in self.checks {
      if let deadline = check.ttlDeadline, deadline <= now, check.health.status != .critical {
        self.setStatus(
          checkID: checkID,
          status: .critical,
          output: "TTL expired (last output before timeout follows): \(check.health.output)",
          now: now
        )
      }
    }
    var reaped: Set<String> = []
    for check in self.checks.values {
      guard let after = check.deregisterCriticalAfter, let since = check.criticalSince,
        since.advanced(by: after) <= now
      else { continue }
      reaped.insert(check.health.serviceID)
    }
    for serviceID in reaped {
      try? self.deregister(serviceID: serviceID)
    }
    return reaped.sorted()
  }

  /// The earliest moment ``tick(now:)`` has work to do, if any.
  package var nextDeadline: Instant? {
    var deadlines: [Instant] = []
    for check in self.checks.values {
      if let deadline = check.ttlDeadline, check.health.status != .critical {
        deadlines.append(deadline)
      }
      if let after = check.deregisterCriticalAfter, let since = check.criticalSince {
        deadlines.append(since.advanced(by: after))
      }
    }
    return deadlines.min()
  }

  /// The gRPC checks to run: check ID, target, interval and timeout.
  package var grpcChecks:
    [(checkID: String, target: ConsulGRPCCheckTarget, interval: Duration, timeout: Duration)]
  {
    self.checks.compactMap { checkID, check in
      guard case .grpc(let target, let interval, let timeout) = check.kind else { return nil }
      return (checkID, target, interval, timeout)
    }
  }

  // MARK: - Queries

  /// `GET /v1/health/service/:service`.
  package func healthService(
    _ name: String,
    passingOnly: Bool,
    tags: [String]
  ) -> [ConsulServiceEntry] {
    let wanted = tags.map { $0.lowercased() }
    var entries: [ConsulServiceEntry] = []
    for service in self.services.values.sorted(by: { $0.id < $1.id }) where service.service == name
    {
      let lowered = Set(service.tags.map { $0.lowercased() })
      guard wanted.allSatisfy(lowered.contains) else { continue }
      let checks =
        [self.serfHealth]
        + self.checks.values.map(\.health).filter { $0.serviceID == service.id }
        .sorted { $0.checkID < $1.checkID }
      if passingOnly && checks.contains(where: { $0.status != .passing }) { continue }
      entries.append(ConsulServiceEntry(node: self.node, service: service, checks: checks))
    }
    return entries
  }

  /// `GET /v1/catalog/services`.
  package var catalogServices: [String: [String]] {
    var services: [String: [String]] = ["consul": []]
    for service in self.services.values.sorted(by: { $0.id < $1.id }) {
      var tags = services[service.service] ?? []
      for tag in service.tags where !tags.contains(tag) {
        tags.append(tag)
      }
      services[service.service] = tags
    }
    return services
  }

  /// `GET /v1/catalog/service/:service`.
  package func catalogService(_ name: String, tags: [String]) -> [ConsulCatalogServiceNode] {
    let wanted = tags.map { $0.lowercased() }
    return self.services.values.sorted(by: { $0.id < $1.id }).filter { service in
      let lowered = Set(service.tags.map { $0.lowercased() })
      return service.service == name && wanted.allSatisfy(lowered.contains)
    }.map { ConsulCatalogServiceNode(node: self.node, service: $0) }
  }

  /// The node's own health, always passing on a live agent.
  private var serfHealth: ConsulHealthCheck {
    ConsulHealthCheck(
      node: self.node.node,
      checkID: "serfHealth",
      name: "Serf Health Status",
      status: .passing,
      output: "Agent alive and reachable",
      createIndex: self.node.createIndex,
      modifyIndex: self.node.createIndex
    )
  }

  // MARK: - Validation

  private static func validate(meta: [String: String]) throws(ConsulAgentError) {
    guard meta.count <= 64 else {
      throw ConsulAgentError(
        400,
        "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs"
      )
    }
    for (key, value) in meta {
      guard !key.isEmpty, key.count <= 128,
        key.unicodeScalars.allSatisfy({
          ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
            || $0 == "_" || $0 == "-"
        })
      else {
        throw ConsulAgentError(400, "Invalid Service Meta: Key contains invalid characters")
      }
      guard !key.hasPrefix("consul-") else {
        throw ConsulAgentError(
          400,
          "Invalid Service Meta: Key prefix 'consul-' is reserved for internal use"
        )
      }
      guard value.count <= 512 else {
        throw ConsulAgentError(
          400,
          "Invalid Service Meta: Value is too long (limit: 512 characters)"
        )
      }
    }
  }

  private static func taggedAddresses(
    _ registration: ConsulServiceRegistration
  ) -> [String: ConsulServiceAddress]? {
    var tagged = registration.taggedAddresses ?? [:]
    // The agent adds lan/wan addresses of the family of an IP literal, unless set.
    if let address = registration.address, !address.isEmpty,
      let port = registration.port
    {
      let family: String? =
        address.contains(":") ? "ipv6" : (address.split(separator: ".").count == 4 ? "ipv4" : nil)
      if let family {
        for key in ["lan_\(family)", "wan_\(family)"] where tagged[key] == nil {
          tagged[key] = ConsulServiceAddress(address: address, port: port)
        }
      }
    }
    return tagged.isEmpty ? nil : tagged
  }

  private static func makeCheck(
    _ definition: ConsulCheckDefinition,
    checkID: String,
    node: String,
    serviceID: String,
    serviceName: String,
    tags: [String],
    now: Instant
  ) throws(ConsulAgentError) -> Check {
    func duration(_ text: String?, _ field: String) throws(ConsulAgentError) -> Duration? {
      guard let text, !text.isEmpty else { return nil }
      guard let value = ConsulDuration.parse(text) else {
        throw ConsulAgentError(
          400,
          "Request decode failed: time: invalid duration \"\(text)\" in \(field)"
        )
      }
      return value
    }
    let interval = try duration(definition.interval, "Interval")
    let ttl = try duration(definition.ttl, "TTL")
    let timeout = try duration(definition.timeout, "Timeout") ?? .seconds(10)
    let deregisterAfter = try duration(
      definition.deregisterCriticalServiceAfter,
      "DeregisterCriticalServiceAfter"
    )
    if interval != nil && ttl != nil {
      throw ConsulAgentError(400, "Invalid check: Interval and TTL cannot both be specified")
    }
    if let warning = definition.failuresBeforeWarning,
      let critical = definition.failuresBeforeCritical, warning > critical
    {
      throw ConsulAgentError(
        400,
        "Invalid check: FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
      )
    }

    let kind: ConsulAgentCheckKind
    let type: String
    if let grpc = definition.grpc, !grpc.isEmpty {
      guard let interval, interval > .zero else {
        throw ConsulAgentError(
          400,
          "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        )
      }
      let target = try ConsulGRPCCheckTarget(
        parsing: grpc,
        useTLS: definition.grpcUseTLS ?? false,
        tlsServerName: definition.tlsServerName,
        tlsSkipVerify: definition.tlsSkipVerify ?? false
      )
      kind = .grpc(target, interval: interval, timeout: timeout)
      type = "grpc"
    } else if definition.ttl != nil {
      guard let ttl, ttl > .zero else {
        throw ConsulAgentError(400, "Invalid check: TTL must be > 0 for TTL checks")
      }
      kind = .ttl(ttl)
      type = "ttl"
    } else if definition.http != nil || definition.tcp != nil {
      throw ConsulAgentError(
        400,
        "Invalid check: the embedded agent runs GRPC and TTL checks only"
      )
    } else {
      throw ConsulAgentError(400, "Invalid check: one of GRPC or TTL must be set")
    }

    let status = definition.status ?? .critical
    var health = ConsulHealthCheck(
      node: node,
      checkID: checkID,
      name: definition.name.flatMap { $0.isEmpty ? nil : $0 } ?? "Service '\(serviceName)' check",
      status: status,
      notes: definition.notes ?? "",
      serviceID: serviceID,
      serviceName: serviceName,
      serviceTags: tags,
      type: type
    )
    if case .grpc(_, let interval, let timeout) = kind {
      health.interval = ConsulDuration.format(interval)
      health.timeout = ConsulDuration.format(timeout)
    }
    var check = Check(
      health: health,
      kind: kind,
      ttlDeadline: nil,
      deregisterCriticalAfter: deregisterAfter,
      criticalSince: status == .critical ? now : nil
    )
    if case .ttl(let ttl) = kind {
      check.ttlDeadline = now.advanced(by: ttl)
    }
    return check
  }
}
