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

/// Timers for attempts' per-try timeouts and RPCs' deadlines, shared by all of a transport's
/// RPCs.
///
/// Arming one is a dictionary insert under a lock, not a task: one runner (started with the
/// transport) sleeps until the earliest armed deadline, and is woken early only when a timer is
/// armed before the one it sleeps for. With nothing armed it waits on a continuation.
final class MeshTimers<Clock: _Concurrency.Clock>: Sendable where Clock.Duration == Duration {
  private struct State {
    var timers: [UInt64: (deadline: Clock.Instant, action: @Sendable () -> Void)] = [:]
    var nextID: UInt64 = 0
    /// When the runner will next look, if it sleeps; how to wake it earlier.
    var sleepingUntil: Clock.Instant?
    var wake: CheckedContinuation<Void, Never>?
    /// Counts the runner's sleeps: a waker of a sleep that already ended must not wait.
    var sleeps: UInt64 = 0
    var stopped = false
  }

  private let state = MeshMutex(State())
  let clock: Clock

  init(clock: Clock) {
    self.clock = clock
  }

  /// Arms a timer; `action` runs (on the runner, so it must be quick) once `deadline` passed.
  func arm(
    at deadline: Clock.Instant,
    _ action: @escaping @Sendable () -> Void
  ) -> UInt64 {
    let (id, wake) = self.state.withLock { state -> (UInt64, CheckedContinuation<Void, Never>?) in
      state.nextID += 1
      state.timers[state.nextID] = (deadline, action)
      guard let wake = state.wake, state.sleepingUntil.map({ deadline < $0 }) ?? true else {
        return (state.nextID, nil)
      }
      state.wake = nil
      return (state.nextID, wake)
    }
    wake?.resume()
    return id
  }

  func disarm(_ id: UInt64) {
    self.state.withLock { _ = $0.timers.removeValue(forKey: id) }
  }

  /// Fires the timers until cancelled.
  func run() async {
    while !Task.isCancelled {
      let now = self.clock.now
      let (due, next) = self.state.withLock {
        state -> ([@Sendable () -> Void], Clock.Instant?) in
        var due: [@Sendable () -> Void] = []
        var next: Clock.Instant?
        for (id, timer) in state.timers {
          if timer.deadline <= now {
            due.append(timer.action)
            state.timers[id] = nil
          } else if next.map({ timer.deadline < $0 }) ?? true {
            next = timer.deadline
          }
        }
        return (due, next)
      }
      for action in due { action() }
      await self.sleep(until: next)
    }
  }

  /// Returns at `deadline` (nil: never), when a timer is armed before it, or when cancelled.
  private func sleep(until deadline: Clock.Instant?) async {
    let sleep = self.state.withLock { $0.sleeps }
    await withTaskCancellationHandler {
      await withTaskGroup(of: Void.self) { group in
        if let deadline {
          group.addTask {
            try? await self.clock.sleep(until: deadline, tolerance: .zero)
          }
        }
        group.addTask {
          await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = self.state.withLock { state -> Bool in
              if state.stopped || state.sleeps != sleep { return true }
              // Armed since the runner looked, before this deadline: look again now.
              let armedEarlier = state.timers.values.contains { timer in
                deadline.map { timer.deadline < $0 } ?? true
              }
              if armedEarlier { return true }
              state.sleepingUntil = deadline
              state.wake = continuation
              return false
            }
            if resumeNow { continuation.resume() }
          }
        }
        await group.next()
        group.cancelAll()
        let wake = self.state.withLock { state in
          state.sleeps &+= 1
          defer {
            state.wake = nil
            state.sleepingUntil = nil
          }
          return state.wake
        }
        wake?.resume()
      }
    } onCancel: {
      let wake = self.state.withLock { state in
        state.stopped = true
        defer { state.wake = nil }
        return state.wake
      }
      wake?.resume()
    }
  }
}
