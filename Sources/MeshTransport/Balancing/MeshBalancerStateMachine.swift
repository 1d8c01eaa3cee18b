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

internal import GRPCCore
internal import MeshCore
internal import MeshDiscovery

/// The balancing transport's state: endpoints and their connections, readiness, ejection,
/// picking, pool growth, the RPCs waiting for an endpoint and attempt admission.
///
/// A value with no I/O, shaped as grpc-swift-nio-transport's `GRPCChannel.StateMachine`: the
/// transport keeps it under a lock, and each method returns what the transport must then do
/// outside the lock (``Effects``: waiters to resume, signals to fire, ejections to log; or an
/// action such as ``PickAction/open(_:)``). It never makes a connection, sleeps or logs, and it
/// reads time only from the instants it is given, so tests drive it with a manual clock.
///
/// - `Connection`: what the transport runs per connection (a subchannel and its client).
/// - `Waiter`: what an RPC waiting for an endpoint is resumed through.
struct MeshBalancerStateMachine<Connection, Waiter, Instant: InstantProtocol>
where Instant.Duration == Duration {
  typealias Entry = MeshEndpointEntry<Connection>
  typealias Change = MeshOutlierDetector<Instant>.Change

  struct Configuration {
    /// The target service's name, for error messages.
    var service: String
    var maxStreamsPerConnection: Int
    var maxConnectionsPerEndpoint: Int
    var breakers: MeshCircuitBreakerThresholds
  }

  /// What the transport does once it left the lock.
  struct Effects {
    var resume: [Waiter] = []
    var fire: [MeshSignal] = []
    var changes: [Change] = []

    var isEmpty: Bool { self.resume.isEmpty && self.fire.isEmpty && self.changes.isEmpty }

    mutating func formUnion(_ other: Effects) {
      self.resume += other.resume
      self.fire += other.fire
      self.changes += other.changes
    }
  }

  /// The endpoint (and connection) an attempt runs on.
  struct Picked {
    var id: String
    var endpoint: MeshEndpoint
    var connectionIndex: Int
    var generation: UInt64
    var connection: Connection
  }

  /// A connection the transport is to make for an endpoint whose connections are all full; it
  /// then calls ``opened(_:connection:)``.
  struct OpenConnection {
    var id: String
    var endpoint: MeshEndpoint
    var generation: UInt64
    /// The endpoint's removal: what the new connection runs until.
    var removed: MeshSignal
  }

  enum PickAction {
    case picked(Picked)
    case open(OpenConnection)
    /// Wait (through ``enqueue(_:id:)``) for the next change, under this ID.
    case wait(UInt64)
    case fail(RPCError)
  }

  let configuration: Configuration
  private(set) var picker: MeshPickerState<Instant>
  private(set) var detector: MeshOutlierDetector<Instant>?
  private(set) var admission: MeshAttemptAdmission<Instant>
  /// Endpoints in discovery order, by instance key.
  private(set) var order: [String] = []
  private(set) var entries: [String: Entry] = [:]
  var waiters = MeshWaitQueue<Waiter>()
  /// Discovery has answered at least once.
  private(set) var hasEndpoints = false
  private(set) var isShutDown = false
  private var nextGeneration: UInt64 = 0
  private(set) var connections = 0
  private(set) var invalidEndpoints = 0
  private(set) var discoveryError: String?
  /// Discovery's last failure as it was thrown (a `MeshConsulError`, a `MeshDiscoveryError`…): the
  /// cause of the RPC failures it explains.
  private(set) var discoveryFailure: (any Error)?
  private(set) var failedAttempts = 0
  private(set) var perTryTimeouts = 0
  private(set) var perTryAbandonments = 0
  /// Invalid endpoints already reported (so that each is logged once), by description.
  private var reportedInvalid: Set<String> = []
  /// Observers of the stats, for tests and diagnostics.
  var observers: [(predicate: @Sendable (MeshTransportStats) -> Bool, signal: MeshSignal)] =
    []

  init(
    configuration: Configuration,
    policy: MeshBalancingPolicy,
    outlierDetection: MeshOutlierDetectionPolicy?,
    retryBudget: MeshRetryBudgetPolicy?
  ) {
    self.configuration = configuration
    self.picker = MeshPickerState(policy: policy)
    self.detector = outlierDetection.map { MeshOutlierDetector(policy: $0) }
    self.admission = MeshAttemptAdmission(
      service: configuration.service,
      breakers: configuration.breakers,
      budget: retryBudget
    )
  }

  // MARK: - Endpoints

  /// Checks a discovery set: drops invalid endpoints (reporting each once) and duplicates, and
  /// lists those that need connections. Nil after shutdown. O(n).
  mutating func prepare(_ set: MeshEndpointSet) -> MeshIncomingEndpoints? {
    guard !self.isShutDown else { return nil }
    var incoming = MeshIncomingEndpoints()
    incoming.order.reserveCapacity(set.endpoints.count)
    for endpoint in set.endpoints {
      if let error = endpoint.validationError {
        incoming.invalidCount += 1
        let key = endpoint.description
        if !self.reportedInvalid.contains(key) {
          if self.reportedInvalid.count >= 1024 { self.reportedInvalid.removeAll() }
          self.reportedInvalid.insert(key)
          incoming.newlyInvalid.append((endpoint, error))
        }
        continue
      }
      let key = endpoint.instanceKey
      guard incoming.endpoints[key] == nil else { continue }
      incoming.endpoints[key] = endpoint
      incoming.order.append(key)
      if let entry = self.entries[key], Self.sameAddress(entry.endpoint, endpoint) { continue }
      incoming.toConnect.append(key)
    }
    return incoming
  }

  /// Applies a prepared set with the connections made for its new endpoints (those whose
  /// connection could not be made are skipped as invalid). Returns the new entries, to run, and
  /// what to do: removed endpoints' signals to fire (they drain), waiters to wake. O(n).
  mutating func apply(
    _ incoming: MeshIncomingEndpoints,
    connections made: [String: Connection]
  ) -> (added: [Entry], effects: Effects) {
    guard !self.isShutDown else { return ([], Effects()) }
    var effects = Effects()
    var added: [Entry] = []
    self.invalidEndpoints = incoming.invalidCount + (incoming.toConnect.count - made.count)
    for (id, entry) in self.entries {
      let kept = incoming.endpoints[id].map { Self.sameAddress($0, entry.endpoint) } ?? false
      if !kept {
        effects.fire.append(entry.removed)
        self.entries[id] = nil
        self.connections -= entry.pool.count + entry.opening
      }
    }
    self.order.removeAll(keepingCapacity: true)
    self.order.reserveCapacity(incoming.order.count)
    for id in incoming.order {
      let endpoint = incoming.endpoints[id]!
      if self.entries[id] != nil {
        self.entries[id]?.endpoint = endpoint  // tags, weights, zone may change
      } else {
        guard let connection = made[id] else { continue }
        self.nextGeneration += 1
        let entry = Entry(
          id: id,
          endpoint: endpoint,
          generation: self.nextGeneration,
          first: connection
        )
        self.entries[id] = entry
        self.connections += 1
        added.append(entry)
      }
      self.order.append(id)
    }
    self.hasEndpoints = true
    effects.changes = self.detector?.setEndpoints(self.order) ?? []
    effects.formUnion(self.refresh())
    return (added, effects)
  }

  /// What the endpoint's health stream says now. The transition of its error is returned for
  /// logging (nil when it did not change).
  mutating func setHealth(
    of id: String,
    generation: UInt64,
    connected: Bool,
    eligible: Bool,
    error: String?
  ) -> (effects: Effects, transition: (old: String?, new: String?)?) {
    guard var entry = self.entries[id], entry.generation == generation else {
      return (Effects(), nil)  // replaced or removed since
    }
    guard
      entry.eligible != eligible || entry.connected != connected || entry.lastError != error
        || !entry.probed
    else { return (Effects(), nil) }
    let transition = entry.lastError != error ? (entry.lastError, error) : nil
    entry.eligible = eligible
    entry.connected = connected
    entry.lastError = error
    entry.probed = true
    self.entries[id] = entry
    return (self.refresh(), transition)
  }

  /// The endpoint's last connection error, if it is not connected.
  func lastError(of id: String) -> String? {
    self.entries[id]?.lastError
  }

  /// Discovery's last failure (nil: it answers again); `changed` when its text changed.
  mutating func setDiscoveryError(_ error: (any Error)?) -> (changed: Bool, effects: Effects) {
    self.discoveryFailure = error
    let text = error.map { "\($0)" }
    guard self.discoveryError != text else { return (false, Effects()) }
    self.discoveryError = text
    return (true, Effects(fire: self.notifyObservers()))
  }

  /// Stops taking RPCs: every endpoint drains, waiting RPCs fail.
  mutating func shutDown() -> Effects {
    guard !self.isShutDown else { return Effects() }
    self.isShutDown = true
    var effects = self.refresh()
    effects.fire += self.entries.values.map(\.removed)
    return effects
  }

  /// Rebuilds the picker from the eligible endpoints; returns the waiters to wake.
  private mutating func refresh() -> Effects {
    var candidates: [Entry] = []
    var connected: [Entry] = []
    var allProbed = true
    for id in self.order {
      guard let entry = self.entries[id] else { continue }
      if entry.eligible { candidates.append(entry) }
      if entry.connected { connected.append(entry) }
      if !entry.probed { allProbed = false }
    }
    if candidates.isEmpty && allProbed {
      candidates = connected  // none is healthy: try them all rather than fail them all
    }
    if let ejected = self.detector?.ejected, !ejected.isEmpty {
      // Ejection never takes the last candidates: with all of them ejected, all are used.
      let remaining = candidates.filter { !ejected.contains($0.id) }
      if !remaining.isEmpty { candidates = remaining }
    }
    self.picker.update(
      candidates.map {
        MeshPickerEndpoint(
          id: $0.id,
          weight: $0.endpoint.weight,
          zone: $0.endpoint.zone,
          tags: $0.endpoint.tags
        )
      }
    )
    return Effects(resume: self.waiters.removeAll(), fire: self.notifyObservers())
  }

  private static func sameAddress(_ lhs: MeshEndpoint, _ rhs: MeshEndpoint) -> Bool {
    lhs.host == rhs.host && lhs.port == rhs.port
  }

  // MARK: - Picking

  /// Picks the endpoint and connection of an attempt, avoiding `failed` (endpoints the RPC's
  /// earlier attempts failed on) while another is available, and half-open endpoints already
  /// probed. Waits while discovery has not answered, while endpoints are still being probed and
  /// (with `waitForReady`) while none is connected; fails at once when discovery lists no
  /// endpoint, or (without it) when every endpoint was probed and none is connected.
  mutating func pick(
    avoiding failed: Set<String>,
    waitForReady: Bool,
    now: Instant,
    using random: inout some RandomNumberGenerator
  ) -> PickAction {
    let service = self.configuration.service
    if self.isShutDown {
      return .fail(
        RPCError(code: .unavailable, message: "The transport of '\(service)' shut down.")
      )
    }
    if self.hasEndpoints {
      if !self.picker.endpoints.isEmpty {
        var excluded = failed
        var choice = self.picker.pick(excluding: excluded, now: now, using: &random)
        if let id = choice, self.detector?.admits(id) == false {
          excluded.insert(id)
          choice = self.picker.pick(excluding: excluded, now: now, using: &random) ?? id
        }
        if let id = choice, let picked = self.pick(id) { return picked }
      } else if self.order.isEmpty {
        let reason = self.discoveryError.map { " (discovery: \($0))" } ?? ""
        let invalid =
          self.invalidEndpoints > 0
          ? " \(self.invalidEndpoints) invalid endpoints were skipped." : ""
        return .fail(
          RPCError(
            code: .unavailable,
            message: "No endpoint of '\(service)' is available\(reason).\(invalid)",
            cause: self.discoveryFailure
          )
        )
      } else if !waitForReady, self.order.allSatisfy({ self.entries[$0]?.probed ?? true }) {
        return .fail(
          RPCError(
            code: .unavailable,
            message: "No endpoint of '\(service)' is ready: \(self.unreadyReasons)."
          )
        )
      }
    }
    let maxPending = self.configuration.breakers.maxPendingRequests
    guard self.waiters.count < maxPending else {
      self.admission.reject(.maxPendingRequests)
      return .fail(
        RPCError(
          code: .unavailable,
          message: """
            Circuit breaker '\(MeshCircuitBreaker.maxPendingRequests)' of '\(service)' is \
            open: \(maxPending) RPCs are waiting for an endpoint.
            """
        )
      )
    }
    return .wait(self.waiters.makeID())
  }

  /// Takes a stream on the least busy connection of `id`, or reserves a new connection when all
  /// are full and the pool may grow.
  private mutating func pick(_ id: String) -> PickAction? {
    guard var entry = self.entries[id] else { return nil }
    let chosen = entry.leastBusy
    if entry.shouldGrow(
      at: chosen,
      maxStreams: self.configuration.maxStreamsPerConnection,
      maxConnections: self.configuration.maxConnectionsPerEndpoint
    ) {
      if self.connections >= self.configuration.breakers.maxConnections {
        self.admission.reject(.maxConnections)  // the stream queues on the open connection
      } else {
        entry.opening += 1
        self.connections += 1
        self.entries[id] = entry
        return .open(
          OpenConnection(
            id: id,
            endpoint: entry.endpoint,
            generation: entry.generation,
            removed: entry.removed
          )
        )
      }
    }
    return .picked(self.takeStream(on: id, connection: chosen))
  }

  /// A connection reserved by ``PickAction/open(_:)`` was made (or, nil, could not be). Returns
  /// the attempt's pick, on the new connection (`isNew`: the transport runs it) or else the least
  /// busy one; nil when the endpoint left meanwhile (the new connection is not used; pick again).
  mutating func opened(
    _ open: OpenConnection,
    connection: Connection?
  ) -> (picked: Picked, isNew: Bool)? {
    guard var entry = self.entries[open.id], entry.generation == open.generation else {
      return nil  // the reservation left with the entry
    }
    entry.opening -= 1
    if let connection {
      entry.pool.append(MeshEndpointEntry.Pooled(connection: connection, streams: 0))
      self.entries[open.id] = entry
      return (self.takeStream(on: open.id, connection: entry.pool.count - 1), true)
    }
    self.connections -= 1
    self.entries[open.id] = entry
    return (self.takeStream(on: open.id, connection: entry.leastBusy), false)
  }

  private mutating func takeStream(on id: String, connection index: Int) -> Picked {
    var entry = self.entries[id]!
    entry.pool[index].streams += 1
    self.entries[id] = entry
    self.picker.started(id)
    self.detector?.started(id)
    return Picked(
      id: id,
      endpoint: entry.endpoint,
      connectionIndex: index,
      generation: entry.generation,
      connection: entry.pool[index].connection
    )
  }

  /// Whether some pickable endpoint is not in `excluded`.
  func hasEndpoint(outside excluded: Set<String>) -> Bool {
    self.picker.endpoints.contains { !excluded.contains($0.id) }
  }

  // MARK: - Waiting

  /// Stores a waiter under an ID ``pick(avoiding:waitForReady:now:using:)`` returned. If the
  /// balancer changed since that pick (between it and this call the lock was free), the waiter
  /// is not stored but returned in the effects' `resume`, to look again.
  mutating func enqueue(_ waiter: Waiter, id: UInt64) -> Effects {
    guard self.waiters.enqueue(waiter, id: id) else {
      // The balancer changed since the pick that made `id`: resumed at once, the RPC picks again.
      return Effects(resume: [waiter])
    }
    return Effects(fire: self.notifyObservers())
  }

  /// Removes a waiter whose RPC ended; nil if it was already resumed.
  mutating func cancelWaiter(_ id: UInt64) -> (waiter: Waiter?, effects: Effects) {
    let waiter = self.waiters.remove(id)
    return (waiter, Effects(fire: self.notifyObservers()))
  }

  // MARK: - Attempts

  /// Applies the breakers and the retry budget to a new attempt: nil when it is admitted, else
  /// the RPC's failure. `retry` is the failure the attempt retries (nil for an RPC's first
  /// attempt). Ends ejections that are due first; their effects are returned either way (the
  /// waiters they wake must be resumed even when the attempt is refused).
  mutating func admit(retry: RPCError?, now: Instant) -> (refusal: RPCError?, effects: Effects) {
    var effects = self.tickOutlierDetection(now: now)
    var refusal: RPCError?
    do {
      try self.admission.admit(retry: retry, now: now)
    } catch {
      refusal = error
    }
    effects.fire += self.notifyObservers()
    return (refusal, effects)
  }

  /// The end of an admitted attempt.
  mutating func finishAttempt(isRetry: Bool) -> Effects {
    self.admission.finish(isRetry: isRetry)
    return Effects(fire: self.notifyObservers())
  }

  /// The end of an attempt on `picked`: its load, its latency, and outlier detection.
  mutating func release(
    _ picked: Picked,
    latency: Duration,
    endpointFailed: Bool,
    perTryTimedOut: Bool,
    now: Instant
  ) -> Effects {
    self.picker.finished(picked.id, latency: latency, now: now)
    if self.entries[picked.id]?.generation == picked.generation {
      self.entries[picked.id]?.pool[picked.connectionIndex].streams -= 1
    }
    if endpointFailed { self.failedAttempts += 1 }
    if perTryTimedOut { self.perTryTimeouts += 1 }
    guard let changes = self.detector?.finished(picked.id, success: !endpointFailed, now: now),
      !changes.isEmpty
    else { return Effects() }
    var effects = self.refresh()
    effects.changes = changes
    return effects
  }

  /// An attempt was abandoned at its per-try timeout (its end is accounted for later).
  mutating func abandonedAtPerTryTimeout() -> [MeshSignal] {
    self.perTryAbandonments += 1
    return self.notifyObservers()
  }

  private mutating func tickOutlierDetection(now: Instant) -> Effects {
    guard let changes = self.detector?.tick(now: now), !changes.isEmpty else { return Effects() }
    var effects = self.refresh()
    effects.changes = changes
    return effects
  }
}

extension MeshBalancerStateMachine.Effects: Sendable where Waiter: Sendable {}
extension MeshBalancerStateMachine.Picked: Sendable where Connection: Sendable {}
extension MeshBalancerStateMachine.OpenConnection: Sendable {}
extension MeshBalancerStateMachine.PickAction: Sendable where Connection: Sendable {}
