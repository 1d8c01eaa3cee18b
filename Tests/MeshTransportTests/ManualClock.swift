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

import MeshCore

/// A clock that moves only when told to, for testing timers without sleeping.
///
/// `sleep(until:)` suspends until ``advance(by:)`` moves `now` past the deadline. Tests learn that
/// a timer loop is waiting again with ``waitForSleepers(_:)``, an event, not a poll.
final class ManualClock: Clock, Sendable {
  struct Instant: InstantProtocol {
    var offset: Duration

    func advanced(by duration: Duration) -> Self {
      Self(offset: self.offset + duration)
    }

    func duration(to other: Self) -> Duration {
      other.offset - self.offset
    }

    static func < (lhs: Self, rhs: Self) -> Bool {
      lhs.offset < rhs.offset
    }
  }

  private struct State {
    var now = Instant(offset: .zero)
    var sleepers: [(deadline: Instant, continuation: CheckedContinuation<Void, any Error>)] = []
    var sleeperWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

    mutating func resumeSleeperWaiters() {
      let count = self.sleepers.count
      self.sleeperWaiters.removeAll { waiter in
        guard waiter.count == count else { return false }
        waiter.continuation.resume()
        return true
      }
    }
  }

  private let state = MeshMutex(State())

  var now: Instant {
    self.state.withLock { $0.now }
  }

  var minimumResolution: Duration {
    .zero
  }

  func sleep(until deadline: Instant, tolerance: Duration?) async throws {
    try await withCheckedThrowingContinuation { continuation in
      self.state.withLock { state in
        if deadline <= state.now {
          continuation.resume()
        } else {
          state.sleepers.append((deadline, continuation))
          state.resumeSleeperWaiters()
        }
      }
    }
  }

  /// Moves time forward, waking every sleeper whose deadline it passes.
  func advance(by duration: Duration) {
    self.state.withLock { state in
      state.now = state.now.advanced(by: duration)
      let now = state.now
      state.sleepers.removeAll { sleeper in
        guard sleeper.deadline <= now else { return false }
        sleeper.continuation.resume()
        return true
      }
    }
  }

  /// Wakes every sleeper with `CancellationError`.
  func cancelSleepers() {
    self.state.withLock { state in
      for sleeper in state.sleepers {
        sleeper.continuation.resume(throwing: CancellationError())
      }
      state.sleepers.removeAll()
    }
  }

  /// Suspends until exactly `count` tasks are sleeping on this clock.
  func waitForSleepers(_ count: Int) async {
    await withCheckedContinuation { continuation in
      self.state.withLock { state in
        if state.sleepers.count == count {
          continuation.resume()
        } else {
          state.sleeperWaiters.append((count, continuation))
        }
      }
    }
  }
}
