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

private import MeshCore

/// Discovery from a list held in memory: fixed instances, or instances the program changes with
/// ``update(_:endpoints:)`` (every watcher sees the change at once).
///
/// Watching a service it has no list for yields an empty set, then whatever is set later.
/// Its watches never finish on their own.
public final class MeshStaticDiscovery: MeshDiscovery {
  private struct State {
    var endpoints: [String: [MeshEndpoint]]
    var watchers: [String: [UInt64: AsyncStream<MeshEndpointSet>.Continuation]] = [:]
    var nextWatcherID: UInt64 = 0
  }

  private let state: MeshMutex<State>

  /// Discovery of `endpoints`, by service name.
  public init(_ endpoints: [String: [MeshEndpoint]] = [:]) {
    self.state = MeshMutex(State(endpoints: endpoints))
  }

  /// Replaces the instances of `service`; its watchers get the new set.
  public func update(_ service: String, endpoints: [MeshEndpoint]) {
    self.state.withLock { state in
      state.endpoints[service] = endpoints
      // Yielded under the lock so that watchers see updates in the order they were made.
      let set = MeshEndpointSet(service: service, endpoints: endpoints)
      for watcher in state.watchers[service, default: [:]].values {
        watcher.yield(set)
      }
    }
  }

  /// Watches `service`: its current list at once (empty if it has none), then each list given
  /// to ``update(_:endpoints:)``. A watcher that falls behind gets only the newest list. The watch
  /// never finishes on its own; cancelling the task that iterates it ends it.
  public func watch(_ service: String) -> MeshEndpointUpdates {
    // Only the newest set matters to a consumer that fell behind.
    let (stream, continuation) = AsyncStream.makeStream(
      of: MeshEndpointSet.self,
      bufferingPolicy: .bufferingNewest(1)
    )
    let id = self.state.withLock { state in
      let id = state.nextWatcherID
      state.nextWatcherID += 1
      state.watchers[service, default: [:]][id] = continuation
      continuation.yield(
        MeshEndpointSet(service: service, endpoints: state.endpoints[service] ?? [])
      )
      return id
    }
    continuation.onTermination = { [weak self] _ in
      self?.state.withLock { state in
        state.watchers[service]?[id] = nil
      }
    }
    return MeshEndpointUpdates(stream)
  }
}
