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

/// A clock that moves only when told to, for testing timers, backoffs, deadlines and ejection
/// times without sleeping.
///
/// `sleep(until:)` suspends until advance(by:) moves `now` to the deadline (or the sleeping
/// task is cancelled: it then throws `CancellationError`, as `ContinuousClock` does). Tests learn
/// that a loop is waiting again with waitForSleepers(_:), an event, not a poll.
///
/// ```swift
/// let clock = MeshManualClock()
/// let transport = try MeshBalancingTransport(service: "greeter", discovery: discovery,
///                                            factory: fleet.factory, clock: clock)
/// // ... start an RPC, then:
/// clock.advance(by: .seconds(10))  // its deadline passes
/// ```
public final class MeshManualClock: Clock, Sendable {
  /// An instant of the manual clock: the time advanced since it was made.
  public struct Instant: InstantProtocol {
    /// The time since the clock's start.
    public var offset: Duration

    /// The instant `offset` after the clock's start.
    public init(offset: Duration) {
      self.offset = offset
    }

    public func advanced(by duration: Duration) -> Self {
      Self(offset: self.offset + duration)
    }

    public func duration(to other: Self) -> Duration {
      other.offset - self.offset
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
      lhs.offset < rhs.offset
    }
  }

  private struct Sleeper {
    var id: UInt64
    var deadline: Instant
    var continuation: CheckedContinuation<Void, any Error>
  }

  private struct SleeperWaiter {
    var id: UInt64
    var condition: @Sendable ([Instant]) -> Bool
    var continuation: CheckedContinuation<Void, Never>
  }

  private struct State {
    var now = Instant(offset: .zero)
    var sleepers: [Sleeper] = []
    var nextID: UInt64 = 0
    var sleeperWaiters: [SleeperWaiter] = []

    /// The waiters whose condition on the sleepers holds, removed, to resume.
    mutating func readyWaiters() -> [CheckedContinuation<Void, Never>] {
      let deadlines = self.sleepers.map(\.deadline)
      var ready: [CheckedContinuation<Void, Never>] = []
      self.sleeperWaiters.removeAll { waiter in
        guard waiter.condition(deadlines) else { return false }
        ready.append(waiter.continuation)
        return true
      }
      return ready
    }
  }

  private let state = MeshMutex(State())

  /// A clock at its start (`now` is offset zero).
  public init() {}

  public var now: Instant {
    self.state.withLock { $0.now }
  }

  public var minimumResolution: Duration {
    .zero
  }

  /// The tasks sleeping on the clock now.
  public var sleepers: Int {
    self.state.withLock { $0.sleepers.count }
  }

  public func sleep(until deadline: Instant, tolerance: Duration?) async throws {
    let id = self.state.withLock { state in
      state.nextID += 1
      return state.nextID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        // Checked under the lock the cancellation handler takes: a sleeper is never stored after
        // its cancellation ran.
        let (outcome, ready) = self.state.withLock {
          state -> (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
          if Task.isCancelled { return (.failure(CancellationError()), []) }
          if deadline <= state.now { return (.success(()), []) }
          state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
          return (nil, state.readyWaiters())
        }
        for waiter in ready { waiter.resume() }
        if let outcome { continuation.resume(with: outcome) }
      }
    } onCancel: {
      let (sleeper, ready) = self.state.withLock {
        state -> (Sleeper?, [CheckedContinuation<Void, Never>]) in
        guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else {
          return (nil, [])
        }
        let sleeper = state.sleepers.remove(at: index)
        return (sleeper, state.readyWaiters())
      }
      sleeper?.continuation.resume(throwing: CancellationError())
      for waiter in ready { waiter.resume() }
    }
  }

  /// Moves time forward, waking every sleeper whose deadline it reaches.
  public func advance(by duration: Duration) {
    let (due, ready) = self.state.withLock {
      state -> ([Sleeper], [CheckedContinuation<Void, Never>]) in
      state.now = state.now.advanced(by: duration)
      let now = state.now
      var due: [Sleeper] = []
      state.sleepers.removeAll { sleeper in
        guard sleeper.deadline <= now else { return false }
        due.append(sleeper)
        return true
      }
      return (due, state.readyWaiters())
    }
    for sleeper in due { sleeper.continuation.resume() }
    for waiter in ready { waiter.resume() }
  }

  /// Wakes every sleeper with `CancellationError`.
  public func cancelSleepers() {
    let (sleepers, ready) = self.state.withLock {
      state -> ([Sleeper], [CheckedContinuation<Void, Never>]) in
      let sleepers = state.sleepers
      state.sleepers.removeAll()
      return (sleepers, state.readyWaiters())
    }
    for sleeper in sleepers { sleeper.continuation.resume(throwing: CancellationError()) }
    for waiter in ready { waiter.resume() }
  }

  /// Suspends until exactly `count` tasks are sleeping on this clock, or the task is cancelled.
  public func waitForSleepers(_ count: Int) async {
    await self.waitForSleepers { $0.count == count }
  }

  /// Suspends until a task sleeps until `deadline` or earlier, or the task is cancelled.
  public func waitForSleeper(dueBy deadline: Instant) async {
    await self.waitForSleepers { $0.contains { $0 <= deadline } }
  }

  /// Suspends until `condition` holds for the deadlines of the tasks sleeping on this clock, or
  /// the task is cancelled.
  public func waitForSleepers(where condition: @escaping @Sendable ([Instant]) -> Bool) async {
    let id = self.state.withLock { state in
      state.nextID += 1
      return state.nextID
    }
    await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        let ready = self.state.withLock { state -> Bool in
          if Task.isCancelled || condition(state.sleepers.map(\.deadline)) { return true }
          state.sleeperWaiters.append(
            SleeperWaiter(id: id, condition: condition, continuation: continuation)
          )
          return false
        }
        if ready { continuation.resume() }
      }
    } onCancel: {
      let waiter = self.state.withLock { state -> SleeperWaiter? in
        guard let index = state.sleeperWaiters.firstIndex(where: { $0.id == id }) else {
          return nil
        }
        return state.sleeperWaiters.remove(at: index)
      }
      waiter?.continuation.resume()
    }
  }
}
