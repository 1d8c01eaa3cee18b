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
public import MeshDiscovery
internal import MeshProto
internal import SwiftProtobuf
private import Synchronization

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
///   without the health service (`UNIMPLEMENTED`) counts as healthy once it answered. If no
///   endpoint is eligible once every one was probed, all are tried rather than none.
/// - **Endpoint changes.** A removed endpoint stops being picked at once, and its subchannel
///   shuts down gracefully, finishing the RPCs in flight on it. No RPC fails because an
///   endpoint left discovery.
/// - **Resilience.** Its ``MeshResiliencePolicy`` gives each method a timeout and retries or
///   hedging (run by grpc-swift's executors, configured through ``config(forMethod:)``). The
///   transport sends each retry to another endpoint, holds retries to the retry budget, bounds
///   each attempt by its per-try timeout, applies the circuit breakers, and ejects failing
///   endpoints (outlier detection). Inside a server handler (see
///   ``MeshDeadlinePropagationInterceptor``), an attempt is bounded by the incoming RPC's deadline
///   less the propagation margin, and is cancelled with it.
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
  /// server's max concurrent streams. Default 100, as the seed's Envoy.
  public let maxStreamsPerConnection: Int
  /// The most connections to one endpoint. Default 8.
  public let maxConnectionsPerEndpoint: Int
  /// Timeouts, retries, breakers and outlier detection.
  public let resilience: MeshResiliencePolicy
  private let discovery: any MeshDiscovery
  private let factory: Factory
  private let logger: Logger
  private let state: Mutex<State>
  private let events: AsyncStream<Event>
  private let eventSink: AsyncStream<Event>.Continuation
  /// Attempts' per-try timeouts and deadlines.
  private let timers = MeshTimers()
  /// ``config(forMethod:)``'s answer for methods with no section of their own.
  private let defaultMethodConfig: MethodConfig?

  private enum Event: Sendable {
    case endpoints(MeshEndpointSet)
    case discoveryEnded((any Error)?)
    case runPooled(GRPCClient<Factory.Subchannel>, removed: MeshSignal)
    case shutdown
  }

  /// One connection of an endpoint's pool.
  private struct Pooled {
    var subchannel: Factory.Subchannel
    var client: GRPCClient<Factory.Subchannel>
    /// Streams open on it (the first connection's health Watch included).
    var streams: Int
  }

  private struct Entry {
    var endpoint: MeshEndpoint
    /// The endpoint's connections; the first carries the health Watch. More are opened when
    /// every one is at ``maxStreamsPerConnection``.
    var pool: [Pooled]
    var removed: MeshSignal

    var client: GRPCClient<Factory.Subchannel> { self.pool[0].client }
    /// The health stream is up (and, with health checking, reports SERVING).
    var eligible = false
    /// The first probe has answered or failed.
    var probed = false
  }

  private struct State {
    var picker: MeshPickerState<ContinuousClock.Instant>
    /// Endpoints in discovery order.
    var order: [String] = []
    var entries: [String: Entry] = [:]
    /// RPCs waiting for a pickable endpoint, by waiter ID.
    var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    var cancelledWaiters: Set<UInt64> = []
    var nextWaiterID: UInt64 = 0
    var hasEndpoints = false
    var isShutDown = false
    var random = MeshFastRandom()
    /// Observers of the stats, for tests and diagnostics.
    var observers: [(predicate: @Sendable (MeshTransportStats) -> Bool, signal: MeshSignal)] = []
    var detector: MeshOutlierDetector<ContinuousClock.Instant>?
    var budget: MeshRetryBudget<ContinuousClock.Instant>?
    /// Failed attempts that grpc-swift's retry executor will retry, by the calling task.
    var retryRecords: [Int: RetryRecord] = [:]
    var connections = 0
    var stats = MeshTransportStats()

    /// Whether an RPC can be decided now: picked, or failed for want of endpoints.
    var isDecidable: Bool {
      self.isShutDown
        || (self.hasEndpoints && (self.order.isEmpty || !self.picker.endpoints.isEmpty))
    }

    /// Rebuilds the picker from the eligible endpoints; wakes waiters when decidable.
    mutating func refresh() {
      let known = self.order.compactMap { self.entries[$0] }
      var candidates = known.filter(\.eligible)
      if candidates.isEmpty && !known.isEmpty && known.allSatisfy(\.probed) {
        candidates = known  // none is healthy: try them all rather than fail them all
      }
      if let ejected = self.detector?.ejected, !ejected.isEmpty {
        // Ejection never takes the last candidates: with all of them ejected, all are used.
        let remaining = candidates.filter { !ejected.contains($0.endpoint.id) }
        if !remaining.isEmpty { candidates = remaining }
      }
      self.picker.update(
        candidates.map {
          MeshPickerEndpoint(
            id: $0.endpoint.id,
            weight: $0.endpoint.weight,
            zone: $0.endpoint.zone,
            tags: $0.endpoint.tags
          )
        }
      )
      if self.isDecidable {
        for waiter in self.waiters.values { waiter.resume() }
        self.waiters.removeAll()
      }
      self.notifyObservers()
    }

    var currentStats: MeshTransportStats {
      var stats = self.stats
      stats.endpoints = self.order.count
      stats.pickable = self.picker.endpoints.count
      stats.connections = self.connections
      stats.pending = self.waiters.count
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
  }

  /// A failed attempt that will be retried: the next attempt of the same task is its retry.
  struct RetryRecord {
    var rpcStart: ContinuousClock.Instant
    var attempts: Int
    /// The endpoints its attempts failed on: the retry goes elsewhere while it can.
    var failedEndpoints: Set<String>
    var failure: Status
    /// Past this, the record is stale (the executor did not retry after all).
    var expires: ContinuousClock.Instant
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
    self.state = Mutex(state)
    (self.events, self.eventSink) = AsyncStream.makeStream(of: Event.self)
    self.defaultMethodConfig = Self.methodConfig(
      resilience.defaults,
      defaultTimeout: defaultTimeout
    )
  }

  public var retryThrottle: RetryThrottle? { nil }

  /// The method's timeout (its policy's, else the target's default) and its retry or hedging
  /// policy. A call's own options win where they set a value; the transport still ends an
  /// attempt at the method's timeout when the caller's is longer.
  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    if self.resilience.methods.isEmpty { return self.defaultMethodConfig }
    return Self.methodConfig(
      self.resilience.policy(for: descriptor),
      defaultTimeout: self.defaultTimeout
    )
  }

  private static func methodConfig(
    _ policy: MeshMethodPolicy,
    defaultTimeout: Duration?
  ) -> MethodConfig? {
    var config = MethodConfig(names: [], timeout: policy.timeout ?? defaultTimeout)
    if let retry = policy.retry {
      config.executionPolicy = .retry(retry.grpcPolicy)
    } else if let hedging = policy.hedging {
      config.executionPolicy = .hedge(
        HedgingPolicy(
          maxAttempts: hedging.maxAttempts,
          hedgingDelay: hedging.hedgingDelay,
          nonFatalStatusCodes: hedging.nonFatalStatusCodes
        )
      )
    }
    if config.timeout == nil && config.executionPolicy == nil { return nil }
    return config
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
    await withDiscardingTaskGroup { group in
      group.addTask {
        do {
          for try await set in self.discovery.watch(self.service) {
            self.eventSink.yield(.endpoints(set))
          }
          self.eventSink.yield(.discoveryEnded(nil))
        } catch {
          self.eventSink.yield(.discoveryEnded(error))
        }
      }

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
        case .discoveryEnded(let error):
          if let error {
            self.logger.warning(
              "Discovery ended with an error; keeping the last endpoints",
              metadata: ["mesh.service": "\(self.service)", "mesh.error": "\(error)"]
            )
          }
        case .shutdown:
          let entries = self.state.withLock { state in
            state.isShutDown = true
            state.refresh()
            return Array(state.entries.values)
          }
          for entry in entries {
            entry.removed.fire()
          }
          self.eventSink.finish()
          group.cancelAll()  // the discovery watch; subchannels drain on their own
        }
      }
    }
  }

  /// Applies a new endpoint set; returns the new entries to run.
  private func apply(_ set: MeshEndpointSet) -> [Entry] {
    var added: [Entry] = []
    var removed: [Entry] = []
    self.state.withLock { state in
      guard !state.isShutDown else { return }
      let incoming = Dictionary(
        set.endpoints.map { ($0.id, $0) },
        uniquingKeysWith: { first, _ in first }
      )
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
      for endpoint in set.endpoints where !state.order.contains(endpoint.id) {
        if state.entries[endpoint.id] != nil {
          state.entries[endpoint.id]?.endpoint = endpoint  // tags, weights, zone may change
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
            state.entries[endpoint.id] = entry
            state.connections += 1
            added.append(entry)
          } catch {
            self.logger.warning(
              "Could not make a subchannel; skipping the endpoint",
              metadata: ["mesh.endpoint": "\(endpoint)", "mesh.error": "\(error)"]
            )
            continue
          }
        }
        state.order.append(endpoint.id)
      }
      state.hasEndpoints = true
      state.detector?.setEndpoints(state.order)
      state.refresh()
    }
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
        await withTaskGroup(of: Void.self) { watch in
          watch.addTask { await self.watchHealth(of: entry) }
          watch.addTask { await entry.removed.wait() }
          await watch.next()
          watch.cancelAll()
        }
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
              self.setEligible(entry, self.healthChecking == nil || message.status == .serving)
            }
          } catch  where answered {
            // The stream broke after it was up: reconnect promptly.
          }
          return answered
        }
        self.setEligible(entry, false)
        if answered { backoff = .milliseconds(100) }
      } catch let error as RPCError where error.code == .unimplemented {
        // No health service: the server answered, so it is reachable. Nothing more to watch.
        self.setEligible(entry, true)
        await entry.removed.wait()
        return
      } catch {
        self.setEligible(entry, false)
      }
      // Reconnect with backoff (the connection itself also backs off).
      guard (try? await ContinuousClock().sleep(for: backoff)) != nil else { return }
      backoff = min(backoff * 2, .seconds(5))
    }
  }

  private func setEligible(_ entry: Entry, _ eligible: Bool) {
    self.state.withLock { state in
      // Only the entry still registered under this ID (not a replaced one).
      guard let current = state.entries[entry.endpoint.id], current.removed === entry.removed else {
        return
      }
      guard current.eligible != eligible || !current.probed else { return }
      state.entries[entry.endpoint.id]?.eligible = eligible
      state.entries[entry.endpoint.id]?.probed = true
      state.refresh()
    }
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    let start = ContinuousClock.now
    // Deadline propagation: an attempt never outlives the RPC being served, and an expired
    // deadline is never sent on.
    var bound: ContinuousClock.Instant?
    if let propagated = MeshPropagatedDeadline.current {
      let limit = propagated.advanced(by: .zero - self.resilience.propagationMargin)
      guard limit > start else {
        throw RPCError(
          code: .deadlineExceeded,
          message: """
            The deadline of the RPC being served has passed (less the \
            \(self.resilience.propagationMargin) margin); '\(self.service)' was not called.
            """
        )
      }
      bound = limit
    }
    let retryPolicy = options.executionPolicy?.retry
    let taskKey = retryPolicy == nil ? nil : withUnsafeCurrentTask { $0?.hashValue }
    let record = try self.admit(taskKey: taskKey, now: start)
    let observer = MeshAttemptObserver<Bytes>()
    // The endpoint the attempt ended on, and how it failed: for the retry that may follow.
    var last: (id: String, failure: Status?)?
    defer {
      self.complete(
        record: record,
        taskKey: taskKey,
        retryPolicy: retryPolicy,
        observer: observer,
        last: last
      )
    }
    let method = self.resilience.policy(for: descriptor)
    if let timeout = method.timeout, options.timeout.map({ $0 > timeout }) ?? false {
      // The caller asked for longer than the method's timeout: the shorter wins.
      let limit = (record?.rpcStart ?? start).advanced(by: timeout)
      bound = bound.map { min($0, limit) } ?? limit
    }
    // Waiting for an endpoint ends at the RPC's deadline: grpc-swift's executors act on their
    // deadline only once the stream is open.
    var waitLimit = bound
    if let timeout = options.timeout {
      let rpcDeadline = (record?.rpcStart ?? start).advanced(by: timeout)
      waitLimit = waitLimit.map { min($0, rpcDeadline) } ?? rpcDeadline
    }
    try await self.waitUntilDecidable(deadline: waitLimit)
    let attempt = Attempt(
      previousAttempts: record?.attempts ?? 0,
      bound: bound,
      perTryTimeout: retryPolicy == nil ? nil : method.retry?.perTryTimeout,
      observer: observer
    )
    var avoid = record?.failedEndpoints ?? []
    var transparentRetries = 0
    while true {
      guard let picked = self.pick(avoiding: avoid, now: .now) else {
        throw RPCError(
          code: .unavailable,
          message: "No endpoint of '\(self.service)' is available."
        )
      }
      do {
        let result = try await withRPCCancellationHandler {
          try await self.run(attempt, on: picked.subchannel, descriptor, options, closure)
        } onCancelRPC: {
          Task {
            await observer.abandon(
              .cancelled,
              error: RPCError(code: .cancelled, message: "The RPC being served was cancelled.")
            )
          }
        }
        last = (picked.id, self.release(picked, observer: observer, thrown: false))
        return result
      } catch {
        let opened = observer.snapshot.outbound != nil
        last = (picked.id, self.release(picked, observer: observer, thrown: true))
        avoid.insert(picked.id)
        // The stream never opened (no connection): the RPC never left, so it goes to another
        // endpoint at once, whatever the method's policy (gRFC A6's transparent retry).
        if !opened, transparentRetries < 2, !Task.isCancelled, self.hasEndpoint(outside: avoid) {
          transparentRetries += 1
          continue
        }
        throw error
      }
    }
  }

  /// One attempt's settings.
  private struct Attempt: Sendable {
    var previousAttempts: Int
    var bound: ContinuousClock.Instant?
    var perTryTimeout: Duration?
    var observer: MeshAttemptObserver<Bytes>
  }

  private struct Picked {
    var id: String
    var connection: Int
    var generation: MeshSignal
    var subchannel: Factory.Subchannel
    var started: ContinuousClock.Instant
  }

  /// Runs the attempt on the subchannel, with timers for its per-try timeout and deadline.
  private func run<T: Sendable>(
    _ attempt: Attempt,
    on subchannel: Factory.Subchannel,
    _ descriptor: MethodDescriptor,
    _ options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    // Each timer abandons the attempt: its stream fails with the timer's error.
    func arm(
      at deadline: ContinuousClock.Instant,
      _ reason: MeshAttemptObserver<Bytes>.Abandonment,
      _ error: RPCError
    ) -> UInt64 {
      self.timers.arm(at: deadline) {
        Task { await attempt.observer.abandon(reason, error: error) }
      }
    }
    var timers: [UInt64] = []
    if let perTryTimeout = attempt.perTryTimeout {
      let perTryDeadline = ContinuousClock.now.advanced(by: perTryTimeout)
      if attempt.bound.map({ perTryDeadline < $0 }) ?? true {
        let message = "No response within the per-try timeout of \(perTryTimeout)."
        timers.append(
          arm(
            at: perTryDeadline,
            .perTryTimeout,
            RPCError(code: .unavailable, message: message)
          )
        )
      }
    }
    if let bound = attempt.bound {
      let message = "The deadline passed (the RPC being served, or the method's timeout)."
      timers.append(
        arm(at: bound, .deadline, RPCError(code: .deadlineExceeded, message: message))
      )
    }
    defer {
      for timer in timers { self.timers.disarm(timer) }
    }
    return try await subchannel.withStream(descriptor: descriptor, options: options) {
      stream,
      context in
      attempt.observer.attach(stream.outbound)
      let outbound: Outbound
      if attempt.previousAttempts > 0 || attempt.bound != nil {
        outbound = RPCWriter.Closable(
          wrapping: MeshRewritingOutbound(
            base: stream.outbound,
            previousAttempts: attempt.previousAttempts,
            deadline: attempt.bound
          )
        )
      } else {
        outbound = stream.outbound
      }
      let inbound = RPCAsyncSequence(
        wrapping: MeshObservedInbound(base: stream.inbound, observer: attempt.observer)
      )
      return try await closure(
        RPCStream(descriptor: stream.descriptor, inbound: inbound, outbound: outbound),
        context
      )
    }
  }

  /// Applies the breakers and the retry budget to a new attempt; returns the failed attempt it
  /// retries, if it is a retry.
  private func admit(taskKey: Int?, now: ContinuousClock.Instant) throws(RPCError) -> RetryRecord? {
    let breakers = self.resilience.circuitBreakers
    return try self.state.withLock { state throws(RPCError) -> RetryRecord? in
      self.tickOutlierDetection(&state, now: now)
      var record: RetryRecord?
      if let taskKey, let found = state.retryRecords.removeValue(forKey: taskKey),
        found.expires > now
      {
        record = found
      }
      if let record {
        if state.stats.retriesInFlight >= breakers.maxRetries {
          state.reject(.maxRetries)
          throw self.refusal(of: record, breaker: .maxRetries, limit: breakers.maxRetries)
        }
        if state.budget?.tryRetry(now: now) == false {
          state.reject(.retryBudget)
          throw self.refusal(of: record, breaker: .retryBudget, limit: nil)
        }
      } else {
        state.budget?.recordRequest(now: now)
      }
      if state.stats.attemptsInFlight >= breakers.maxRequests {
        state.reject(.maxRequests)
        throw RPCError(
          code: .unavailable,
          message: """
            Circuit breaker '\(MeshCircuitBreaker.maxRequests)' of '\(self.service)' is open: \
            \(breakers.maxRequests) RPCs are in flight.
            """
        )
      }
      state.stats.attemptsInFlight += 1
      state.stats.attemptsTotal += 1
      if record != nil {
        state.stats.retriesInFlight += 1
        state.stats.retriesTotal += 1
      }
      state.notifyObservers()
      return record
    }
  }

  private func refusal(
    of record: RetryRecord,
    breaker: MeshCircuitBreaker,
    limit: Int?
  ) -> RPCError {
    let detail = limit.map { ": \($0) retries are in flight" } ?? ": retries are at their cap"
    return RPCError(
      code: .unavailable,
      message: """
        \(record.failure.message) (not retried: circuit breaker '\(breaker)' of \
        '\(self.service)' is open\(detail))
        """
    )
  }

  /// Picks the endpoint of an attempt, avoiding those the RPC's earlier attempts failed on while
  /// another is available, and half-open endpoints already probed.
  private func pick(avoiding failed: Set<String>, now: ContinuousClock.Instant) -> Picked? {
    var newConnection: (GRPCClient<Factory.Subchannel>, MeshSignal)?
    let picked = self.state.withLock { state -> Picked? in
      guard !state.isShutDown else { return nil }
      var excluded = failed
      var choice = state.picker.pick(excluding: excluded, now: now, using: &state.random)
      if let id = choice, state.detector?.admits(id) == false {
        excluded.insert(id)
        choice = state.picker.pick(excluding: excluded, now: now, using: &state.random) ?? id
      }
      guard let id = choice, var entry = state.entries[id] else { return nil }
      // The least busy connection; a new one when all are full and the pool may grow.
      var chosen = entry.pool.indices.min { entry.pool[$0].streams < entry.pool[$1].streams }!
      if entry.pool[chosen].streams >= self.maxStreamsPerConnection,
        entry.pool.count < self.maxConnectionsPerEndpoint
      {
        if state.connections >= self.resilience.circuitBreakers.maxConnections {
          state.reject(.maxConnections)  // the stream queues on the open connection
        } else if let subchannel = try? self.factory.makeSubchannel(for: entry.endpoint) {
          let client = GRPCClient(transport: subchannel)
          entry.pool.append(Pooled(subchannel: subchannel, client: client, streams: 0))
          state.connections += 1
          chosen = entry.pool.count - 1
          newConnection = (client, entry.removed)
        }
      }
      entry.pool[chosen].streams += 1
      state.entries[id] = entry
      state.picker.started(id)
      state.detector?.started(id)
      return Picked(
        id: id,
        connection: chosen,
        generation: entry.removed,
        subchannel: entry.pool[chosen].subchannel,
        started: now
      )
    }
    if let (client, removed) = newConnection {
      self.eventSink.yield(.runPooled(client, removed: removed))
    }
    return picked
  }

  /// Whether some pickable endpoint is not in `excluded`.
  private func hasEndpoint(outside excluded: Set<String>) -> Bool {
    self.state.withLock { state in
      state.picker.endpoints.contains { !excluded.contains($0.id) }
    }
  }

  /// Accounts for the end of a stream on `picked`: its load, and outlier detection. Returns how
  /// the attempt ended, as grpc-swift's executor sees it (nil: not known to have failed).
  private func release(
    _ picked: Picked,
    observer: MeshAttemptObserver<Bytes>,
    thrown: Bool
  ) -> Status? {
    let seen = observer.snapshot
    let end = ContinuousClock.now
    // How the attempt ended, and whether that counts against the endpoint.
    var outcome: Status?
    var endpointFailed = false
    var perTryTimedOut = false
    switch seen.abandoned {
    case .perTryTimeout:
      perTryTimedOut = true
      endpointFailed = true
      outcome = seen.abandonment.map { Status(code: Status.Code($0.code), message: $0.message) }
    case .deadline, .cancelled:
      break  // the caller's limits, not the endpoint's fault
    case nil:
      if let status = seen.status {
        outcome = status
        endpointFailed = Self.endpointFailureCodes.contains(status.code)
      } else if let error = seen.transportError {
        outcome = Status(code: Status.Code(error.code), message: error.message)
        endpointFailed = error.code != .cancelled && error.code != .deadlineExceeded
      } else if thrown && !seen.receivedFirstPart && !Task.isCancelled {
        outcome = Status(code: .unavailable, message: "The attempt failed before a response.")
        endpointFailed = true
      }
    }
    self.state.withLock { state in
      state.picker.finished(picked.id, latency: picked.started.duration(to: end), now: end)
      if state.entries[picked.id]?.removed === picked.generation {
        state.entries[picked.id]?.pool[picked.connection].streams -= 1
      }
      if endpointFailed { state.stats.failedAttempts += 1 }
      if perTryTimedOut { state.stats.perTryTimeouts += 1 }
      if let changes = state.detector?.finished(picked.id, success: !endpointFailed, now: end),
        !changes.isEmpty
      {
        self.log(changes)
        state.refresh()
      }
    }
    return outcome.flatMap { $0.code == .ok ? nil : $0 }
  }

  /// Accounts for the end of an attempt: the breakers' counts, and the record of a failure that
  /// grpc-swift's retry executor is about to retry.
  private func complete(
    record: RetryRecord?,
    taskKey: Int?,
    retryPolicy: RetryPolicy?,
    observer: MeshAttemptObserver<Bytes>,
    last: (id: String, failure: Status?)?
  ) {
    let seen = observer.snapshot
    let end = ContinuousClock.now
    self.state.withLock { state in
      state.stats.attemptsInFlight -= 1
      if record != nil { state.stats.retriesInFlight -= 1 }
      if let taskKey, let retryPolicy, let last, let failure = last.failure,
        retryPolicy.retryableStatusCodes.contains(failure.code), !seen.committed,
        !seen.pushbackStops, (record?.attempts ?? 0) + 1 < retryPolicy.maxAttempts
      {
        state.retryRecords[taskKey] = RetryRecord(
          rpcStart: record?.rpcStart ?? end,
          attempts: (record?.attempts ?? 0) + 1,
          failedEndpoints: (record?.failedEndpoints ?? []).union([last.id]),
          failure: failure,
          expires: end.advanced(by: (seen.pushback ?? retryPolicy.maxBackoff) + .seconds(1))
        )
      }
      if state.retryRecords.count > 1024 {
        state.retryRecords = state.retryRecords.filter { $0.value.expires > end }
      }
      state.notifyObservers()
    }
  }

  /// Codes that count against an endpoint in outlier detection.
  private static var endpointFailureCodes: Set<Status.Code> {
    [.unavailable, .internalError, .unknown, .dataLoss]
  }

  private func tickOutlierDetection(_ state: inout State, now: ContinuousClock.Instant) {
    guard let changes = state.detector?.tick(now: now), !changes.isEmpty else { return }
    self.log(changes)
    state.refresh()
  }

  private func log(_ changes: [MeshOutlierDetector<ContinuousClock.Instant>.Change]) {
    for change in changes {
      switch change {
      case .ejected(let id, let until, let reason):
        self.logger.warning(
          "Ejected an endpoint",
          metadata: [
            "mesh.service": "\(self.service)", "mesh.endpoint": "\(id)",
            "mesh.reason": "\(reason.rawValue)",
            "mesh.ejection_ms": "\(ContinuousClock.now.duration(to: until) / .milliseconds(1))",
          ]
        )
      case .halfOpen(let id):
        self.logger.info(
          "Probing an ejected endpoint",
          metadata: ["mesh.service": "\(self.service)", "mesh.endpoint": "\(id)"]
        )
      case .readmitted(let id):
        self.logger.info(
          "Readmitted an endpoint",
          metadata: ["mesh.service": "\(self.service)", "mesh.endpoint": "\(id)"]
        )
      }
    }
  }

  /// The connections open to an endpoint (its pool's size), or nil if it is unknown.
  package func connectionCount(forEndpoint id: String) -> Int? {
    self.state.withLock { $0.entries[id]?.pool.count }
  }

  /// Returns once an endpoint can be picked (or none will be: no endpoints, shutdown), or when
  /// the RPC is cancelled (its deadline passed): the pick that follows then fails as it should.
  /// Fails fast when ``MeshCircuitBreakerThresholds/maxPendingRequests`` RPCs already wait.
  private func waitUntilDecidable(
    deadline: ContinuousClock.Instant?
  ) async throws(RPCError) {
    let maxPending = self.resilience.circuitBreakers.maxPendingRequests
    let id = try self.state.withLock { state throws(RPCError) -> UInt64? in
      if state.isDecidable { return nil }
      guard state.waiters.count + state.cancelledWaiters.count < maxPending else {
        state.reject(.maxPendingRequests)
        throw RPCError(
          code: .unavailable,
          message: """
            Circuit breaker '\(MeshCircuitBreaker.maxPendingRequests)' of '\(self.service)' is \
            open: \(maxPending) RPCs are waiting for an endpoint.
            """
        )
      }
      state.nextWaiterID += 1
      return state.nextWaiterID
    }
    guard let id else { return }
    guard let deadline else {
      await self.waitForDecision(id)
      return
    }
    let timedOut = await withTaskGroup(of: Bool.self) { group in
      group.addTask {
        (try? await Task.sleep(until: deadline, tolerance: .zero, clock: .continuous)) != nil
      }
      group.addTask {
        await self.waitForDecision(id)
        return false
      }
      let first = await group.next()!
      group.cancelAll()
      return first
    }
    if timedOut {
      throw RPCError(
        code: .deadlineExceeded,
        message: "No endpoint of '\(self.service)' could be picked before the RPC's deadline."
      )
    }
  }

  private func waitForDecision(_ id: UInt64) async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let ready = self.state.withLock { state in
          if state.isDecidable || state.cancelledWaiters.remove(id) != nil { return true }
          state.waiters[id] = continuation
          state.notifyObservers()
          return false
        }
        if ready { continuation.resume() }
      }
    } onCancel: {
      let continuation = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
        if let continuation = state.waiters.removeValue(forKey: id) { return continuation }
        state.cancelledWaiters.insert(id)
        return nil
      }
      continuation?.resume()
    }
  }
}
