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

internal import GRPCCore
internal import MeshCore

// Admission of attempts, and picking (or waiting for) an endpoint.
extension MeshBalancingTransport {
  /// Applies the breakers and the retry budget to a new attempt. `retry` is the failure the
  /// attempt retries (nil for an RPC's first attempt).
  func admit(retry: RPCError?, now: Clock.Instant) throws(RPCError) {
    let (refusal, effects) = self.state.withLock { $0.machine.admit(retry: retry, now: now) }
    self.perform(effects)
    if let refusal { throw refusal }
  }

  /// The end of an admitted attempt.
  func finishAttempt(isRetry: Bool) {
    self.perform(self.state.withLock { $0.machine.finishAttempt(isRetry: isRetry) })
  }

  /// Waits until an endpoint can be picked, then picks one (and the connection to use), avoiding
  /// `failed` while another is available; see ``MeshBalancerStateMachine`` for when it waits and
  /// when it fails. Returns when the task is cancelled (the RPC ended).
  func pickEndpoint(
    avoiding failed: Set<String>,
    waitForReady: Bool
  ) async -> Result<Picked, RPCError> {
    while true {
      if Task.isCancelled {
        return .failure(RPCError(code: .cancelled, message: "The RPC ended while it waited."))
      }
      let now = self.clock.now
      let action = self.state.withLock { state in
        state.machine.pick(
          avoiding: failed,
          waitForReady: waitForReady,
          now: now,
          using: &state.random
        )
      }
      switch action {
      case .picked(let picked):
        return .success(picked)
      case .open(let open):
        guard let picked = self.open(open) else { continue }  // the endpoint left meanwhile
        return .success(picked)
      case .fail(let error):
        return .failure(error)
      case .wait(let id):
        await self.waitForChange(id)
      }
    }
  }

  /// Picks an endpoint if one is pickable now, without waiting (and without the side effects of
  /// a pick that would wait or fail: a breaker's rejection is counted by the pick that follows).
  func pickNow(waitForReady: Bool) -> Picked? {
    guard !Task.isCancelled else { return nil }
    let now = self.clock.now
    let action = self.state.withLock { state -> StateMachine.PickAction? in
      // With an endpoint in the picker and none to avoid, a pick picks (or opens a connection).
      guard !state.machine.isShutDown, !state.machine.picker.endpoints.isEmpty else { return nil }
      return state.machine.pick(
        avoiding: [],
        waitForReady: waitForReady,
        now: now,
        using: &state.random
      )
    }
    switch action {
    case .picked(let picked): return picked
    case .open(let open): return self.open(open)
    case .wait, .fail, nil: return nil
    }
  }

  /// Makes the connection a pick reserved (every connection of the endpoint is full), outside
  /// the lock, and takes a stream on it; nil when the endpoint left meanwhile.
  private func open(_ open: StateMachine.OpenConnection) -> Picked? {
    let connection = try? self.makeConnection(to: open.endpoint)
    let opened = self.state.withLock { $0.machine.opened(open, connection: connection) }
    guard let opened else { return nil }
    if opened.isNew, let connection {
      self.runPooled(connection, removed: open.removed)
    }
    return opened.picked
  }

  /// Returns at the balancer's next change, or when the task is cancelled.
  private func waitForChange(_ id: UInt64) async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let effects = self.state.withLock { state -> StateMachine.Effects? in
          // Checked under the lock the cancellation handler takes: once it ran, nothing would
          // resume a stored waiter.
          guard !Task.isCancelled else { return nil }
          return state.machine.enqueue(continuation, id: id)
        }
        if let effects {
          self.perform(effects)
        } else {
          continuation.resume()
        }
      }
    } onCancel: {
      let (waiter, effects) = self.state.withLock { $0.machine.cancelWaiter(id) }
      waiter?.resume()
      self.perform(effects)
    }
  }

  /// Whether some pickable endpoint is not in `excluded`.
  func hasEndpoint(outside excluded: Set<String>) -> Bool {
    self.state.withLock { $0.machine.hasEndpoint(outside: excluded) }
  }
}
