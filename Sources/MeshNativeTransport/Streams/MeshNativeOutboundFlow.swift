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

/// A stream's writes handed to the event loop and not yet framed by nghttp2: the writer waits
/// while more than ``highWater`` bytes are queued, and every write fails once the stream has.
final class MeshNativeOutboundFlow: Sendable {
  private struct State {
    var queuedBytes = 0
    var waiters: [CheckedContinuation<Void, any Error>] = []
    var failure: (any Error)?
  }

  static let highWater = 1 << 20
  private let state = MeshMutex(State())

  init() {}

  /// The error writes fail with, if the stream failed.
  var failure: (any Error)? { self.state.withLock { $0.failure } }

  /// `count` more bytes are queued; true if the writer should wait for room (``waitForRoom()``).
  ///
  /// - Throws: the stream's failure.
  func queue(_ count: Int) throws -> Bool {
    try self.state.withLock { state throws -> Bool in
      if let failure = state.failure { throw failure }
      state.queuedBytes += count
      return state.queuedBytes > Self.highWater
    }
  }

  /// Waits until the queued bytes are at most the high-water mark, or the stream fails.
  func waitForRoom() async throws {
    try await withCheckedThrowingContinuation {
      (continuation: CheckedContinuation<Void, any Error>) in
      let immediate = self.state.withLock { state -> Result<Void, any Error>? in
        if let failure = state.failure { return .failure(failure) }
        if state.queuedBytes <= Self.highWater { return .success(()) }
        state.waiters.append(continuation)
        return nil
      }
      if let immediate { continuation.resume(with: immediate) }
    }
  }

  /// `count` queued bytes were framed (on the loop): a waiting writer goes on if there is room.
  func framed(_ count: Int) {
    let waiters = self.state.withLock { state -> [CheckedContinuation<Void, any Error>] in
      state.queuedBytes -= count
      guard state.queuedBytes <= Self.highWater, !state.waiters.isEmpty else { return [] }
      defer { state.waiters.removeAll() }
      return state.waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  /// The stream failed: writes throw `error` from now on (the first failure stays).
  func fail(_ error: any Error) {
    let waiters = self.state.withLock { state -> [CheckedContinuation<Void, any Error>] in
      if state.failure == nil { state.failure = error }
      defer { state.waiters.removeAll() }
      return state.waiters
    }
    for waiter in waiters { waiter.resume(throwing: error) }
  }
}
