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

public import CoreMetrics
public import GRPCCore
public import Logging
internal import MeshCore
public import MeshDiscovery
internal import MeshProto
internal import SwiftProtobuf
public import Tracing

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
///
/// Its state is a balancer state machine value under a lock whose methods return what to do
/// next; the transport carries those actions out (makes connections, wakes waiting RPCs, logs)
/// outside the lock. Every timer, backoff and deadline runs on its `Clock`, so tests drive the
/// policies with a manual clock.
public final class MeshBalancingTransport<
  Factory: MeshSubchannelFactory,
  Clock: _Concurrency.Clock
>: ClientTransport where Clock.Duration == Duration {
  public typealias Bytes = Factory.Subchannel.Bytes

  /// One connection to an endpoint: grpc-swift's transport and the client that runs it.
  struct Connection: Sendable {
    let subchannel: Factory.Subchannel
    let client: GRPCClient<Factory.Subchannel>
  }

  typealias StateMachine = MeshBalancerStateMachine<
    Connection, CheckedContinuation<Void, Never>, Clock.Instant
  >
  typealias Picked = StateMachine.Picked

  struct State {
    var machine: StateMachine
    /// Picks and backoff jitter.
    var random = MeshFastRandom()
  }

  /// The target service's name in discovery.
  public let service: String
  /// How it picks, checks, pools and calls endpoints.
  public let configuration: MeshBalancingConfiguration
  /// The clock of its timers, backoffs, deadlines and ejections.
  public let clock: Clock
  let discovery: any MeshDiscovery
  package let factory: Factory
  let logger: Logger
  let state: MeshMutex<State>
  private let events: AsyncStream<Event>
  private let eventSink: AsyncStream<Event>.Continuation
  /// Attempts' per-try timeouts and RPCs' deadlines.
  let timers: MeshTimers<Clock>
  /// gRPC's client instruments; nil when no metrics backend is bootstrapped or given.
  let metrics: MeshClientMetrics?
  /// The tracer of the calls' spans (gRFC A72's `Sent` and `Attempt`); nil when none records.
  let tracer: (any Tracer)?

  private enum Event: Sendable {
    case endpoints(MeshEndpointSet)
    case runPooled(GRPCClient<Factory.Subchannel>, removed: MeshSignal)
    case shutdown
  }

  /// A transport to the endpoints `discovery` lists for `service`, each reached through a
  /// subchannel `factory` makes.
  ///
  /// - Parameters:
  ///   - metrics: Where gRPC's client instruments go (gRFC A66, A91, A96: ``MeshMetricNames``),
  ///     labelled `grpc.target` `mesh:///<service>`; nil: swift-metrics' bootstrapped (or
  ///     task-local) factory, and none at all while that records nothing.
  ///   - tracer: The tracer of each call's spans (``MeshCallTrace``: `Sent.<service>.<method>`,
  ///     `Attempt.<service>.<method>`, the trace context sent to each endpoint); nil:
  ///     swift-distributed-tracing's bootstrapped one, and none at all while that is a no-op.
  /// - Throws: ``MeshBalancingError`` naming the first invalid setting.
  public init(
    service: String,
    discovery: any MeshDiscovery,
    factory: Factory,
    configuration: MeshBalancingConfiguration = .defaults,
    clock: Clock,
    metrics: (any MetricsFactory)? = nil,
    tracer: (any Tracer)? = nil,
    logger: Logger = Logger(label: "mesh.balancer", factory: { _ in SwiftLogNoOpLogHandler() })
  ) throws(MeshBalancingError) {
    try configuration.validate()
    self.service = service
    self.configuration = configuration
    self.clock = clock
    self.discovery = discovery
    self.factory = factory
    self.logger = logger
    self.timers = MeshTimers(clock: clock)
    let metricsFactory = metrics ?? MetricsSystem.factory
    self.metrics =
      metricsFactory is NOOPMetricsHandler
      ? nil : MeshClientMetrics(target: "mesh:///\(service)", factory: metricsFactory)
    let tracer = tracer ?? InstrumentationSystem.tracer
    self.tracer = tracer is NoOpTracer ? nil : tracer
    let resilience = configuration.resilience
    let machine = StateMachine(
      configuration: StateMachine.Configuration(
        service: service,
        maxStreamsPerConnection: configuration.maxStreamsPerConnection,
        maxConnectionsPerEndpoint: configuration.maxConnectionsPerEndpoint,
        breakers: resilience.circuitBreakers
      ),
      policy: configuration.policy,
      outlierDetection: resilience.outlierDetection,
      retryBudget: resilience.retryBudget
    )
    self.state = MeshMutex(State(machine: machine))
    (self.events, self.eventSink) = AsyncStream.makeStream(of: Event.self)
  }

  /// The timeout of RPCs whose call options set none.
  public var defaultTimeout: Duration? { self.configuration.defaultTimeout }
  /// Timeouts, retries, breakers and outlier detection.
  public var resilience: MeshResiliencePolicy { self.configuration.resilience }

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
    self.state.withLock { $0.machine.stats }
  }

  /// Returns once `predicate` holds for the stats (checked at each change).
  package func waitForStats(_ predicate: @escaping @Sendable (MeshTransportStats) -> Bool) async {
    let signal = MeshSignal()
    let stored = self.state.withLock { $0.machine.observe(predicate, signal: signal) }
    if !stored { signal.fire() }
    await signal.wait()
  }

  public func beginGracefulShutdown() {
    self.eventSink.yield(.shutdown)
  }

  /// The endpoints currently picked from.
  public var endpoints: [MeshEndpoint] {
    self.state.withLock { $0.machine.pickableEndpoints }
  }

  /// Every endpoint's status now, in discovery order: state, load, ejection, last error.
  public var endpointStatuses: [MeshEndpointStatus] {
    let now = self.clock.now
    return self.state.withLock { $0.machine.endpointStatuses(now: now) }
  }

  /// Returns once exactly `count` endpoints can be picked.
  package func waitForPickableEndpoints(_ count: Int) async {
    await self.waitForStats { $0.pickable == count }
  }

  /// The connections open to an endpoint (its pool's size), or nil if it is unknown.
  package func connectionCount(forEndpoint id: String) -> Int? {
    self.state.withLock { $0.machine.entries[id]?.pool.count }
  }

  public func connect() async throws {
    // The attempts' timers run until the subchannels have drained, after shutdown.
    await withTaskGroup(of: Void.self) { timers in
      timers.addTask { await self.timers.run() }
      await self.runSubchannels()
      timers.cancelAll()
    }
  }

  /// Carries out what the state machine asked for, outside the lock.
  func perform(_ effects: StateMachine.Effects) {
    guard !effects.isEmpty else { return }
    for waiter in effects.resume { waiter.resume() }
    for signal in effects.fire { signal.fire() }
    self.log(effects.changes)
  }

  /// A new connection to `endpoint`.
  func makeConnection(to endpoint: MeshEndpoint) throws -> Connection {
    let subchannel = try self.factory.makeSubchannel(for: endpoint)
    return Connection(subchannel: subchannel, client: GRPCClient(transport: subchannel))
  }

  /// Runs a connection added to an endpoint's pool until the endpoint is removed.
  func runPooled(_ connection: Connection, removed: MeshSignal) {
    self.eventSink.yield(.runPooled(connection.client, removed: removed))
  }

  private func runSubchannels() async {
    // Shutdown stops the discovery watch only: the endpoints' connections drain (their RPCs in
    // flight finish) and end on their own, and this returns once they have.
    let stopDiscovery = MeshSignal()
    await withDiscardingTaskGroup { group in
      group.addTask { await stopDiscovery.cancelling { await self.watchDiscovery() } }
      if let metrics = self.metrics {
        group.addTask { await stopDiscovery.cancelling { await self.sample(into: metrics) } }
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
        case .shutdown:
          self.perform(self.state.withLock { $0.machine.shutDown() })
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
      let started = self.clock.now
      do {
        for try await set in self.discovery.watch(self.service) {
          self.eventSink.yield(.endpoints(set))
          self.setDiscoveryError(nil)
          self.metrics?.discoveryUpdated()
        }
      } catch {
        guard !Task.isCancelled else { return }
        self.setDiscoveryError(error)
        self.metrics?.discoveryFailed()
      }
      if started.duration(to: self.clock.now) >= maxBackoff { backoff = .seconds(1) }
      guard (try? await self.clock.sleep(for: backoff)) != nil else { return }
      backoff = min(backoff * 2, maxBackoff)
    }
  }

  /// Records the transport's gauges (endpoints by state, pending calls, connections) and the
  /// growth of its breaker and budget counts every ``metricsInterval``, until cancelled.
  private func sample(into metrics: MeshClientMetrics) async {
    await meshRepeat(every: Self.metricsInterval, on: self.clock) { metrics.record(self.stats) }
  }

  /// How often the gauges are sampled.
  static var metricsInterval: Duration { .seconds(1) }

  /// Records the gauges and counts now (a scrape's handler calls it to be current).
  package func recordMetrics() {
    self.metrics?.record(self.stats)
  }

  private func setDiscoveryError(_ error: (any Error)?) {
    let (changed, effects) = self.state.withLock { $0.machine.setDiscoveryError(error) }
    self.perform(effects)
    if changed, let error {
      self.logger.error(
        "Discovery failed; keeping the last endpoints and watching again",
        metadata: ["mesh.service": "\(self.service)", "mesh.error": "\(error)"]
      )
    }
  }

  /// Applies a new endpoint set; returns the new entries to run. Connections for new endpoints
  /// are made between the two steps, outside the lock.
  private func apply(_ set: MeshEndpointSet) -> [StateMachine.Entry] {
    guard let incoming = self.state.withLock({ $0.machine.prepare(set) }) else { return [] }
    var made: [String: Connection] = [:]
    var invalid = incoming.newlyInvalid
    for key in incoming.toConnect {
      guard let endpoint = incoming.endpoints[key] else { continue }
      do {
        made[key] = try self.makeConnection(to: endpoint)
      } catch {
        invalid.append(
          (endpoint, MeshInputError(code: .invalid, field: "", message: "\(error)", cause: error))
        )
      }
    }
    let (added, effects) = self.state.withLock { $0.machine.apply(incoming, connections: made) }
    self.perform(effects)
    for (endpoint, error) in invalid {
      self.logger.error(
        "Skipping an invalid endpoint from discovery",
        metadata: [
          "mesh.service": "\(self.service)", "mesh.endpoint": "\(endpoint)",
          "mesh.error": "\(error)",
        ]
      )
    }
    return added
  }

  /// Runs one endpoint's connection and health stream until it is removed.
  private func run(_ entry: StateMachine.Entry) async {
    let client = entry.first.client
    await withTaskGroup(of: Void.self) { group in
      group.addTask { try? await client.runConnections() }
      group.addTask {
        // The health stream stops at removal; then the connection drains and closes.
        await entry.removed.cancelling { await self.watchHealth(of: entry) }
        client.beginGracefulShutdown()
      }
    }
  }

  func log(_ changes: [MeshOutlierDetector<Clock.Instant>.Change]) {
    for change in changes {
      switch change {
      case .ejected(let id, let until, let reason):
        self.metrics?.ejected(by: reason)
        self.logger.warning(
          "Ejected an endpoint",
          metadata: [
            "mesh.service": "\(self.service)", "mesh.endpoint": "\(id)",
            "mesh.reason": "\(reason.rawValue)",
            "mesh.ejection_ms":
              "\(MeshInput.milliseconds(clamping: self.clock.now.duration(to: until)))",
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
}

extension MeshBalancingTransport where Clock == ContinuousClock {
  /// A transport to the endpoints `discovery` lists for `service`, on the continuous clock.
  ///
  /// - Throws: ``MeshBalancingError`` naming the first invalid setting.
  public convenience init(
    service: String,
    discovery: any MeshDiscovery,
    factory: Factory,
    configuration: MeshBalancingConfiguration = .defaults,
    metrics: (any MetricsFactory)? = nil,
    tracer: (any Tracer)? = nil,
    logger: Logger = Logger(label: "mesh.balancer", factory: { _ in SwiftLogNoOpLogHandler() })
  ) throws(MeshBalancingError) {
    try self.init(
      service: service,
      discovery: discovery,
      factory: factory,
      configuration: configuration,
      clock: ContinuousClock(),
      metrics: metrics,
      tracer: tracer,
      logger: logger
    )
  }
}
