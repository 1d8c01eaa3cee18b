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

/// What changes touched since the last ``ConsulAgentState/takeChange()``: who to wake, which
/// probes to (re)start.
package struct ConsulAgentChange: Sendable {
  package var services: Set<ConsulAgentKey> = []
  package var catalog = false
  package var any = false
  /// gRPC checks added or whose settings changed.
  package var probes: Set<ConsulAgentKey> = []
  /// The intentions (service-intentions config entries).
  package var intentions = false
}

/// The agent's catalog and checks, as a value with no I/O.
///
/// Every change takes the next value of one agent-wide index, Consul's raft index; each service
/// name remembers the highest index of any change that touched it (deletions included), which is
/// the `X-Consul-Index` of its queries, and forgets it when its last instance goes (its queries
/// then follow the services table, as Consul's do). Blocking queries wait for that index to pass
/// theirs.
///
/// Every operation costs O(1) in the number of services (plus O(log n) for timers): services by
/// name, checks by service and timers in a heap are kept as indexes, never found by scanning.
/// IDs and names are ``ConsulAgentKey``s, compared byte for byte.
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
    /// The index at which the check's kind (target, interval, TTL) last changed: a probe started
    /// for an older generation records nothing.
    package var generation: UInt64 = 0
  }

  package let node: ConsulNode
  package private(set) var services: [ConsulAgentKey: ConsulNodeService] = [:]
  /// Checks by check ID.
  package private(set) var checks: [ConsulAgentKey: Check] = [:]
  /// The agent-wide index of the last change.
  package private(set) var index: UInt64
  /// The index of the last change that touched each service name that has instances.
  private var serviceIndexes: [ConsulAgentKey: UInt64] = [:]
  /// The index of the last change to the set of services or their tags.
  private var catalogIndex: UInt64
  private var serviceIDsByName: [ConsulAgentKey: Set<ConsulAgentKey>] = [:]
  private var checkIDsByService: [ConsulAgentKey: Set<ConsulAgentKey>] = [:]
  private var deadlines = ConsulAgentDeadlines<Instant>()
  private var change = ConsulAgentChange()
  /// The intentions: service-intentions config entries.
  package private(set) var intentions = ConsulAgentIntentions()

  package init(node: ConsulNode, startIndex: UInt64 = 10) {
    self.node = node
    self.index = startIndex
    self.catalogIndex = startIndex
  }

  /// The index queries of `service` report (never 0).
  package func index(ofService service: ConsulAgentKey) -> UInt64 {
    max(self.serviceIndexes[service] ?? self.catalogIndex, 1)
  }

  /// Whether `service` has its own index (it has instances); if not its queries follow the
  /// catalog's.
  package func hasOwnIndex(_ service: ConsulAgentKey) -> Bool {
    self.serviceIndexes[service] != nil
  }

  /// The index of `/v1/catalog/services` (never 0).
  package var indexOfCatalog: UInt64 {
    max(self.catalogIndex, 1)
  }

  /// How many service names keep an index entry (for tests: only names with instances do).
  package var indexedServiceNames: Int { self.serviceIndexes.count }
  /// How many timers are queued, stale ones included (for tests: bounded by the checks).
  package var queuedTimers: Int { self.deadlines.count }

  /// The IDs of the instances of `name`, in byte order.
  package func serviceIDs(named name: ConsulAgentKey) -> [ConsulAgentKey] {
    (self.serviceIDsByName[name] ?? []).sorted()
  }

  /// The checks of service `id`, in byte order of their IDs.
  package func checks(ofService id: ConsulAgentKey) -> [Check] {
    (self.checkIDsByService[id] ?? []).sorted().compactMap { self.checks[$0] }
  }

  /// The index of the intentions' queries (never 0).
  package var indexOfIntentions: UInt64 {
    max(self.intentions.index, 1)
  }

  /// Applies `edit` to the intentions, at the next index if it changes them.
  package mutating func editIntentions(
    _ edit: (inout ConsulAgentIntentions, UInt64) throws(ConsulAgentError) -> Void
  ) throws(ConsulAgentError) {
    var intentions = self.intentions
    try edit(&intentions, self.index + 1)
    guard intentions != self.intentions else { return }
    self.intentions = intentions
    _ = self.nextIndex()
    self.change.intentions = true
    self.change.any = true
  }

  /// Returns and clears what changed since the last call.
  package mutating func takeChange() -> ConsulAgentChange {
    defer { self.change = ConsulAgentChange() }
    return self.change
  }

  private mutating func nextIndex() -> UInt64 {
    self.index += 1
    return self.index
  }

  /// Records that the change at `index` touched `names` (and the services table if `catalog`).
  private mutating func mark(
    _ names: some Sequence<ConsulAgentKey>,
    catalog: Bool,
    at index: UInt64
  ) {
    for name in names {
      if self.serviceIDsByName[name]?.isEmpty == false {
        self.serviceIndexes[name] = index
      } else {
        // Its queries follow the services table from now on, whose index is this one.
        self.serviceIndexes[name] = nil
      }
      self.change.services.insert(name)
    }
    if catalog {
      self.catalogIndex = index
      self.change.catalog = true
    }
    self.change.any = true
  }

  // MARK: - Registration

  /// `PUT /v1/agent/service/register`.
  package mutating func register(
    _ registration: ConsulServiceRegistration,
    replaceExistingChecks: Bool,
    now: Instant
  ) throws(ConsulAgentError) {
    guard !registration.name.isEmpty else { throw ConsulAgentError(400, "Missing service name") }
    let serviceID = ConsulAgentKey(
      registration.id.flatMap { $0.isEmpty ? nil : $0 } ?? registration.name
    )
    let name = ConsulAgentKey(registration.name)
    if let address = registration.address, address == "0.0.0.0" || address == "::" {
      throw ConsulAgentError(400, "Invalid service address")
    }
    let weights = registration.weights ?? ConsulWeights()
    // Consul's structs.ValidateWeights, in its order and words.
    guard weights.passing >= 1 else {
      throw ConsulAgentError(400, "Invalid Weights: Passing must be greater than 0")
    }
    guard weights.warning >= 0 else {
      throw ConsulAgentError(400, "Invalid Weights: Warning must be greater or equal than 0")
    }
    guard weights.passing <= 65_535, weights.warning <= 65_535 else {
      throw ConsulAgentError(400, "Invalid Weights: DNS Weight must be between 0 and 65535")
    }
    try Self.validate(meta: registration.meta ?? [:])

    let previous = self.services[serviceID]
    var service = ConsulNodeService(
      id: serviceID.text,
      service: registration.name,
      tags: registration.tags ?? [],
      address: registration.address ?? "",
      taggedAddresses: Self.taggedAddresses(registration),
      meta: registration.meta,
      port: registration.port ?? 0,
      weights: weights,
      enableTagOverride: registration.enableTagOverride ?? false
    )
    if service.meta?.isEmpty == true { service.meta = nil }

    // Validate every check before changing anything.
    let definitions = registration.allChecks
    var newChecks: [(ConsulAgentKey, Check)] = []
    for (position, definition) in definitions.enumerated() {
      let checkID = ConsulAgentKey(
        definition.checkID.flatMap { $0.isEmpty ? nil : $0 }
          ?? (definitions.count > 1
            ? "service:\(serviceID.text):\(position + 1)" : "service:\(serviceID.text)")
      )
      if let existing = self.checks[checkID],
        existing.health.serviceID.utf8.elementsEqual(
          serviceID.text.utf8
        ) == false
      {
        throw ConsulAgentError(
          400,
          "Invalid check: CheckID \"\(checkID.text)\" belongs to another service"
        )
      }
      let check = try Self.makeCheck(
        definition,
        checkID: checkID,
        node: self.node.node,
        service: service,
        now: now
      )
      newChecks.append((checkID, check))
    }

    let index = self.nextIndex()
    service.createIndex = previous?.createIndex ?? index
    service.modifyIndex = index
    var touched: Set<ConsulAgentKey> = [name]
    if let previous {
      let previousName = ConsulAgentKey(previous.service)
      if previousName != name {
        self.serviceIDsByName[previousName]?.remove(serviceID)
        if self.serviceIDsByName[previousName]?.isEmpty == true {
          self.serviceIDsByName[previousName] = nil
        }
        touched.insert(previousName)
      }
    }
    self.services[serviceID] = service
    self.serviceIDsByName[name, default: []].insert(serviceID)

    // Checks of this service not in the request stay unless asked to replace them.
    let requested = Set(newChecks.map(\.0))
    for checkID in self.checkIDsByService[serviceID] ?? [] {
      guard let check = self.checks[checkID], check.kind != .maintenance else { continue }
      if !requested.contains(checkID) && replaceExistingChecks {
        self.removeCheck(checkID, serviceID: serviceID)
      } else {
        self.checks[checkID]?.health.serviceTags = service.tags
        self.checks[checkID]?.health.serviceName = service.service
      }
    }
    for (checkID, new) in newChecks {
      var check = new
      let sameSettings = self.checks[checkID].map { $0.kind == check.kind } ?? false
      if let existing = self.checks[checkID], sameSettings {
        // Re-registering with the same settings keeps a check's history, as Consul does.
        check.health.createIndex = existing.health.createIndex
        check.health.status = existing.health.status
        check.health.output = existing.health.output
        check.criticalSince = existing.criticalSince
        check.ttlDeadline = existing.ttlDeadline ?? check.ttlDeadline
        check.generation = existing.generation
      } else {
        // New settings: a new check, whose old result must not linger.
        check.health.createIndex = self.checks[checkID]?.health.createIndex ?? index
        check.generation = index
        if case .grpc = check.kind { self.change.probes.insert(checkID) }
      }
      check.health.modifyIndex = index
      self.checks[checkID] = check
      self.checkIDsByService[serviceID, default: []].insert(checkID)
      if !sameSettings {
        self.scheduleTimers(of: checkID, ttl: true, reap: true)
      }
    }
    self.mark(touched, catalog: true, at: index)
    self.compactTimersIfNeeded()
  }

  /// `PUT /v1/agent/service/deregister/:service_id`.
  package mutating func deregister(serviceID: ConsulAgentKey) throws(ConsulAgentError) {
    guard let service = self.services.removeValue(forKey: serviceID) else {
      throw ConsulAgentError(
        404,
        "Unknown service ID \"\(serviceID.text)\". Ensure that the service ID is passed, not the service name."
      )
    }
    for checkID in self.checkIDsByService.removeValue(forKey: serviceID) ?? [] {
      self.checks[checkID] = nil
    }
    let name = ConsulAgentKey(service.service)
    self.serviceIDsByName[name]?.remove(serviceID)
    if self.serviceIDsByName[name]?.isEmpty == true { self.serviceIDsByName[name] = nil }
    self.mark([name], catalog: true, at: self.nextIndex())
    self.compactTimersIfNeeded()
  }

  private mutating func removeCheck(_ checkID: ConsulAgentKey, serviceID: ConsulAgentKey) {
    self.checks[checkID] = nil
    self.checkIDsByService[serviceID]?.remove(checkID)
  }

  /// `PUT /v1/agent/service/maintenance/:service_id`.
  package mutating func setMaintenance(
    serviceID: ConsulAgentKey,
    enabled: Bool,
    reason: String?
  ) throws(ConsulAgentError) {
    guard let service = self.services[serviceID] else {
      throw ConsulAgentError(404, "No service registered with ID \"\(serviceID.text)\"")
    }
    let checkID = ConsulAgentKey("_service_maintenance:\(serviceID.text)")
    if enabled {
      guard self.checks[checkID] == nil else { return }  // idempotent
      let index = self.nextIndex()
      let notes =
        reason.flatMap { $0.isEmpty ? nil : $0 }
        ?? "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
      var health = ConsulHealthCheck(
        node: self.node.node,
        checkID: checkID.text,
        name: "Service Maintenance Mode",
        status: .critical,
        notes: notes,
        serviceID: serviceID.text,
        serviceName: service.service,
        serviceTags: service.tags,
        createIndex: index,
        modifyIndex: index
      )
      health.type = ""
      self.checks[checkID] = Check(health: health, kind: .maintenance)
      self.checkIDsByService[serviceID, default: []].insert(checkID)
      self.mark([ConsulAgentKey(service.service)], catalog: false, at: index)
    } else if self.checks[checkID] != nil {
      self.removeCheck(checkID, serviceID: serviceID)
      self.mark([ConsulAgentKey(service.service)], catalog: false, at: self.nextIndex())
    }
  }

  // MARK: - Check results

  /// `PUT /v1/agent/check/{pass,warn,fail,update}/:check_id`: a TTL report.
  package mutating func reportTTL(
    checkID: ConsulAgentKey,
    status: ConsulCheckStatus,
    output: String,
    now: Instant
  ) throws(ConsulAgentError) {
    guard let check = self.checks[checkID] else {
      throw ConsulAgentError(
        404,
        "Unknown check ID \"\(checkID.text)\". Ensure that the check ID is passed, not the check name."
      )
    }
    guard case .ttl(let ttl) = check.kind else {
      throw ConsulAgentError(500, "CheckID \"\(checkID.text)\" does not have associated TTL")
    }
    self.checks[checkID]?.ttlDeadline = now.advanced(by: ttl)
    let becameCritical = self.setStatus(checkID: checkID, status: status, output: output, now: now)
    self.scheduleTimers(of: checkID, ttl: true, reap: becameCritical)
    self.compactTimersIfNeeded()
  }

  /// Records a probe's result (gRPC checks), if the check still has the settings it was made
  /// with (`generation`).
  package mutating func recordProbe(
    checkID: ConsulAgentKey,
    generation: UInt64,
    status: ConsulCheckStatus,
    output: String,
    now: Instant
  ) {
    guard self.checks[checkID]?.generation == generation else { return }
    let becameCritical = self.setStatus(checkID: checkID, status: status, output: output, now: now)
    self.scheduleTimers(of: checkID, ttl: false, reap: becameCritical)
    self.compactTimersIfNeeded()
  }

  /// Sets a check's status and output; returns whether it just turned critical.
  @discardableResult
  private mutating func setStatus(
    checkID: ConsulAgentKey,
    status: ConsulCheckStatus,
    output: String,
    now: Instant
  ) -> Bool {
    guard var check = self.checks[checkID] else { return false }
    let truncated = ConsulAgentCheckLimits.truncated(output)
    var becameCritical = false
    if status == .critical {
      if check.health.status != .critical || check.criticalSince == nil {
        check.criticalSince = now
        becameCritical = true
      }
    } else {
      check.criticalSince = nil
    }
    // Like Consul, a report that changes nothing is not a change: blocking queries stay asleep.
    guard check.health.status != status || check.health.output != truncated else {
      self.checks[checkID] = check
      return becameCritical
    }
    let index = self.nextIndex()
    check.health.status = status
    check.health.output = truncated
    check.health.modifyIndex = index
    self.checks[checkID] = check
    self.mark([ConsulAgentKey(check.health.serviceName)], catalog: false, at: index)
    return becameCritical
  }

  // MARK: - Timers

  /// Queues the check's TTL expiry (`ttl`) and removal (`reap`) if it has them. Each is queued
  /// once per change of its instant, so the heap holds at most two live entries per check.
  private mutating func scheduleTimers(of checkID: ConsulAgentKey, ttl: Bool, reap: Bool) {
    guard let check = self.checks[checkID] else { return }
    if ttl, let deadline = check.ttlDeadline, check.health.status != .critical {
      self.deadlines.push(.init(instant: deadline, checkID: checkID, kind: .ttl))
    }
    if reap, let after = check.deregisterCriticalAfter, let since = check.criticalSince {
      self.deadlines.push(.init(instant: since.advanced(by: after), checkID: checkID, kind: .reap))
    }
  }

  private func isCurrent(_ entry: ConsulAgentDeadlines<Instant>.Entry) -> Bool {
    Self.isCurrent(entry, in: self.checks)
  }

  private static func isCurrent(
    _ entry: ConsulAgentDeadlines<Instant>.Entry,
    in checks: [ConsulAgentKey: Check]
  ) -> Bool {
    guard let check = checks[entry.checkID] else { return false }
    switch entry.kind {
    case .ttl:
      return check.ttlDeadline == entry.instant && check.health.status != .critical
    case .reap:
      guard let after = check.deregisterCriticalAfter, let since = check.criticalSince else {
        return false
      }
      return since.advanced(by: after) == entry.instant
    }
  }

  private mutating func compactTimersIfNeeded() {
    while let first = self.deadlines.first, !self.isCurrent(first) {
      self.deadlines.popFirst()
    }
    if self.deadlines.count > 64 && self.deadlines.count > 4 * self.checks.count {
      let checks = self.checks
      self.deadlines.compact { Self.isCurrent($0, in: checks) }
    }
  }

  /// Expires TTLs that ran out and removes services critical for longer than their checks'
  /// `DeregisterCriticalServiceAfter`. Returns the IDs of the services removed.
  package mutating func tick(now: Instant) -> [String] {
    var reaped: Set<ConsulAgentKey> = []
    while let entry = self.deadlines.first, entry.instant <= now {
      self.deadlines.popFirst()
      guard self.isCurrent(entry), let check = self.checks[entry.checkID] else { continue }
      switch entry.kind {
      case .ttl:
        let becameCritical = self.setStatus(
          checkID: entry.checkID,
          status: .critical,
          output: "TTL expired (last output before timeout follows): \(check.health.output)",
          now: now
        )
        self.scheduleTimers(of: entry.checkID, ttl: false, reap: becameCritical)
      case .reap:
        reaped.insert(ConsulAgentKey(check.health.serviceID))
      }
    }
    for serviceID in reaped {
      try? self.deregister(serviceID: serviceID)
    }
    self.compactTimersIfNeeded()
    return reaped.sorted().map(\.text)
  }

  /// The earliest moment ``tick(now:)`` has work to do, if any.
  package var nextDeadline: Instant? {
    self.deadlines.first?.instant
  }

  /// The settings a probe of gRPC check `checkID` runs with, if it is one.
  package func grpcCheck(_ checkID: ConsulAgentKey) -> (
    target: ConsulGRPCCheckTarget, interval: Duration, timeout: Duration, generation: UInt64
  )? {
    guard let check = self.checks[checkID],
      case .grpc(let target, let interval, let timeout) = check.kind
    else { return nil }
    return (target, interval, timeout, check.generation)
  }
}
