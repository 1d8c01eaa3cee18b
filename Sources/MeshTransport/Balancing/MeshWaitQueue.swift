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

/// RPCs waiting for the balancer's state to change (an endpoint to become pickable, discovery
/// to answer), as a value the balancer keeps under its lock.
///
/// A waiter is in the queue only while it waits: resuming or cancelling it removes it, so
/// ``count`` is always the number of RPCs waiting (the gauge, and what the
/// `max_pending_requests` breaker compares). The caller stores a waiter only after checking
/// `Task.isCancelled` under the same lock its cancellation handler takes, so a waiter is never
/// stored after its cancellation ran (no tombstones are kept for cancelled IDs).
struct MeshWaitQueue<Waiter> {
  private var waiters: [UInt64: Waiter] = [:]
  private var lastID: UInt64 = 0

  init() {}

  /// The RPCs waiting now.
  var count: Int { self.waiters.count }

  var isEmpty: Bool { self.waiters.isEmpty }

  /// A new waiter ID, never used before.
  mutating func makeID() -> UInt64 {
    self.lastID += 1
    return self.lastID
  }

  /// Stores a waiter under `id`, which ``makeID()`` returned.
  mutating func enqueue(_ waiter: Waiter, id: UInt64) {
    precondition(id <= self.lastID && self.waiters[id] == nil, "waiter \(id) was not made here")
    self.waiters[id] = waiter
  }

  /// Removes the waiter (it was cancelled); nil if it is not waiting (already resumed).
  mutating func remove(_ id: UInt64) -> Waiter? {
    self.waiters.removeValue(forKey: id)
  }

  /// Removes every waiter, to be resumed by the caller outside the lock.
  mutating func removeAll() -> [Waiter] {
    guard !self.waiters.isEmpty else { return [] }
    defer { self.waiters.removeAll(keepingCapacity: true) }
    return Array(self.waiters.values)
  }
}
