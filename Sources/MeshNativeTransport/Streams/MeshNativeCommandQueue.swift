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

/// Commands from RPC tasks to a connection's event loop, batched: the loop is woken once for
/// however many commands were queued before it ran.
final class MeshNativeCommandQueue<Command: Sendable>: Sendable {
  struct State {
    var commands: [Command] = []
    var scheduled = false
    /// Set once the connection closed: commands are refused with it.
    var closed: MeshHTTP2Error?
  }

  enum Outcome {
    /// The first command of a batch: wake the loop.
    case schedule
    /// The loop is already due to run.
    case queued
    /// The connection is closed.
    case refused(MeshHTTP2Error)
  }

  private let state = MeshMutex(State())

  init() {}

  func enqueue(_ command: Command) -> Outcome {
    self.state.withLock { state -> Outcome in
      if let closed = state.closed { return .refused(closed) }
      state.commands.append(command)
      if state.scheduled { return .queued }
      state.scheduled = true
      return .schedule
    }
  }

  /// The batch to run (on the loop); the next command wakes the loop again.
  func take() -> [Command] {
    self.state.withLock { state in
      state.scheduled = false
      defer { state.commands.removeAll(keepingCapacity: true) }
      return state.commands
    }
  }

  /// Closes the queue: the commands not yet run, to be refused with `error`.
  func close(_ error: MeshHTTP2Error) -> [Command] {
    self.state.withLock { state in
      state.closed = error
      defer { state.commands.removeAll() }
      return state.commands
    }
  }
}
