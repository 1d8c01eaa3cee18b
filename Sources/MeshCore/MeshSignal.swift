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

/// A one-shot event any number of tasks can wait for: `fire()` wakes every waiter, now and
/// later. A waiter whose task is cancelled returns at once, leaving the signal intact (unlike
/// iterating an `AsyncStream`, which a cancelled iteration terminates for everyone).
public final class MeshSignal: Sendable {
  private struct State {
    var fired = false
    var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    var nextID: UInt64 = 0
  }

  private let state = MeshMutex(State())

  /// A signal that has not fired.
  public init() {}

  /// Whether ``fire()`` was called.
  public var hasFired: Bool {
    self.state.withLock { $0.fired }
  }

  /// Fires the signal: every waiter returns, now and later. Firing again does nothing.
  public func fire() {
    let waiters = self.state.withLock { state in
      state.fired = true
      defer { state.waiters.removeAll() }
      return Array(state.waiters.values)
    }
    for waiter in waiters {
      waiter.resume()
    }
  }

  /// Runs `body` until it returns or the signal fires, whichever comes first: then `body`'s task
  /// is cancelled and awaited.
  public func cancelling(_ body: @escaping @Sendable () async -> Void) async {
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await body() }
      group.addTask { await self.wait() }
      await group.next()
      group.cancelAll()
    }
  }

  /// Returns when the signal fires, or when the task is cancelled.
  public func wait() async {
    let id = self.state.withLock { state in
      state.nextID += 1
      return state.nextID
    }
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumeNow = self.state.withLock { state in
          // Checked under the lock: a cancellation handler that ran before this found no
          // waiter to resume, so the waiter must not be stored (nothing would resume it).
          if state.fired || Task.isCancelled { return true }
          state.waiters[id] = continuation
          return false
        }
        if resumeNow { continuation.resume() }
      }
    } onCancel: {
      let continuation = self.state.withLock { $0.waiters.removeValue(forKey: id) }
      continuation?.resume()
    }
  }
}
