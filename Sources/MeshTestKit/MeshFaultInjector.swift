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

public import GRPCCore
public import MeshCore

/// A fault-injecting server interceptor that makes any unary RPC (the health
/// `Watch` stream excepted, so the balancer's view stays up) fail or never answer, and records
/// what each RPC carried. (A slow server is `Tests/Interop/fault_peer.py --delay-ms`.)
public final class MeshFaultInjector: ServerInterceptor, Sendable {
  /// What the next RPCs get.
  public enum Fault: Sendable {
    /// Answer normally.
    case none
    /// Fail the next `times` RPCs with `code` (and a `grpc-retry-pushback-ms` trailer), then
    /// answer normally. `.ok` is not a failure: those RPCs are answered normally.
    case fail(Status.Code, times: Int = .max, pushback: String? = nil)
    /// Fail every other RPC with `code`: half of them, deterministically.
    case failAlternate(Status.Code)
    /// Never answer; end only when the RPC is cancelled (or at ``releaseHanging()``).
    case hang
    /// Answer normally once `release` fires (or fail when the RPC is cancelled first).
    case holdUntil(MeshSignal)
  }

  private struct State {
    var fault: Fault
    /// Whether faults apply to `Watch` streams too (after the balancer's own is up).
    var includesWatch = false
    var calls = 0
    var failures = 0
    var cancellations = 0
    var metadata: [Metadata] = []
    var cancellationWaiters: [(Int, MeshSignal)] = []
    var callWaiters: [(Int, MeshSignal)] = []
  }

  private let state: MeshMutex<State>
  /// Fired by ``releaseHanging()``.
  private let released = MeshSignal()

  /// An injector with `fault` in force.
  public init(_ fault: Fault = .none) {
    self.state = MeshMutex(State(fault: fault))
  }

  /// Puts `fault` in force, for health `Watch` streams too if `includingWatch`.
  public func set(_ fault: Fault, includingWatch: Bool = false) {
    self.state.withLock {
      $0.fault = fault
      $0.includesWatch = includingWatch
    }
  }

  /// Ends every RPC hanging now or later (with `CANCELLED`): for servers that never cancel a
  /// handler themselves, such as grpc-swift's in-process transport, before they shut down.
  public func releaseHanging() {
    self.released.fire()
  }

  /// RPCs seen (Watch excepted), failed, and cancelled while hanging.
  public var calls: Int { self.state.withLock { $0.calls } }
  /// RPCs failed by a fault.
  public var failures: Int { self.state.withLock { $0.failures } }
  /// Hanging RPCs that were cancelled.
  public var cancellations: Int { self.state.withLock { $0.cancellations } }
  /// The request metadata of each RPC, in order.
  public var metadata: [Metadata] { self.state.withLock { $0.metadata } }

  /// Returns once `count` hanging RPCs were cancelled (or the task is cancelled).
  public func waitForCancellations(_ count: Int) async {
    await self.wait(until: count, \.cancellations, waiters: \.cancellationWaiters)
  }

  /// Returns once `count` RPCs arrived (or the task is cancelled).
  public func waitForCalls(_ count: Int) async {
    await self.wait(until: count, \.calls, waiters: \.callWaiters)
  }

  /// Waits until the count at `counter` reaches `count`. A signal's wait ends when the task is
  /// cancelled too: a test whose RPCs never come fails at its time limit instead of holding up
  /// the whole run.
  private func wait(
    until count: Int,
    _ counter: KeyPath<State, Int>,
    waiters: WritableKeyPath<State, [(Int, MeshSignal)]>
  ) async {
    let signal = MeshSignal()
    let ready = self.state.withLock { state in
      if state[keyPath: counter] >= count { return true }
      state[keyPath: waiters].append((count, signal))
      return false
    }
    if !ready { await signal.wait() }
  }

  private enum Action {
    case answer
    case fail(Status.Code, pushback: String?)
    case hang
    case hold(MeshSignal)
  }

  private static func action(_ state: inout State) -> Action {
    switch state.fault {
    case .none:
      return .answer
    case .fail(let code, let times, let pushback):
      guard times > 0 else { return .answer }
      state.fault = .fail(code, times: times == .max ? .max : times - 1, pushback: pushback)
      state.failures += 1
      return .fail(code, pushback: pushback)
    case .failAlternate(let code):
      guard state.calls % 2 == 1 else { return .answer }
      state.failures += 1
      return .fail(code, pushback: nil)
    case .hang:
      return .hang
    case .holdUntil(let release):
      return .hold(release)
    }
  }

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws ->
      StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    if context.descriptor.method == "Watch" && !self.state.withLock({ $0.includesWatch }) {
      return try await next(request, context)
    }
    let (action, arrived) = self.state.withLock {
      state -> (Action, [MeshSignal]) in
      state.calls += 1
      state.metadata.append(request.metadata)
      let calls = state.calls
      let arrived = state.callWaiters.filter { $0.0 <= calls }.map(\.1)
      state.callWaiters.removeAll { $0.0 <= calls }
      return (Self.action(&state), arrived)
    }
    for waiter in arrived { waiter.fire() }
    switch action {
    case .answer:
      return try await next(request, context)
    case .fail(let code, let pushback):
      // OK is not a failure: a fault of `.ok` answers normally.
      guard let code = RPCError.Code(code) else { return try await next(request, context) }
      var trailers: Metadata = [:]
      if let pushback { trailers.addString(pushback, forKey: "grpc-retry-pushback-ms") }
      throw RPCError(code: code, message: "injected fault", metadata: trailers)
    case .hold(let release):
      await release.wait()
      return try await next(request, context)
    case .hang:
      let released = self.released
      await withTaskGroup(of: Void.self) { group in
        group.addTask { try? await context.cancellation.cancelled }
        group.addTask { await released.wait() }
        await group.next()
        group.cancelAll()
      }
      if released.hasFired {
        throw RPCError(code: .cancelled, message: "released while hanging")
      }
      let waiters = self.state.withLock { state in
        state.cancellations += 1
        let ready = state.cancellationWaiters.filter { $0.0 <= state.cancellations }
        state.cancellationWaiters.removeAll { $0.0 <= state.cancellations }
        return ready.map(\.1)
      }
      for waiter in waiters { waiter.fire() }
      throw RPCError(code: .cancelled, message: "cancelled while hanging")
    }
  }
}
