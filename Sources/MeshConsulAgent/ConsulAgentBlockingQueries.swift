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

/// What a blocking query waits on: the index it compares with `index=`.
enum ConsulAgentWatchKey: Hashable, Sendable {
  /// A service's health and catalog entries (its own index, or the catalog's while it has no
  /// instances).
  case service(ConsulAgentKey)
  /// The services table (`/v1/catalog/services`, `/v1/catalog/nodes`).
  case catalog
  /// Anything on the node (`/v1/health/node`, `/v1/health/state`, `/v1/catalog/node`).
  case any
  /// The intentions (`/v1/connect/intentions*`, `/v1/config/service-intentions*`).
  case intentions
}

/// The parked blocking queries, by what they wait on, so that a change wakes only the queries it
/// concerns: O(woken) per change, never O(all queries) or O(services).
struct ConsulAgentWaiters {
  struct Waiter {
    var afterIndex: UInt64
    var wake: MeshSignal
  }

  private var byKey: [ConsulAgentWatchKey: [UInt64: Waiter]] = [:]
  /// Service keys parked while the service had no instances: their index is the catalog's, so a
  /// catalog change must look at them.
  private var followingCatalog: Set<ConsulAgentWatchKey> = []
  private var nextID: UInt64 = 0
  private(set) var count = 0

  /// Parks a waiter; returns its ID.
  mutating func park(
    _ key: ConsulAgentWatchKey,
    after index: UInt64,
    followsCatalog: Bool,
    wake: MeshSignal
  ) -> UInt64 {
    let id = self.nextID
    self.nextID += 1
    self.byKey[key, default: [:]][id] = Waiter(afterIndex: index, wake: wake)
    if followsCatalog { self.followingCatalog.insert(key) }
    self.count += 1
    return id
  }

  /// Removes a waiter that returned (woken, timed out or shut down).
  mutating func remove(_ key: ConsulAgentWatchKey, id: UInt64) {
    guard self.byKey[key]?.removeValue(forKey: id) != nil else { return }
    self.count -= 1
    if self.byKey[key]?.isEmpty == true {
      self.byKey[key] = nil
      self.followingCatalog.remove(key)
    }
  }

  /// Wakes the waiters whose index passed theirs after `change`; `index` gives a key's index now.
  mutating func wake(
    after change: ConsulAgentChange,
    index: (ConsulAgentWatchKey) -> UInt64
  ) {
    guard self.count > 0, change.any else { return }
    var keys: Set<ConsulAgentWatchKey> = [.any]
    for service in change.services { keys.insert(.service(service)) }
    if change.intentions { keys.insert(.intentions) }
    if change.catalog {
      keys.insert(.catalog)
      keys.formUnion(self.followingCatalog)
    }
    for key in keys {
      guard let waiters = self.byKey[key] else {
        self.followingCatalog.remove(key)
        continue
      }
      let current = index(key)
      for (id, waiter) in waiters where current > waiter.afterIndex {
        waiter.wake.fire()
        self.remove(key, id: id)
      }
    }
  }
}
