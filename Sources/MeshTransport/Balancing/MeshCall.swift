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
internal import Tracing

/// One RPC on the balancing transport: the request its attempts replay, the response the
/// committed attempt passes on, and how the RPC ends.
final class MeshCall<Bytes: GRPCContiguousBytes & Sendable, Instant: InstantProtocol>: Sendable,
  MeshResponseEnding
{
  let log: MeshRequestLog<Bytes>
  let response = MeshResponseChannel<Bytes>()
  let start: Instant
  let deadline: Instant?
  /// The instruments of the call's method; nil without metrics.
  let metrics: MeshClientMetrics.Method?
  /// When the call started, for its metrics (on the continuous clock, whatever the transport's).
  let measuredFrom: ContinuousClock.Instant?
  /// The call's spans; nil without tracing.
  let trace: MeshCallTrace?

  private struct State {
    var committed: Int?
    var ended = false
    /// The error the RPC ended with (``fail(_:)``, ``abort(_:)``).
    var endError: RPCError?
    /// Fails the stream of the attempt the caller writes and reads directly, when the RPC is
    /// aborted (its deadline, its cancellation): only the stream's end wakes the caller there.
    var direct: MeshAttemptObserver<Bytes>?
    var lastFailure: RPCError?
    var counts = MeshCallCounts()
    var measured = false
  }

  private let state = MeshMutex(State())

  init(
    start: Instant,
    deadline: Instant?,
    bufferLimit: Int,
    metrics: MeshClientMetrics.Method? = nil,
    measuredFrom: ContinuousClock.Instant? = nil,
    trace: MeshCallTrace? = nil
  ) {
    self.start = start
    self.deadline = deadline
    self.log = MeshRequestLog(limit: bufferLimit)
    self.metrics = metrics
    self.measuredFrom = measuredFrom
    self.trace = trace
  }

  /// Another attempt follows a failed one after `delay` (gRFC A96's retries and retry delay).
  func countRetry(after delay: Duration) {
    let retries = self.state.withLock {
      $0.counts.retries += 1
      $0.counts.retryDelay += delay
      return $0.counts.retries
    }
    self.trace?.event(
      "mesh.retry",
      [
        "mesh.retry.number": .int64(Int64(retries)),
        "mesh.retry.delay_ms": .int64(MeshInput.milliseconds(clamping: delay)),
      ]
    )
  }

  /// An attempt whose stream never opened goes to another endpoint at once.
  func countTransparentRetry(after error: RPCError) {
    self.state.withLock { $0.counts.transparentRetries += 1 }
    self.trace?.event("mesh.transparent_retry", ["mesh.reason": .string(error.message)])
  }

  /// Another hedged attempt starts.
  func countHedge() {
    let hedges = self.state.withLock {
      $0.counts.hedges += 1
      return $0.counts.hedges
    }
    self.trace?.event("mesh.hedge", ["mesh.hedge.number": .int64(Int64(hedges))])
  }

  /// A retry or hedge refused (by a breaker or the retry budget): the call fails with `error`.
  func refused(_ error: RPCError) {
    self.trace?.event("mesh.retry.refused", ["mesh.reason": .string(error.message)])
  }

  /// Records the call's end in its metrics and span, once: the first status the caller reads (or
  /// CANCELLED, for a caller that stopped reading before the end).
  func responseEnded(_ code: Status.Code, message: String) {
    self.trace?.end(code, message: message)
    guard let metrics = self.metrics, let start = self.measuredFrom else { return }
    let counts = self.state.withLock { state -> MeshCallCounts? in
      guard !state.measured else { return nil }
      state.measured = true
      return state.counts
    }
    guard let counts else { return }
    metrics.callEnded(code, duration: start.duration(to: .now), counts: counts)
  }

  /// The attempt becomes the RPC's if none has; false if another already is.
  func commit(_ attempt: Int) -> Bool {
    self.state.withLock { state in
      guard !state.ended, state.committed == nil else { return state.committed == attempt }
      state.committed = attempt
      return true
    }
  }

  var isCommitted: Bool { self.state.withLock { $0.committed != nil } }

  func recordFailure(_ error: RPCError) {
    self.state.withLock { $0.lastFailure = error }
  }

  var lastFailure: RPCError? { self.state.withLock { $0.lastFailure } }

  /// Ends the RPC with `error` unless an attempt committed: the caller reads `error`, and
  /// writes to the request fail.
  func fail(_ error: RPCError) {
    self.end(error, evenIfCommitted: false)
  }

  /// Ends the RPC with `error` whatever happened so far (its deadline passed, the RPC being
  /// served was cancelled).
  func abort(_ error: RPCError) {
    self.end(error, evenIfCommitted: true)
  }

  /// The error the RPC was aborted or failed with, once it has been.
  var endError: RPCError? { self.state.withLock { $0.endError } }

  /// The caller writes and reads the attempt's stream itself: `observer` fails it when the
  /// RPC is aborted. Returns false if it already has been.
  func attachDirect(_ observer: MeshAttemptObserver<Bytes>) -> Bool {
    self.state.withLock { state in
      guard !state.ended else { return false }
      state.direct = observer
      return true
    }
  }

  private func end(_ error: RPCError, evenIfCommitted: Bool) {
    let (proceed, direct) = self.state.withLock {
      state -> (Bool, MeshAttemptObserver<Bytes>?) in
      guard !state.ended, evenIfCommitted || state.committed == nil else { return (false, nil) }
      state.ended = true
      state.endError = error
      defer { state.direct = nil }
      return (true, state.direct)
    }
    guard proceed else { return }
    self.response.fail(error)
    self.log.close(with: error)
    if let direct {
      // Ending the stream is async and this runs in a timer's action or a cancellation
      // handler, which must not wait: the task only fails the stream (a reset, at once), and
      // the caller's read then ends with `error`.
      Task { await direct.failStream(error) }
    }
  }
}

/// How one attempt ended.
enum MeshAttemptOutcome: Sendable {
  /// Its response went to the caller.
  case committed
  /// Another attempt's response went to the caller (hedging).
  case lost
  /// The stream never opened: nothing was sent.
  case notOpened(RPCError)
  /// It failed before the caller saw anything; `pushback` is the server's say on retrying.
  case failed(RPCError, pushback: MeshPushback)
}

/// What happened in a hedged RPC.
enum MeshHedgeEvent: Sendable {
  case ended(MeshAttemptOutcome)
  case hedgeDue
}

/// The endpoints a hedged RPC's attempts used.
final class MeshUsedEndpoints: Sendable {
  private let ids = MeshMutex<Set<String>>([])

  var snapshot: Set<String> { self.ids.withLock { $0 } }

  func insert(_ id: String) {
    self.ids.withLock { _ = $0.insert(id) }
  }
}

/// The server's `grpc-retry-pushback-ms`.
enum MeshPushback: Sendable, Equatable {
  case none
  case retryAfter(Duration)
  case stop
}
