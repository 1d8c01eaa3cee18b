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
private import MeshCore

/// The request parts of one RPC: written once by the caller, read by each of its attempts.
///
/// While the RPC may still be retried or hedged, every part is kept so that a new attempt can
/// replay the request from its start. Past `limit` parts, or once an attempt commits, it stops
/// being replayable: parts every reader has read are dropped, and the writer waits while readers
/// are more than `limit` parts behind (the request's backpressure).
final class MeshRequestLog<Bytes: GRPCContiguousBytes & Sendable>: Sendable {
  private struct Reader {
    var position = 0
    var waiting: CheckedContinuation<RPCRequestPart<Bytes>?, any Error>?
  }

  private struct State {
    var parts: [RPCRequestPart<Bytes>] = []
    /// The index in the whole request of `parts[0]`.
    var base = 0
    var finished = false
    var failure: (any Error)?
    var replayable = true
    /// An attempt has read from the start: before that, nothing may be dropped.
    var started = false
    var readers: [Int: Reader] = [:]
    var nextReaderID = 0
    var writer: CheckedContinuation<Void, any Error>?
    var closed: (any Error)?
    /// The caller writes to the first attempt's stream itself (``beginDirect()``): the log only
    /// records what it writes, for a retry to replay, and never holds the writer back.
    var direct = false

    var end: Int { self.base + self.parts.count }

    /// Drops what no reader needs any more; returns the writer to wake, if it may go on.
    mutating func trim(limit: Int) -> CheckedContinuation<Void, any Error>? {
      guard !self.replayable, self.started else { return nil }
      let oldest = self.readers.values.lazy.map(\.position).min() ?? self.end
      if oldest > self.base {
        self.parts.removeFirst(oldest - self.base)
        self.base = oldest
      }
      guard self.parts.count <= limit, let writer = self.writer else { return nil }
      self.writer = nil
      return writer
    }
  }

  private let state = MeshMutex(State())
  let limit: Int

  init(limit: Int) {
    self.limit = limit
  }

  /// Whether a new attempt can still read the request from its start.
  var isReplayable: Bool {
    self.state.withLock { $0.replayable }
  }

  // MARK: - The caller's side

  /// Records the request's parts while the caller writes them to the first attempt's stream
  /// itself, until ``beginReplay()`` or ``commitDirect()``.
  func beginDirect() {
    self.state.withLock { $0.direct = true }
  }

  /// The first attempt written directly failed: a retry replays the request from the log, and
  /// the caller's further parts go to the log alone.
  func beginReplay() {
    self.state.withLock { $0.direct = false }
  }

  /// The attempt written directly is the RPC's: nothing is recorded any more.
  func commitDirect() {
    self.state.withLock { state in
      state.replayable = false
      state.parts.removeAll()
    }
  }

  /// Adds `part` to the request. Returns true when the caller is to write it to the first
  /// attempt's stream too (``beginDirect()``).
  @discardableResult
  func write(_ part: RPCRequestPart<Bytes>) async throws -> Bool {
    let (wake, mustWait) = try self.state.withLock {
      state throws -> (
        [(CheckedContinuation<RPCRequestPart<Bytes>?, any Error>, RPCRequestPart<Bytes>)], Bool?
      ) in
      if let closed = state.closed { throw closed }
      guard !state.finished else {
        throw RPCError(code: .internalError, message: "The request was written after it finished.")
      }
      if state.direct {
        // Recorded while a retry could replay it; past the limit the request is dropped (a
        // failure of the attempt then ends the RPC).
        if state.replayable {
          state.parts.append(part)
          if state.parts.count > self.limit {
            state.replayable = false
            state.parts.removeAll()
          }
        }
        return ([], nil)
      }
      state.parts.append(part)
      if state.replayable && state.parts.count > self.limit {
        state.replayable = false
      }
      var wake: [(CheckedContinuation<RPCRequestPart<Bytes>?, any Error>, RPCRequestPart<Bytes>)] =
        []
      for (id, reader) in state.readers {
        guard let waiting = reader.waiting else { continue }
        state.readers[id]?.waiting = nil
        state.readers[id]?.position += 1
        wake.append((waiting, state.parts[reader.position - state.base]))
      }
      _ = state.trim(limit: self.limit)
      return (wake, !state.replayable && state.parts.count > self.limit)
    }
    guard let mustWait else { return true }
    for (reader, part) in wake { reader.resume(returning: part) }
    if mustWait { try await self.waitForReaders() }
    return false
  }

  private func waitForReaders() async throws {
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation {
        (continuation: CheckedContinuation<Void, any Error>) in
        let now = self.state.withLock { state -> Result<Void, any Error>? in
          if let closed = state.closed { return .failure(closed) }
          if Task.isCancelled { return .failure(CancellationError()) }
          guard state.parts.count > self.limit else { return .success(()) }
          state.writer = continuation
          return nil
        }
        if let now { continuation.resume(with: now) }
      }
    } onCancel: {
      let writer = self.state.withLock { state in
        defer { state.writer = nil }
        return state.writer
      }
      writer?.resume(throwing: CancellationError())
    }
  }

  /// The request is complete (`error` nil) or was abandoned by the caller. Returns true when
  /// the caller is to end the first attempt's stream too (``beginDirect()``).
  @discardableResult
  func finish(throwing error: (any Error)? = nil) -> Bool {
    var direct = false
    let wake = self.state.withLock {
      state -> [CheckedContinuation<RPCRequestPart<Bytes>?, any Error>] in
      direct = state.direct && state.closed == nil
      guard !state.finished else { return [] }
      state.finished = true
      state.failure = error
      var wake: [CheckedContinuation<RPCRequestPart<Bytes>?, any Error>] = []
      for (id, reader) in state.readers {
        guard let waiting = reader.waiting else { continue }
        state.readers[id]?.waiting = nil
        wake.append(waiting)
      }
      return wake
    }
    for reader in wake {
      if let error { reader.resume(throwing: error) } else { reader.resume(returning: nil) }
    }
    return direct
  }

  /// Ends the RPC for the writer and every reader: their waits throw `error`.
  func close(with error: any Error) {
    let (readers, writer) = self.state.withLock {
      state -> (
        [CheckedContinuation<RPCRequestPart<Bytes>?, any Error>],
        CheckedContinuation<Void, any Error>?
      ) in
      guard state.closed == nil else { return ([], nil) }
      state.closed = error
      let readers = state.readers.values.compactMap(\.waiting)
      state.readers.removeAll()
      state.replayable = false
      state.parts.removeAll()
      defer { state.writer = nil }
      return (readers, state.writer)
    }
    for reader in readers { reader.resume(throwing: error) }
    writer?.resume(throwing: error)
  }

  // MARK: - The attempts' side

  /// A reader positioned at the request's start; nil if the start is gone (not replayable).
  func addReader() -> Int? {
    self.state.withLock { state in
      guard state.closed == nil, state.base == 0, state.replayable || state.readers.isEmpty else {
        return nil
      }
      state.nextReaderID += 1
      state.started = true
      state.readers[state.nextReaderID] = Reader()
      return state.nextReaderID
    }
  }

  /// The reader's next part; nil at the end of the request.
  func next(_ id: Int) async throws -> RPCRequestPart<Bytes>? {
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation {
        (continuation: CheckedContinuation<RPCRequestPart<Bytes>?, any Error>) in
        let (now, writer) = self.state.withLock {
          state -> (
            Result<RPCRequestPart<Bytes>?, any Error>?, CheckedContinuation<Void, any Error>?
          ) in
          if let closed = state.closed { return (.failure(closed), nil) }
          guard let reader = state.readers[id] else { return (.failure(CancellationError()), nil) }
          if reader.position < state.end {
            let part = state.parts[reader.position - state.base]
            state.readers[id]?.position += 1
            return (.success(part), state.trim(limit: self.limit))
          }
          if state.finished {
            return (state.failure.map { .failure($0) } ?? .success(nil), nil)
          }
          if Task.isCancelled { return (.failure(CancellationError()), nil) }
          state.readers[id]?.waiting = continuation
          return (nil, nil)
        }
        writer?.resume()
        if let now { continuation.resume(with: now) }
      }
    } onCancel: {
      self.removeReader(id)
    }
  }

  /// The reader stops reading (its attempt ended).
  func removeReader(_ id: Int) {
    let (waiting, writer) = self.state.withLock {
      state -> (
        CheckedContinuation<RPCRequestPart<Bytes>?, any Error>?,
        CheckedContinuation<Void, any Error>?
      ) in
      guard let reader = state.readers.removeValue(forKey: id) else { return (nil, nil) }
      return (reader.waiting, state.trim(limit: self.limit))
    }
    waiting?.resume(throwing: CancellationError())
    writer?.resume()
  }

  /// The reader's attempt is the RPC's: nothing is replayed any more.
  func commit(_ id: Int) {
    let writer = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
      state.replayable = false
      return state.trim(limit: self.limit)
    }
    writer?.resume()
  }
}
