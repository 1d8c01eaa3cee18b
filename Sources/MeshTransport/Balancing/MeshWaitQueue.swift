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
///
/// An RPC gets its ID when it finds it must wait, and stores its waiter a moment later, after
/// the lock was let go in between: a change in that gap would wake nobody, and the RPC would
/// sleep through it (an RPC to a service discovery then lists with no endpoint waited for ever).
/// So the queue remembers the last ID each wake-up covered, and refuses a waiter whose ID is as
/// old: that RPC looks again at once.
struct MeshWaitQueue<Waiter> {
  private var waiters: [UInt64: Waiter] = [:]
  private var lastID: UInt64 = 0
  /// Every ID up to this one was made before the latest wake-up.
  private var wokenThrough: UInt64 = 0

  init() {}

  /// The RPCs waiting now.
  var count: Int { self.waiters.count }

  var isEmpty: Bool { self.waiters.isEmpty }

  /// A new waiter ID, never used before.
  mutating func makeID() -> UInt64 {
    self.lastID += 1
    return self.lastID
  }

  /// Stores a waiter under `id`, which ``makeID()`` returned; false, storing nothing, when a
  /// wake-up came after `id` was made (the waiter must look again instead of waiting).
  mutating func enqueue(_ waiter: Waiter, id: UInt64) -> Bool {
    precondition(id <= self.lastID && self.waiters[id] == nil, "waiter \(id) was not made here")
    guard id > self.wokenThrough else { return false }
    self.waiters[id] = waiter
    return true
  }

  /// Removes the waiter (it was cancelled); nil if it is not waiting (already resumed).
  mutating func remove(_ id: UInt64) -> Waiter? {
    self.waiters.removeValue(forKey: id)
  }

  /// Removes every waiter, to be resumed by the caller outside the lock.
  mutating func removeAll() -> [Waiter] {
    self.wokenThrough = self.lastID  // IDs made so far but not yet stored are woken too
    guard !self.waiters.isEmpty else { return [] }
    defer { self.waiters.removeAll(keepingCapacity: true) }
    return Array(self.waiters.values)
  }
}
