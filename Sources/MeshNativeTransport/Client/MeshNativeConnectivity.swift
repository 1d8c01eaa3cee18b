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

/// A client transport's connectivity, and the RPCs waiting for a connection: a value-type state
/// machine whose methods return what to resume (the caller resumes outside its lock).
///
/// `Connection` is whatever carries streams; `Waiter` is what an RPC waits on.
struct MeshNativeConnectivity<Connection: AnyObject, Waiter> {
  enum State {
    /// No connection yet (before `connect()`, or between a lost one and the next).
    case idle
    case connecting
    case ready(Connection)
    /// The last attempt failed; the next is after a backoff.
    case failed(MeshHTTP2Error)
    case shutdown
  }

  /// What a new RPC gets.
  enum Admission {
    case use(Connection)
    case fail(MeshHTTP2Error)
    /// Queued: it is resumed by a later transition.
    case wait
  }

  private(set) var state = State.idle
  private var waiters: [UInt64: (waiter: Waiter, waitForReady: Bool)] = [:]

  init() {}

  /// An RPC asks for a connection.
  mutating func admit(id: UInt64, waiter: Waiter, waitForReady: Bool) -> Admission {
    switch self.state {
    case .ready(let connection):
      return .use(connection)
    case .shutdown:
      return .fail(MeshHTTP2Error(.unavailable, "The transport is shut down."))
    case .failed(let error) where !waitForReady:
      return .fail(error)
    case .idle, .connecting, .failed:
      self.waiters[id] = (waiter, waitForReady)
      return .wait
    }
  }

  /// A waiting RPC gave up (cancelled): its waiter, if it was still waiting.
  mutating func withdraw(id: UInt64) -> Waiter? {
    self.waiters.removeValue(forKey: id)?.waiter
  }

  /// An attempt to connect starts. False after shutdown.
  mutating func connecting() -> Bool {
    if case .shutdown = self.state { return false }
    self.state = .connecting
    return true
  }

  /// The attempt succeeded: every waiter uses `connection`.
  mutating func ready(_ connection: Connection) -> [Waiter] {
    if case .shutdown = self.state { return [] }
    self.state = .ready(connection)
    defer { self.waiters.removeAll() }
    return self.waiters.values.map(\.waiter)
  }

  /// `connection` goes away or closed: if it is the one in use, the next RPCs wait for a new one.
  mutating func lost(_ connection: Connection) {
    guard case .ready(let current) = self.state, current === connection else { return }
    self.state = .idle
  }

  /// The attempt failed: waiters that don't wait for readiness fail with `error`.
  mutating func failed(_ error: MeshHTTP2Error) -> [Waiter] {
    if case .shutdown = self.state { return [] }
    self.state = .failed(error)
    let failing = self.waiters.filter { !$0.value.waitForReady }
    for id in failing.keys { self.waiters[id] = nil }
    return failing.values.map(\.waiter)
  }

  /// Shut down: every waiter fails; the connection in use (if any) is returned to be drained.
  mutating func shutDown() -> (connection: Connection?, failing: [Waiter]) {
    let connection: Connection?
    if case .ready(let current) = self.state { connection = current } else { connection = nil }
    self.state = .shutdown
    defer { self.waiters.removeAll() }
    return (connection, self.waiters.values.map(\.waiter))
  }

  var isShutdown: Bool {
    if case .shutdown = self.state { return true }
    return false
  }
}
