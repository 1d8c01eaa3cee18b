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

public import GRPCCore
public import Logging
internal import MeshCore
public import MeshDiscovery
internal import MeshProto
internal import SwiftProtobuf

/// A `ClientTransport` that spreads the RPCs of one service over its endpoints.
///
/// It watches the service through a ``MeshDiscovery``, keeps a subchannel (a transport made by a
/// ``MeshSubchannelFactory``) per endpoint, and picks one for each attempt with its
/// ``MeshBalancingPolicy``. A `GRPCClient` (and so any generated client) runs on it unchanged.
///
/// - **Readiness and health.** Each subchannel keeps a grpc.health.v1 `Watch` stream open. An
///   endpoint is picked only once that stream is up (new endpoints connect before they are
///   picked) and stops being picked when it breaks (a stopped endpoint is avoided). With
///   ``HealthChecking`` on (gRFC A17), it is picked only while it reports `SERVING`. A server
///   without the health service (`UNIMPLEMENTED`) counts as healthy once it answered. If every
///   connected endpoint reports itself unhealthy, they are all tried rather than none; an
///   endpoint that cannot be connected to is never picked, and its last connection error (a TLS
///   identity mismatch names both identities) is in ``stats`` and in the failure of RPCs that
///   find no endpoint ready.
/// - **Discovery output is checked.** An endpoint whose host is not an IPv4 address, an IPv6
///   address or a DNS name, or whose port is not 1–65535, is skipped (logged once, counted in
///   ``MeshTransportStats/invalidEndpoints``); the rest of the set is used. When discovery ends
///   or throws, the transport keeps the last set and subscribes again with backoff.
/// - **Endpoint changes.** A removed endpoint stops being picked at once, and its subchannel
///   shuts down gracefully, finishing the RPCs in flight on it. No RPC fails because an
///   endpoint left discovery.
/// - **Deadlines.** The transport owns every RPC's deadline (the caller's timeout, the method's
///   if shorter, the target's default, a propagated deadline less its margin): waiting for an
///   endpoint, a connection that never comes up, backoff between attempts and the attempts
///   themselves all end with it, whatever grpc-swift's executors do.
/// - **Resilience.** Its ``MeshResiliencePolicy`` gives each method a timeout and retries or
///   hedging, run here rather than by grpc-swift's executors: each retry goes to another
///   endpoint, retries are held to the retry budget and the breakers (a refused retry fails the
///   RPC at once with the failure it would have retried), each attempt is bounded by its per-try
///   timeout, and failing endpoints are ejected (outlier detection). Inside a server handler (see
///   ``MeshDeadlinePropagationInterceptor``), an RPC is cancelled with the one being served.
/// - **Lifecycle.** ``connect()`` runs the watch and the subchannels until
///   ``beginGracefulShutdown()`` (which lets RPCs in flight finish) or cancellation.
public final class MeshBalancingTransport<Factory: MeshSubchannelFactory>: ClientTransport {
  public typealias Bytes = Factory.Subchannel.Bytes

  /// Client-side health checking (gRFC A17).
  public struct HealthChecking: Hashable, Sendable {
    /// The grpc.health.v1 service name to watch; `""` is the whole server.
    public var serviceName: String

    public init(serviceName: String = "") {
      self.serviceName = serviceName
    }
  }

  public let service: String
  /// The timeout of RPCs whose call options set none (the Python helper's
  /// `create_stub(target, Stub, timeout=10.0)`).
  public let defaultTimeout: Duration?
  /// Client-side health checking; nil: endpoints are only checked for connectivity.
  public let healthChecking: HealthChecking?
  /// The streams one connection carries before another is opened to the same endpoint: the
  /// server's max concurrent streams. Default 100.
  public let maxStreamsPerConnection: Int
  /// The most connections to one endpoint. Default 8.
  public let maxConnectionsPerEndpoint: Int
  /// Timeouts, retries, breakers and outlier detection.
  public let resilience: MeshResiliencePolicy
  let discovery: any MeshDiscovery
  let factory: Factory
  let logger: Logger
  let state: MeshMutex<State>
  private let events: AsyncStream<Event>
  private let eventSink: AsyncStream<Event>.Continuation
  /// Attempts' per-try timeouts and RPCs' deadlines.
  let timers = MeshTimers()

  private enum Event: Sendable {
    case endpoints(MeshEndpointSet)
    case runPooled(GRPCClient<Factory.Subchannel>, removed: MeshSignal)
    case shutdown
  }

  /// One connection of an endpoint's pool.
  struct Pooled {
    var subchannel: Factory.Subchannel
    var client: GRPCClient<Factory.Subchannel>
    /// Streams open on it (the first connection's health Watch included).
    var streams: Int
  }

  struct Entry {
    var endpoint: MeshEndpoint
    /// The endpoint's connections; the first carries the health Watch. More are opened when
    /// every one is at ``maxStreamsPerConnection``.
    var pool: [Pooled]
    var removed: MeshSignal

    var client: GRPCClient<Factory.Subchannel> { self.pool[0].client }
    /// The health stream is up (and, with health checking, reports SERVING).
    var eligible = false
    /// The health stream is up: the endpoint is connected, healthy or not.
    var connected = false
    /// The first probe has answered or failed.
    var probed = false
    /// Why the endpoint's last connection (or health stream) failed, while it is not connected.
    var lastError: String?
  }

  struct State {
    var picker: MeshPickerState<ContinuousClock.Instant>
    /// Endpoints in discovery order.
    var order: [String] = []
    var entries: [String: Entry] = [:]
    /// RPCs waiting for the state to change (an endpoint to become pickable).
    var waiters = MeshWaitQueue<CheckedContinuation<Void, Never>>()
    var hasEndpoints = false
    var isShutDown = false
    var random = MeshFastRandom()
    /// Observers of the stats, for tests and diagnostics.
    var observers: [(predicate: @Sendable (MeshTransportStats) -> Bool, signal: MeshSignal)] = []
    var detector: MeshOutlierDetector<ContinuousClock.Instant>?
    var budget: MeshRetryBudget<ContinuousClock.Instant>?
    var connections = 0
    var stats = MeshTransportStats()
    /// Invalid endpoints already logged (so that each is logged once), by description.
    var loggedInvalid: Set<String> = []

    /// Rebuilds the picker from the eligible endpoints; returns the waiters to wake.
    mutating func refresh() -> [CheckedContinuation<Void, Never>] {
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
        let remaining = candidates.filter { !ejected.contains($0.endpoint.instanceKey) }
        if !remaining.isEmpty { candidates = remaining }
      }
      self.picker.update(
        candidates.map {
          MeshPickerEndpoint(
            id: $0.endpoint.instanceKey,
            weight: $0.endpoint.weight,
            zone: $0.endpoint.zone,
            tags: $0.endpoint.tags
          )
        }
      )
      self.notifyObservers()
      return self.waiters.removeAll()
    }

    var currentStats: MeshTransportStats {
      var stats = self.stats
      stats.endpoints = self.order.count
      stats.pickable = self.picker.endpoints.count
      stats.connections = self.connections
      stats.pending = self.waiters.count
      stats.draining = self.isShutDown
      for id in self.order {
        if let error = self.entries[id]?.lastError { stats.connectionErrors[id] = error }
      }
      if let detector = self.detector {
        stats.ejectedEndpoints = detector.ejected
        stats.halfOpen = self.order.lazy.filter { detector.state(of: $0) == .halfOpen }.count
        stats.ejectionsTotal = detector.ejectionsTotal
        stats.readmissionsTotal = detector.readmissionsTotal
      }
      stats.retriesRefusedByBudget = self.budget?.refused ?? 0
      return stats
    }

    mutating func notifyObservers() {
      guard !self.observers.isEmpty else { return }
      let stats = self.currentStats
      self.observers.removeAll { observer in
        guard observer.predicate(stats) else { return false }
        observer.signal.fire()
        return true
      }
    }

    mutating func reject(_ breaker: MeshCircuitBreaker) {
      self.stats.breakerRejections[breaker, default: 0] += 1
    }

    /// Endpoints that are not connected, with why, for an RPC's failure (at most three).
    var unreadyReasons: String {
      let reasons = self.order.lazy.compactMap { id -> String? in
        guard let entry = self.entries[id], !entry.connected else { return nil }
        return "\(entry.endpoint): \(entry.lastError ?? "not connected yet")"
      }
      let shown = Array(reasons.prefix(3))
      let more = self.order.count > 3 ? " (of \(self.order.count) endpoints)" : ""
      return shown.joined(separator: "; ") + more
    }
  }

  public init(
    service: String,
    discovery: any MeshDiscovery,
    factory: Factory,
    policy: MeshBalancingPolicy = .leastRequest,
    defaultTimeout: Duration? = nil,
    healthChecking: HealthChecking? = nil,
    maxStreamsPerConnection: Int = 100,
    maxConnectionsPerEndpoint: Int = 8,
    resilience: MeshResiliencePolicy = MeshResiliencePolicy(),
    logger: Logger = Logger(label: "mesh.balancer", factory: { _ in SwiftLogNoOpLogHandler() })
  ) throws(MeshBalancingError) {
    try policy.validate()
    guard maxStreamsPerConnection >= 1 else {
      throw MeshBalancingError("maxStreamsPerConnection must be at least 1.")
    }
    guard maxConnectionsPerEndpoint >= 1 else {
      throw MeshBalancingError("maxConnectionsPerEndpoint must be at least 1.")
    }
    do {
      try resilience.validate()
    } catch {
      throw MeshBalancingError("resilience.\(error)")
    }
    self.resilience = resilience
    self.maxStreamsPerConnection = maxStreamsPerConnection
    self.maxConnectionsPerEndpoint = maxConnectionsPerEndpoint
    if let defaultTimeout, defaultTimeout <= .zero {
      throw MeshBalancingError("defaultTimeout must be positive, not \(defaultTimeout).")
    }
    self.service = service
    self.defaultTimeout = defaultTimeout
    self.healthChecking = healthChecking
    self.discovery = discovery
    self.factory = factory
    self.logger = logger
    var state = State(picker: MeshPickerState(policy: policy))
    state.detector = resilience.outlierDetection.map { MeshOutlierDetector(policy: $0) }
    state.budget = resilience.retryBudget.map { MeshRetryBudget(policy: $0) }
    self.state = MeshMutex(state)
    (self.events, self.eventSink) = AsyncStream.makeStream(of: Event.self)
  }

  public var retryThrottle: RetryThrottle? { nil }

  /// Nil: the transport applies each method's timeout and runs its retries or hedging itself
  /// (grpc-swift's executors would otherwise add a deadline task and retry loop of their own,
  /// which cannot pick endpoints and let waits outlive the deadline). A call's own options still
  /// set its timeout; a grpc-swift execution policy in them is honoured, one attempt per call.
  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    nil
  }

  /// The current gauges and counters.
  public var stats: MeshTransportStats {
    self.state.withLock { $0.currentStats }
  }

  /// Returns once `predicate` holds for the stats (checked at each change).
  package func waitForStats(_ predicate: @escaping @Sendable (MeshTransportStats) -> Bool) async {
    let signal = MeshSignal()
    self.state.withLock { state in
      if predicate(state.currentStats) {
        signal.fire()
      } else {
        state.observers.append((predicate, signal))
      }
    }
    await signal.wait()
  }

  public func beginGracefulShutdown() {
    self.eventSink.yield(.shutdown)
  }

  /// Runs a connection added to an endpoint's pool until the endpoint is removed.
  func eventSinkYieldPooled(_ client: GRPCClient<Factory.Subchannel>, removed: MeshSignal) {
    self.eventSink.yield(.runPooled(client, removed: removed))
  }

  /// The endpoints currently picked from.
  public var endpoints: [MeshEndpoint] {
    self.state.withLock { state in
      state.picker.endpoints.compactMap { state.entries[$0.id]?.endpoint }
    }
  }

  /// Returns once exactly `count` endpoints can be picked.
  package func waitForPickableEndpoints(_ count: Int) async {
    await self.waitForStats { $0.pickable == count }
  }

  public func connect() async throws {
    // The attempts' timers run until the subchannels have drained, after shutdown.
    await withTaskGroup(of: Void.self) { timers in
      timers.addTask { await self.timers.run() }
      await self.runSubchannels()
      timers.cancelAll()
    }
  }

  private func runSubchannels() async {
    // Shutdown stops the discovery watch only: the endpoints' connections drain (their RPCs in
    // flight finish) and end on their own, and this returns once they have.
    let stopDiscovery = MeshSignal()
    await withDiscardingTaskGroup { group in
      group.addTask { await stopDiscovery.cancelling { await self.watchDiscovery() } }

      for await event in self.events {
        switch event {
        case .endpoints(let set):
          for entry in self.apply(set) {
            group.addTask { await self.run(entry) }
          }
        case .runPooled(let client, let removed):
          group.addTask {
            await withTaskGroup(of: Void.self) { connection in
              connection.addTask { try? await client.runConnections() }
              await removed.wait()
              client.beginGracefulShutdown()
            }
          }
        case .shutdown:
          let (entries, waiters) = self.state.withLock { state in
            state.isShutDown = true
            defer { state.notifyObservers() }
            return (Array(state.entries.values), state.refresh())
          }
          for waiter in waiters { waiter.resume() }
          for entry in entries {
            entry.removed.fire()
          }
          self.eventSink.finish()
          stopDiscovery.fire()
        }
      }
    }
  }

  /// Follows discovery until cancelled. When its watch ends or throws, the last set stays in
  /// use and the watch starts again after a backoff (1 s, doubling to 30 s; reset once a watch
  /// has lasted 30 s), so a registry that failed for good or a list that ended is asked again.
  private func watchDiscovery() async {
    let maxBackoff = Duration.seconds(30)
    var backoff = Duration.seconds(1)
    while !Task.isCancelled {
      let started = ContinuousClock.now
      do {
        for try await set in self.discovery.watch(self.service) {
          self.eventSink.yield(.endpoints(set))
          self.setDiscoveryError(nil)
        }
      } catch {
        guard !Task.isCancelled else { return }
        self.setDiscoveryError(error)
      }
      if started.duration(to: .now) >= maxBackoff { backoff = .seconds(1) }
      guard (try? await Task.sleep(for: backoff)) != nil else { return }
      backoff = min(backoff * 2, maxBackoff)
    }
  }

  private func setDiscoveryError(_ error: (any Error)?) {
    let text = error.map { "\($0)" }
    let changed = self.state.withLock { state -> Bool in
      guard state.stats.discoveryError != text else { return false }
      state.stats.discoveryError = text
      state.notifyObservers()
      return true
    }
    if changed, let text {
      self.logger.error(
        "Discovery failed; keeping the last endpoints and watching again",
        metadata: ["mesh.service": "\(self.service)", "mesh.error": "\(text)"]
      )
    }
  }

  /// Applies a new endpoint set; returns the new entries to run.
  private func apply(_ set: MeshEndpointSet) -> [Entry] {
    var added: [Entry] = []
    var removed: [Entry] = []
    var invalid: [(MeshEndpoint, MeshInputError)] = []
    var waiters: [CheckedContinuation<Void, Never>] = []
    var detectorChanges: [MeshOutlierDetector<ContinuousClock.Instant>.Change] = []
    self.state.withLock { state in
      guard !state.isShutDown else { return }
      var incoming: [String: MeshEndpoint] = [:]
      var order: [String] = []
      order.reserveCapacity(set.endpoints.count)
      var invalidCount = 0
      for endpoint in set.endpoints {
        if let error = endpoint.validationError {
          invalidCount += 1
          let key = endpoint.description
          if !state.loggedInvalid.contains(key) {
            if state.loggedInvalid.count >= 1024 { state.loggedInvalid.removeAll() }
            state.loggedInvalid.insert(key)
            invalid.append((endpoint, error))
          }
          continue
        }
        let key = endpoint.instanceKey
        guard incoming[key] == nil else { continue }
        incoming[key] = endpoint
        order.append(key)
      }
      state.stats.invalidEndpoints = invalidCount
      for (id, entry) in state.entries {
        let kept = incoming[id].map {
          $0.host == entry.endpoint.host && $0.port == entry.endpoint.port
        }
        if kept != true {
          removed.append(entry)
          state.entries[id] = nil
          state.connections -= entry.pool.count
        }
      }
      state.order = []
      state.order.reserveCapacity(order.count)
      for id in order {
        let endpoint = incoming[id]!
        if state.entries[id] != nil {
          state.entries[id]?.endpoint = endpoint  // tags, weights, zone may change
        } else {
          do {
            let subchannel = try self.factory.makeSubchannel(for: endpoint)
            let entry = Entry(
              endpoint: endpoint,
              // The health Watch holds one of the first connection's streams.
              pool: [
                Pooled(
                  subchannel: subchannel,
                  client: GRPCClient(transport: subchannel),
                  streams: 1
                )
              ],
              removed: MeshSignal()
            )
            state.entries[id] = entry
            state.connections += 1
            added.append(entry)
          } catch {
            state.stats.invalidEndpoints += 1
            invalid.append(
              (endpoint, MeshInputError(code: .invalid, field: "", message: "\(error)"))
            )
            continue
          }
        }
        state.order.append(id)
      }
      state.hasEndpoints = true
      detectorChanges = state.detector?.setEndpoints(state.order) ?? []
      waiters = state.refresh()
    }
    self.log(detectorChanges)
    for (endpoint, error) in invalid {
      self.logger.error(
        "Skipping an invalid endpoint from discovery",
        metadata: [
          "mesh.service": "\(self.service)", "mesh.endpoint": "\(endpoint)",
          "mesh.error": "\(error)",
        ]
      )
    }
    for waiter in waiters { waiter.resume() }
    // Removed endpoints are no longer picked; they finish their RPCs in flight, then close.
    for entry in removed {
      entry.removed.fire()
    }
    return added
  }

  /// Runs one endpoint's connection and health stream until it is removed.
  private func run(_ entry: Entry) async {
    await withTaskGroup(of: Void.self) { group in
      group.addTask { try? await entry.client.runConnections() }
      group.addTask {
        // The health stream stops at removal; then the connection drains and closes.
        await entry.removed.cancelling { await self.watchHealth(of: entry) }
        entry.client.beginGracefulShutdown()
      }
    }
  }

  /// Keeps a grpc.health.v1 Watch open on the endpoint, marking it eligible while it is up.
  private func watchHealth(of entry: Entry) async {
    let health = Grpc_Health_V1_Health.Client(wrapping: entry.client)
    let serviceName = self.healthChecking?.serviceName ?? ""
    var backoff = Duration.milliseconds(100)
    while !Task.isCancelled {
      do {
        let answered = try await health.watch(.with { $0.service = serviceName }) { response in
          var answered = false
          do {
            for try await message in response.messages {
              answered = true
              self.setHealth(
                entry,
                connected: true,
                eligible: self.healthChecking == nil || message.status == .serving,
                error: nil
              )
            }
          } catch  where answered {
            // The stream broke after it was up: reconnect promptly.
          }
          return answered
        }
        self.setHealth(entry, connected: false, eligible: false, error: "The health stream ended.")
        if answered { backoff = .milliseconds(100) }
      } catch let error as RPCError where error.code == .unimplemented {
        // No health service: the server answered, so it is reachable. Nothing more to watch.
        self.setHealth(entry, connected: true, eligible: true, error: nil)
        await entry.removed.wait()
        return
      } catch {
        guard !Task.isCancelled else { return }
        self.setHealth(
          entry,
          connected: false,
          eligible: false,
          error: self.describeConnectionFailure(error, endpoint: entry.endpoint)
        )
      }
      // Reconnect with backoff (the connection itself also backs off).
      guard (try? await ContinuousClock().sleep(for: backoff)) != nil else { return }
      backoff = min(backoff * 2, .seconds(5))
    }
  }

  /// What went wrong connecting to `endpoint`: the factory's account (a TLS verification
  /// failure, with the identities) where it has one, else the error and its causes.
  func describeConnectionFailure(_ error: any Error, endpoint: MeshEndpoint) -> String {
    if let failure = self.factory.connectionFailure(for: endpoint) {
      return "\(failure)"
    }
    var parts: [String] = []
    var next: (any Error)? = error
    while let current = next, parts.count < 4 {
      if let rpc = current as? RPCError {
        parts.append(rpc.message)
        next = rpc.cause
      } else {
        parts.append("\(current)")
        next = nil
      }
    }
    return parts.joined(separator: ": ")
  }

  private func setHealth(_ entry: Entry, connected: Bool, eligible: Bool, error: String?) {
    let (waiters, logged) = self.state.withLock {
      state -> ([CheckedContinuation<Void, Never>], (old: String?, new: String?)?) in
      // Only the entry still registered under this ID (not a replaced one).
      let key = entry.endpoint.instanceKey
      guard let current = state.entries[key],
        current.removed === entry.removed
      else {
        return ([], nil)
      }
      guard
        current.eligible != eligible || current.connected != connected
          || current.lastError != error || !current.probed
      else { return ([], nil) }
      let logged = current.lastError != error ? (current.lastError, error) : nil
      state.entries[key]?.eligible = eligible
      state.entries[key]?.connected = connected
      state.entries[key]?.lastError = error
      state.entries[key]?.probed = true
      return (state.refresh(), logged)
    }
    for waiter in waiters { waiter.resume() }
    if let logged {
      if let error = logged.new {
        self.logger.warning(
          "Cannot use an endpoint",
          metadata: [
            "mesh.service": "\(self.service)", "mesh.endpoint": "\(entry.endpoint)",
            "mesh.error": "\(error)",
          ]
        )
      } else if logged.old != nil {
        self.logger.info(
          "An endpoint is usable again",
          metadata: ["mesh.service": "\(self.service)", "mesh.endpoint": "\(entry.endpoint)"]
        )
      }
    }
  }

  /// The connections open to an endpoint (its pool's size), or nil if it is unknown.
  package func connectionCount(forEndpoint id: String) -> Int? {
    self.state.withLock { $0.entries[id]?.pool.count }
  }
}
