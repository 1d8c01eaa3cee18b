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
private import Synchronization

/// A `ClientTransport` that spreads the RPCs of one service over its endpoints.
///
/// It watches the service through a ``MeshDiscovery``, keeps one subchannel (a transport made by
/// a ``MeshSubchannelFactory``) per endpoint, and picks one for each attempt with its
/// ``MeshBalancingPolicy``. A `GRPCClient` (and so any generated client) runs on it unchanged.
///
/// Endpoint changes: a new endpoint gets a subchannel that starts connecting at once; a removed
/// endpoint stops being picked at once, and its subchannel shuts down gracefully, finishing the
/// RPCs in flight on it. No RPC fails because an endpoint left discovery.
///
/// Lifecycle: ``connect()`` runs the watch and the subchannels until ``beginGracefulShutdown()``
/// (which lets RPCs in flight finish) or cancellation.
public final class MeshBalancingTransport<Factory: MeshSubchannelFactory>: ClientTransport {
  public typealias Bytes = Factory.Subchannel.Bytes

  public let service: String
  /// The timeout of RPCs whose call options set none (the Python helper's
  /// `create_stub(target, Stub, timeout=10.0)`).
  public let defaultTimeout: Duration?
  private let discovery: any MeshDiscovery
  private let factory: Factory
  private let logger: Logger
  private let state: Mutex<State>
  private let events: AsyncStream<Event>
  private let eventSink: AsyncStream<Event>.Continuation

  private enum Event: Sendable {
    case endpoints(MeshEndpointSet)
    case discoveryEnded((any Error)?)
    case shutdown
  }

  private struct State {
    var picker: MeshPickerState<ContinuousClock.Instant>
    var subchannels: [String: (endpoint: MeshEndpoint, subchannel: Factory.Subchannel)] = [:]
    /// RPCs waiting for the first endpoint set, by waiter ID.
    var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    var cancelledWaiters: Set<UInt64> = []
    var nextWaiterID: UInt64 = 0
    var hasEndpoints = false
    var isShutDown = false
    var random = SystemRandomNumberGenerator()
  }

  public init(
    service: String,
    discovery: any MeshDiscovery,
    factory: Factory,
    policy: MeshBalancingPolicy = .leastRequest,
    defaultTimeout: Duration? = nil,
    logger: Logger = Logger(label: "mesh.balancer", factory: { _ in SwiftLogNoOpLogHandler() })
  ) throws(MeshBalancingError) {
    try policy.validate()
    if let defaultTimeout, defaultTimeout <= .zero {
      throw MeshBalancingError("defaultTimeout must be positive, not \(defaultTimeout).")
    }
    self.service = service
    self.defaultTimeout = defaultTimeout
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
      state.picker.endpoints.compactMap { state.subchannels[$0.id]?.endpoint }
    }
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
          for subchannel in self.apply(set) {
            group.addTask {
              // A subchannel's connect() returns once it has shut down.
              try? await subchannel.connect()
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
          let subchannels = self.state.withLock { state in
            state.isShutDown = true
            for waiter in state.waiters.values { waiter.resume() }
            state.waiters.removeAll()
            return state.subchannels.values.map(\.subchannel)
          }
          for subchannel in subchannels {
            subchannel.beginGracefulShutdown()
          }
          self.eventSink.finish()
          group.cancelAll()  // the discovery watch; subchannels drain after their shutdown
        }
      }
    }
  }

  /// Applies a new endpoint set; returns the subchannels to run.
  private func apply(_ set: MeshEndpointSet) -> [Factory.Subchannel] {
    var added: [Factory.Subchannel] = []
    var removed: [Factory.Subchannel] = []
    self.state.withLock { state in
      guard !state.isShutDown else { return }
      let incoming = Dictionary(
        set.endpoints.map { ($0.id, $0) },
        uniquingKeysWith: { first, _ in first }
      )
      for (id, entry) in state.subchannels where incoming[id] == nil {
        removed.append(entry.subchannel)
        state.subchannels[id] = nil
      }
      for endpoint in set.endpoints {
        if let existing = state.subchannels[endpoint.id],
          existing.endpoint.host == endpoint.host && existing.endpoint.port == endpoint.port
        {
          state.subchannels[endpoint.id]?.endpoint = endpoint  // tags, weights, zone may change
          continue
        }
        if let replaced = state.subchannels[endpoint.id] {
          removed.append(replaced.subchannel)
        }
        do {
          let subchannel = try self.factory.makeSubchannel(for: endpoint)
          state.subchannels[endpoint.id] = (endpoint, subchannel)
          added.append(subchannel)
        } catch {
          self.logger.warning(
            "Could not make a subchannel; skipping the endpoint",
            metadata: ["mesh.endpoint": "\(endpoint)", "mesh.error": "\(error)"]
          )
        }
      }
      state.picker.update(
        set.endpoints.filter { state.subchannels[$0.id] != nil }.map {
          PickerEndpoint(id: $0.id, weight: $0.weight, zone: $0.zone, tags: $0.tags)
        }
      )
      state.hasEndpoints = true
      for waiter in state.waiters.values { waiter.resume() }
      state.waiters.removeAll()
    }
    // Removed endpoints are no longer picked; they finish their RPCs in flight, then close.
    for subchannel in removed {
      subchannel.beginGracefulShutdown()
    }
    self.logger.debug(
      "Endpoints updated",
      metadata: ["mesh.service": "\(self.service)", "mesh.endpoints": "\(set.endpoints.count)"]
    )
    return added
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    await self.waitForFirstEndpoints()
    let picked = self.state.withLock { state -> (String, Factory.Subchannel)? in
      guard !state.isShutDown,
        let id = state.picker.pick(now: .now, using: &state.random),
        let subchannel = state.subchannels[id]?.subchannel
      else { return nil }
      state.picker.started(id)
      return (id, subchannel)
    }
    guard let (id, subchannel) = picked else {
      throw RPCError(
        code: .unavailable,
        message: "No endpoint of '\(self.service)' is available."
      )
    }
    let start = ContinuousClock.now
    defer {
      let end = ContinuousClock.now
      self.state.withLock { $0.picker.finished(id, latency: start.duration(to: end), now: end) }
    }
    return try await subchannel.withStream(descriptor: descriptor, options: options, closure)
  }

  /// Returns once discovery first answered, at shutdown, or when the RPC is cancelled (its
  /// deadline passed): the pick that follows then fails as it should.
  private func waitForFirstEndpoints() async {
    let id = self.state.withLock { state in
      state.nextWaiterID += 1
      return state.nextWaiterID
    }
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let ready = self.state.withLock { state in
          if state.hasEndpoints || state.isShutDown || state.cancelledWaiters.remove(id) != nil {
            return true
          }
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
