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
  private let discovery: any MeshDiscovery
  private let factory: Factory
  private let logger: Logger
  private let state: Mutex<State>
  private let events: AsyncStream<Event>
  private let eventSink: AsyncStream<Event>.Continuation

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
    /// Observers of the pickable set's size, for tests and diagnostics.
    var pickableObservers: [(count: Int, signal: MeshSignal)] = []

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
      let count = self.picker.endpoints.count
      self.pickableObservers.removeAll { observer in
        guard observer.count == count else { return false }
        observer.signal.fire()
        return true
      }
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
    logger: Logger = Logger(label: "mesh.balancer", factory: { _ in SwiftLogNoOpLogHandler() })
  ) throws(MeshBalancingError) {
    try policy.validate()
    guard maxStreamsPerConnection >= 1 else {
      throw MeshBalancingError("maxStreamsPerConnection must be at least 1.")
    }
    guard maxConnectionsPerEndpoint >= 1 else {
      throw MeshBalancingError("maxConnectionsPerEndpoint must be at least 1.")
    }
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
    self.state = Mutex(State(picker: MeshPickerState(policy: policy)))
    (self.events, self.eventSink) = AsyncStream.makeStream(of: Event.self)
  }

  public var retryThrottle: RetryThrottle? { nil }

  /// The target's default timeout; an explicit timeout in the call's options wins.
  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    self.defaultTimeout.map { MethodConfig(names: [], timeout: $0) }
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
    let signal = MeshSignal()
    self.state.withLock { state in
      state.pickableObservers.append((count, signal))
      if state.picker.endpoints.count == count {
        signal.fire()
        state.pickableObservers.removeLast()
      }
    }
    await signal.wait()
  }

  public func connect() async throws {
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
    await self.waitUntilDecidable()
    var newConnection: (GRPCClient<Factory.Subchannel>, MeshSignal)?
    let picked = self.state.withLock { state -> (String, Int, MeshSignal, Factory.Subchannel)? in
      guard !state.isShutDown,
        let id = state.picker.pick(now: .now, using: &state.random),
        var entry = state.entries[id]
      else { return nil }
      // The least busy connection; a new one when all are full and the pool may grow.
      var chosen = entry.pool.indices.min { entry.pool[$0].streams < entry.pool[$1].streams }!
      if entry.pool[chosen].streams >= self.maxStreamsPerConnection,
        entry.pool.count < self.maxConnectionsPerEndpoint,
        let subchannel = try? self.factory.makeSubchannel(for: entry.endpoint)
      {
        let client = GRPCClient(transport: subchannel)
        entry.pool.append(Pooled(subchannel: subchannel, client: client, streams: 0))
        chosen = entry.pool.count - 1
        newConnection = (client, entry.removed)
      }
      entry.pool[chosen].streams += 1
      state.entries[id] = entry
      state.picker.started(id)
      return (id, chosen, entry.removed, entry.pool[chosen].subchannel)
    }
    if let (client, removed) = newConnection {
      self.eventSink.yield(.runPooled(client, removed: removed))
    }
    guard let (id, connection, generation, subchannel) = picked else {
      throw RPCError(
        code: .unavailable,
        message: "No endpoint of '\(self.service)' is available."
      )
    }
    let start = ContinuousClock.now
    defer {
      let end = ContinuousClock.now
      self.state.withLock { state in
        state.picker.finished(id, latency: start.duration(to: end), now: end)
        if state.entries[id]?.removed === generation {
          state.entries[id]?.pool[connection].streams -= 1
        }
      }
    }
    return try await subchannel.withStream(descriptor: descriptor, options: options, closure)
  }

  /// The connections open to an endpoint (its pool's size), or nil if it is unknown.
  package func connectionCount(forEndpoint id: String) -> Int? {
    self.state.withLock { $0.entries[id]?.pool.count }
  }

  /// Returns once an endpoint can be picked (or none will be: no endpoints, shutdown), or when
  /// the RPC is cancelled (its deadline passed): the pick that follows then fails as it should.
  private func waitUntilDecidable() async {
    let id = self.state.withLock { state in
      state.nextWaiterID += 1
      return state.nextWaiterID
    }
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let ready = self.state.withLock { state in
          if state.isDecidable || state.cancelledWaiters.remove(id) != nil { return true }
          state.waiters[id] = continuation
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
