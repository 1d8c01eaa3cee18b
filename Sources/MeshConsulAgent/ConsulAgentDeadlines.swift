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

/// The agent's timers, a binary min-heap of (instant, check), so the next TTL expiry or
/// critical-service removal is found in O(log n) instead of by scanning every check.
///
/// Entries are never updated in place: a check whose deadline moves pushes a new entry, and the
/// owner discards entries that no longer match the check when they reach the top (`isCurrent`).
/// ``compact(keeping:)`` drops stale ones when they outnumber the live ones.
struct ConsulAgentDeadlines<Instant: InstantProtocol> {
  enum Kind: Hashable {
    /// A TTL check runs out.
    case ttl
    /// A critical check's service is removed (`DeregisterCriticalServiceAfter`).
    case reap
  }

  struct Entry {
    var instant: Instant
    var checkID: ConsulAgentKey
    var kind: Kind
  }

  private(set) var entries: [Entry] = []

  var count: Int { self.entries.count }
  var first: Entry? { self.entries.first }

  mutating func push(_ entry: Entry) {
    self.entries.append(entry)
    var child = self.entries.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard self.entries[child].instant < self.entries[parent].instant else { break }
      self.entries.swapAt(child, parent)
      child = parent
    }
  }

  @discardableResult
  mutating func popFirst() -> Entry? {
    guard !self.entries.isEmpty else { return nil }
    self.entries.swapAt(0, self.entries.count - 1)
    let first = self.entries.removeLast()
    self.siftDown(from: 0)
    return first
  }

  /// Keeps only the entries `isCurrent` accepts, in O(n).
  mutating func compact(keeping isCurrent: (Entry) -> Bool) {
    self.entries.removeAll { !isCurrent($0) }
    var index = self.entries.count / 2
    while index > 0 {
      index -= 1
      self.siftDown(from: index)
    }
  }

  private mutating func siftDown(from start: Int) {
    var parent = start
    while true {
      let left = 2 * parent + 1
      let right = left + 1
      var smallest = parent
      if left < self.entries.count, self.entries[left].instant < self.entries[smallest].instant {
        smallest = left
      }
      if right < self.entries.count, self.entries[right].instant < self.entries[smallest].instant {
        smallest = right
      }
      guard smallest != parent else { return }
      self.entries.swapAt(parent, smallest)
      parent = smallest
    }
  }
}
