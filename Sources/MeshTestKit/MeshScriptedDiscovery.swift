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

internal import MeshCore
public import MeshDiscovery

/// Discovery a test scripts: which endpoints each watch sees, when a watch fails, and how often
/// the consumer watched, so a test drives a balancer through discovery's failure modes without
/// a registry.
///
/// A watch of a target starts with the target's list if it has one, and is silent otherwise (an
/// RPC waits for endpoints). ``update(_:endpoints:)`` gives every watch of the target a new list;
/// ``fail(_:with:)`` ends the target's watches with an error (a consumer watches again);
/// ``failEveryWatch(of:with:)`` makes every watch of the target throw at once, as a registry that
/// refuses the query does. ``waitForWatches(of:count:)`` waits for the consumer to have watched.
///
/// ```swift
/// let discovery = MeshScriptedDiscovery()
/// discovery.failEveryWatch(of: "greeter", with: RegistryDown())
/// // ... the transport reports the failure and watches again:
/// await discovery.waitForWatches(of: "greeter", count: 2)
/// discovery.failEveryWatch(of: "greeter", with: nil)
/// discovery.update("greeter", endpoints: [endpoint])
/// ```
public final class MeshScriptedDiscovery: MeshDiscovery {
  private typealias Watcher = AsyncThrowingStream<MeshEndpointSet, any Error>.Continuation

  private struct Target {
    var endpoints: [MeshEndpoint]?
    var failure: (any Error & Sendable)?
    var watchers: [UInt64: Watcher] = [:]
    var watches = 0
  }

  private struct WatchWaiter {
    var target: String
    var count: Int
    var continuation: CheckedContinuation<Void, Never>
  }

  private struct State {
    var targets: [String: Target] = [:]
    var waiters: [UInt64: WatchWaiter] = [:]
    var nextID: UInt64 = 0

    /// Removes and returns the waiters whose target has been watched often enough.
    mutating func readyWaiters() -> [CheckedContinuation<Void, Never>] {
      var ready: [CheckedContinuation<Void, Never>] = []
      for (id, waiter) in self.waiters
      where self.targets[waiter.target, default: Target()].watches >= waiter.count {
        ready.append(waiter.continuation)
        self.waiters[id] = nil
      }
      return ready
    }
  }

  private let state: MeshMutex<State>

  /// Discovery whose watches start with `endpoints` (by target); other targets are silent.
  public init(_ endpoints: [String: [MeshEndpoint]] = [:]) {
    var state = State()
    for (target, list) in endpoints {
      state.targets[target] = Target(endpoints: list)
    }
    self.state = MeshMutex(state)
  }

  /// Replaces the endpoints of `target`: its watches get the new list, and new watches start
  /// with it.
  public func update(_ target: String, endpoints: [MeshEndpoint]) {
    self.state.withLock { state in
      state.targets[target, default: Target()].endpoints = endpoints
      // Yielded under the lock, so that watches see lists in the order they were given.
      let set = MeshEndpointSet(service: target, endpoints: endpoints)
      for watcher in state.targets[target, default: Target()].watchers.values {
        watcher.yield(set)
      }
    }
  }

  /// Ends every watch of `target` now with `error`; later watches work as before.
  public func fail(_ target: String, with error: any Error & Sendable) {
    let watchers = self.state.withLock { state in
      let watchers = state.targets[target, default: Target()].watchers.values
      state.targets[target, default: Target()].watchers = [:]
      return Array(watchers)
    }
    for watcher in watchers { watcher.finish(throwing: error) }
  }

  /// Makes every watch of `target`, from now on, throw `error` at once (and ends its current
  /// watches with it); nil lets watches work again.
  public func failEveryWatch(of target: String, with error: (any Error & Sendable)?) {
    self.state.withLock { $0.targets[target, default: Target()].failure = error }
    if let error { self.fail(target, with: error) }
  }

  /// How many times `target` has been watched.
  public func watchCount(of target: String) -> Int {
    self.state.withLock { $0.targets[target]?.watches ?? 0 }
  }

  /// Suspends until `target` has been watched `count` times in all, or the task is cancelled.
  public func waitForWatches(of target: String, count: Int) async {
    let id = self.state.withLock { state in
      state.nextID += 1
      return state.nextID
    }
    await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        let ready = self.state.withLock { state -> Bool in
          if Task.isCancelled || state.targets[target, default: Target()].watches >= count {
            return true
          }
          state.waiters[id] = WatchWaiter(target: target, count: count, continuation: continuation)
          return false
        }
        if ready { continuation.resume() }
      }
    } onCancel: {
      let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
      waiter?.continuation.resume()
    }
  }

  /// Watches `target` as scripted: a failure set by ``failEveryWatch(of:with:)`` at once, else the
  /// target's list (if it has one) and each later ``update(_:endpoints:)``, until
  /// ``fail(_:with:)`` or the consumer stops iterating.
  public func watch(_ target: String) -> MeshEndpointUpdates {
    let (stream, continuation) = AsyncThrowingStream.makeStream(
      of: MeshEndpointSet.self,
      throwing: (any Error).self,
      bufferingPolicy: .bufferingNewest(1)
    )
    let (id, failure, ready) = self.state.withLock {
      state -> (UInt64, (any Error)?, [CheckedContinuation<Void, Never>]) in
      state.nextID += 1
      let id = state.nextID
      state.targets[target, default: Target()].watches += 1
      let entry = state.targets[target, default: Target()]
      if let failure = entry.failure {
        return (id, failure, state.readyWaiters())
      }
      state.targets[target, default: Target()].watchers[id] = continuation
      if let endpoints = entry.endpoints {
        continuation.yield(MeshEndpointSet(service: target, endpoints: endpoints))
      }
      return (id, nil, state.readyWaiters())
    }
    if let failure { continuation.finish(throwing: failure) }
    continuation.onTermination = { [weak self] _ in
      _ = self?.state.withLock { $0.targets[target]?.watchers.removeValue(forKey: id) }
    }
    for waiter in ready { waiter.resume() }
    return MeshEndpointUpdates(stream)
  }
}
