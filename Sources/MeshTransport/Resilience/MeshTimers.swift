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

private import Synchronization

/// Timers for attempts' per-try timeouts and deadlines, shared by all of a transport's RPCs.
///
/// Arming one is a dictionary insert under a lock, not a task: one runner (started with the
/// transport) sweeps the armed timers every `resolution` while any are armed, and sleeps on a
/// continuation while none are. A timer fires up to one resolution late; attempts' deadlines are
/// also sent to the server in `grpc-timeout`, which enforces them exactly.
final class MeshTimers: Sendable {
  private struct State {
    var timers: [UInt64: (deadline: ContinuousClock.Instant, action: @Sendable () -> Void)] = [:]
    var nextID: UInt64 = 0
    var idle: CheckedContinuation<Void, Never>?
    var stopped = false
  }

  private let state = Mutex(State())
  let resolution: Duration

  init(resolution: Duration = .milliseconds(10)) {
    self.resolution = resolution
  }

  /// Arms a timer; `action` runs (on the runner, so it must be quick) once `deadline` passed.
  func arm(
    at deadline: ContinuousClock.Instant,
    _ action: @escaping @Sendable () -> Void
  ) -> UInt64 {
    let (id, idle) = self.state.withLock { state in
      state.nextID += 1
      state.timers[state.nextID] = (deadline, action)
      defer { state.idle = nil }
      return (state.nextID, state.idle)
    }
    idle?.resume()
    return id
  }

  func disarm(_ id: UInt64) {
    self.state.withLock { _ = $0.timers.removeValue(forKey: id) }
  }

  /// Fires the timers until cancelled.
  func run() async {
    while !Task.isCancelled {
      let armed = self.state.withLock { !$0.timers.isEmpty }
      if !armed {
        await self.waitUntilArmed()
        continue
      }
      try? await Task.sleep(for: self.resolution, tolerance: .zero)
      let now = ContinuousClock.now
      let due = self.state.withLock { state -> [@Sendable () -> Void] in
        let due = state.timers.filter { $0.value.deadline <= now }
        for id in due.keys { state.timers[id] = nil }
        return due.values.map(\.action)
      }
      for action in due { action() }
    }
  }

  private func waitUntilArmed() async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumeNow = self.state.withLock { state in
          if !state.timers.isEmpty || state.stopped { return true }
          state.idle = continuation
          return false
        }
        if resumeNow { continuation.resume() }
      }
    } onCancel: {
      let idle = self.state.withLock { state in
        state.stopped = true
        defer { state.idle = nil }
        return state.idle
      }
      idle?.resume()
    }
  }
}
