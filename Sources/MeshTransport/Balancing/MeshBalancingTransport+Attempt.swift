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

internal import CoreMetrics
internal import GRPCCore
internal import MeshCore
internal import MeshDiscovery
internal import Tracing

// One attempt: its stream, the exchange of request and response, and its accounting.
extension MeshBalancingTransport {
  /// Runs one attempt on `picked`: replays the request, and passes the response on unless it is
  /// a failure another attempt may fix.
  func runAttempt(
    _ call: MeshCall<Bytes, Clock.Instant>,
    number: Int,
    transparent: Bool,
    on picked: Picked,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions
  ) async -> MeshAttemptOutcome {
    let started = self.clock.now
    let observer = MeshAttemptObserver<Bytes>(
      span: call.trace?.startAttempt(
        number: number,
        transparent: transparent,
        endpoint: picked.endpoint
      )
    )
    call.metrics?.attemptStarted.increment()
    // Fired when the attempt is abandoned at its per-try timeout; only a subchannel whose
    // stream outlives a failed request needs the attempt cancelled.
    let abandoned = self.factory.requestFailureEndsResponse ? nil : MeshSignal()
    let perTryTimer = self.armPerTryTimeout(
      plan: plan,
      call: call,
      endpoint: picked.endpoint,
      observer: observer,
      signal: abandoned
    )
    defer {
      if let perTryTimer { self.timers.disarm(perTryTimer) }
    }
    var adjusted = options
    // The transport waits for readiness itself (bounded by the deadline); a subchannel that is
    // not ready fails the attempt at once, so that another endpoint can take it.
    adjusted.waitForReady = false
    let attemptOptions = adjusted
    // A local function, not a closure value: called directly (no per-try timeout, the common
    // case) it allocates no context on this per-attempt path.
    @Sendable func run() async -> MeshAttemptOutcome {
      var opened = false
      do {
        return try await picked.connection.subchannel.withStream(
          descriptor: descriptor,
          options: attemptOptions
        ) { stream, _ in
          opened = true
          if let abandonment = observer.attach(stream.outbound) {
            // The per-try timeout passed while the stream was opening: nothing would fail it
            // now, and a server that never answers would hold the attempt for ever.
            await stream.outbound.finish(throwing: abandonment)
            return .failed(abandonment, pushback: .none)
          }
          return await self.exchange(
            call,
            number: number,
            stream: stream,
            observer: observer,
            plan: plan,
            picked: picked,
            started: started
          )
        }
      } catch {
        let described = self.attemptError(error, on: picked, observer: observer)
        return opened ? .failed(described, pushback: .none) : .notOpened(described)
      }
    }
    let outcome: MeshAttemptOutcome
    if let abandoned, perTryTimer != nil {
      // An abandoned attempt's stream is cancelled as well as failed: a subchannel that does not
      // end the response when the request fails (grpc-swift's in-process transport) would
      // otherwise hold the attempt until the server answers. HTTP/2 subchannels skip the extra
      // task: their stream reset ends the response.
      let result = MeshMutex<MeshAttemptOutcome?>(nil)
      await abandoned.cancelling {
        let outcome = await run()
        result.withLock { $0 = outcome }
      }
      outcome =
        result.withLock { $0 }
        ?? .failed(
          observer.snapshot.abandonment
            ?? RPCError(code: .unavailable, message: "The attempt was abandoned."),
          pushback: .none
        )
    } else {
      outcome = await run()
    }
    self.release(
      picked,
      started: started,
      observer: observer,
      outcome: outcome,
      metrics: call.metrics
    )
    return outcome
  }

  /// Arms the attempt's per-try timeout, if it has one that comes before the RPC's deadline:
  /// when it passes before the response starts, the attempt's stream is failed (and `signal`
  /// fired). Returns the timer, to disarm when the attempt ends.
  func armPerTryTimeout(
    plan: Plan,
    call: MeshCall<Bytes, Clock.Instant>,
    endpoint: MeshEndpoint,
    observer: MeshAttemptObserver<Bytes>,
    signal: MeshSignal?
  ) -> UInt64? {
    guard let perTryTimeout = plan.perTryTimeout, plan.maxAttempts > 1 else { return nil }
    let perTryDeadline = self.clock.now.advanced(by: perTryTimeout)
    guard call.deadline.map({ perTryDeadline < $0 }) ?? true else { return nil }
    return self.timers.arm(at: perTryDeadline) {
      // A timer action must not block the timer runner, and failing the stream is async:
      // this task only finishes the attempt's request stream and fires the signal.
      Task {
        let error = RPCError(
          code: .unavailable,
          message: "No response from \(endpoint) within the per-try timeout of "
            + "\(MeshGoDuration.format(perTryTimeout))."
        )
        if await observer.abandonAtPerTryTimeout(error: error) {
          signal?.fire()
          let fire = self.state.withLock { $0.machine.abandonedAtPerTryTimeout() }
          for observer in fire { observer.fire() }
        }
      }
    }
  }

  /// The attempt's error as the caller should read it: which endpoint, and why its connection
  /// failed where that is known.
  func attemptError(
    _ error: any Error,
    on picked: Picked,
    observer: MeshAttemptObserver<Bytes>
  ) -> RPCError {
    if let abandonment = observer.snapshot.abandonment { return abandonment }
    let rpcError = RPCError(meshFailure: error)
    guard rpcError.code == .unavailable else { return rpcError }
    let reason =
      self.factory.connectionFailure(for: picked.endpoint).map { "\($0)" }
      ?? self.state.withLock { $0.machine.lastError(of: picked.id) }
    var message = "\(picked.endpoint): \(rpcError.message)"
    if let reason, !message.contains(reason) { message += " (\(reason))" }
    return RPCError(code: .unavailable, message: message, cause: rpcError)
  }

  /// Sends the request on the attempt's stream and reads the response's start: a failure
  /// another attempt may fix ends the attempt; anything else commits it and passes it on.
  ///
  /// A committed attempt is accounted for before its response ends: when the caller has its
  /// status, the endpoint's load and outlier detection already include it.
  private func exchange(
    _ call: MeshCall<Bytes, Clock.Instant>,
    number: Int,
    stream: RPCStream<Factory.Subchannel.Inbound, Factory.Subchannel.Outbound>,
    observer: MeshAttemptObserver<Bytes>,
    plan: Plan,
    picked: Picked,
    started: Clock.Instant
  ) async -> MeshAttemptOutcome {
    func settle() {
      self.release(
        picked,
        started: started,
        observer: observer,
        outcome: .committed,
        metrics: call.metrics
      )
    }
    guard let reader = call.log.addReader() else {
      return .failed(
        RPCError(code: .unavailable, message: "The request can no longer be replayed."),
        pushback: .stop
      )
    }
    let outbound = self.attemptOutbound(
      stream.outbound,
      call: call,
      number: number,
      observer: observer
    )
    return await withTaskGroup(of: Void.self) { pump in
      defer {
        pump.cancelAll()
        call.log.removeReader(reader)
      }
      pump.addTask {
        do {
          while let part = try await call.log.next(reader) {
            try await outbound.write(part)
          }
          await outbound.finish()
        } catch is CancellationError {
          // The attempt ended first (it failed, or another committed).
        } catch {
          await outbound.finish(throwing: error)
        }
      }
      var inbound = MeshObservedInbound(
        base: RPCAsyncSequence(wrapping: stream.inbound),
        observer: observer
      ).makeAsyncIterator()
      let first: RPCResponsePart<Bytes>?
      do {
        first = try await inbound.next()
      } catch {
        let rpcError = RPCError(meshFailure: error)
        if Self.transparentlyRetryable(rpcError, call: call, observer: observer) {
          return .notOpened(rpcError)
        }
        if self.mayRetry(rpcError.code, number: number, plan: plan, call: call) {
          return .failed(rpcError, pushback: .none)
        }
        guard call.commit(number) else { return .lost }
        call.log.commit(reader)
        settle()
        call.response.finish(throwing: rpcError)
        return .committed
      }
      if let abandonment = observer.snapshot.abandonment {
        // Abandoned at its per-try timeout before anything arrived.
        return .failed(abandonment, pushback: .none)
      }
      if case .status(let status, _)? = first, status.code != .ok,
        self.mayRetry(
          RPCError.Code(status.code) ?? .unknown,
          number: number,
          plan: plan,
          call: call
        )
      {
        let seen = observer.snapshot
        let pushback: MeshPushback =
          seen.pushbackStops ? .stop : (seen.pushback.map { .retryAfter($0) } ?? .none)
        if pushback != .stop {
          return .failed(
            RPCError(code: RPCError.Code(status.code) ?? .unknown, message: status.message),
            pushback: pushback
          )
        }
      }
      guard call.commit(number) else { return .lost }
      call.log.commit(reader)
      guard let first else {
        settle()
        call.response.finish()
        return .committed
      }
      var next = first
      do {
        // The status is the last part: the attempt is accounted for before it is passed on.
        while true {
          if case .status = next { settle() }
          guard await call.response.send(next) else { return .committed }
          guard let part = try await inbound.next() else { break }
          next = part
        }
        settle()
        call.response.finish()
      } catch {
        settle()
        call.response.finish(throwing: error)
      }
      return .committed
    }
  }

  /// The attempt's request stream as the mesh writes it: its headers rewritten (the attempt's
  /// number, the time left, the trace context), its messages counted with metrics on.
  func attemptOutbound(
    _ base: RPCWriter<RPCRequestPart<Bytes>>.Closable,
    call: MeshCall<Bytes, Clock.Instant>,
    number: Int,
    observer: MeshAttemptObserver<Bytes>
  ) -> MeshRewritingOutbound<Bytes> {
    var remaining: (@Sendable () -> Duration)?
    if let deadline = call.deadline {
      let clock = self.clock
      remaining = { clock.now.duration(to: deadline) }
    }
    return MeshRewritingOutbound(
      base: base,
      previousAttempts: number,
      remaining: remaining,
      counter: call.metrics == nil ? nil : observer,
      tracer: call.trace?.tracer,
      span: observer.span
    )
  }

  /// Whether an attempt that failed with `error` before its response started may go again at
  /// once whatever the retry policy: the server never processed it, and the request can still be
  /// replayed (gRFC A6's transparent retry; the retry loop bounds how often).
  static func transparentlyRetryable(
    _ error: RPCError,
    call: MeshCall<Bytes, Clock.Instant>,
    observer: MeshAttemptObserver<Bytes>
  ) -> Bool {
    error.meshUnprocessed && observer.snapshot.abandonment == nil && !Task.isCancelled
      && call.log.isReplayable
  }

  /// Whether a failure with `code` on attempt `number` may be followed by another attempt.
  func mayRetry(
    _ code: RPCError.Code,
    number: Int,
    plan: Plan,
    call: MeshCall<Bytes, Clock.Instant>
  ) -> Bool {
    guard plan.retryableCodes.contains(Status.Code(code)), call.log.isReplayable else {
      return false
    }
    // A hedge's non-fatal failure never ends the RPC by itself: the hedging loop fails it once
    // no attempt is left.
    return plan.hedgingDelay != nil || number + 1 < plan.maxAttempts
  }

  /// A backoff ceiling grown by `multiplier`, at most `limit` (computed in seconds, so that no
  /// multiplier can overflow a `Duration`).
  static func grow(_ ceiling: Duration, by multiplier: Double, upTo limit: Duration) -> Duration {
    let (seconds, attoseconds) = ceiling.components
    let grown = (Double(seconds) + Double(attoseconds) / 1e18) * multiplier
    let (limitSeconds, limitAttoseconds) = limit.components
    guard grown.isFinite, grown < Double(limitSeconds) + Double(limitAttoseconds) / 1e18 else {
      return limit
    }
    return (try? MeshInput.duration(seconds: grown, field: "backoff")) ?? limit
  }

  /// Accounts for the end of an attempt on `picked`, once: its load, and outlier detection.
  func release(
    _ picked: Picked,
    started: Clock.Instant,
    observer: MeshAttemptObserver<Bytes>,
    outcome: MeshAttemptOutcome,
    metrics: MeshClientMetrics.Method?
  ) {
    guard let seen = observer.claimRelease() else { return }
    let end = self.clock.now
    var endpointFailed = false
    let perTryTimedOut = seen.abandonment != nil
    if perTryTimedOut {
      endpointFailed = true
    } else if seen.status != nil || seen.transportError != nil {
      // Judged by how the stream ended when it ended, not by whether the task is cancelled now:
      // once the caller has the status it moves on, and that cancels this task.
      if seen.endedAfterCancellation {
        // The RPC ended (its deadline, the caller): not the endpoint's fault.
      } else if let status = seen.status {
        endpointFailed = Self.endpointFailureCodes.contains(status.code)
      } else if let error = seen.transportError {
        // A stream the server refused unprocessed (its GOAWAY) is not the endpoint failing.
        endpointFailed =
          error.code != .cancelled && error.code != .deadlineExceeded && !error.meshUnprocessed
      }
    } else if Task.isCancelled {
      // The RPC ended (its deadline, the caller) before the stream did: not the endpoint's fault.
    } else {
      switch outcome {
      case .notOpened(let error), .failed(let error, _):
        endpointFailed = error.code == .unavailable && !error.meshUnprocessed
      case .committed, .lost:
        break
      }
    }
    let effects = self.state.withLock {
      $0.machine.release(
        picked,
        latency: started.duration(to: end),
        endpointFailed: endpointFailed,
        perTryTimedOut: perTryTimedOut,
        now: end
      )
    }
    self.perform(effects)
    let status = Self.attemptStatus(seen, outcome: outcome)
    metrics?.attemptEnded(
      status,
      duration: started.duration(to: end),
      sent: seen.sentBytes,
      received: seen.receivedBytes
    )
    if let span = observer.span {
      for case .ejected(let id, _, let reason) in effects.changes where id == picked.id {
        span.addEvent(
          SpanEvent(
            name: "mesh.outlier_detection.ejected",
            attributes: ["mesh.endpoint": .string(id), "mesh.reason": .string(reason.rawValue)]
          )
        )
      }
      MeshCallTrace.finish(
        span,
        code: status,
        message: span.isRecording ? Self.attemptMessage(seen, outcome: outcome) : ""
      )
    }
  }

  /// What ended an attempt, for its span: the status's message, else the error's.
  private static func attemptMessage(
    _ seen: MeshAttemptObserver<Bytes>.State,
    outcome: MeshAttemptOutcome
  ) -> String {
    if let status = seen.status { return status.message }
    if let error = seen.abandonment ?? seen.transportError { return error.message }
    switch outcome {
    case .notOpened(let error), .failed(let error, _): return error.message
    case .committed: return ""
    case .lost: return "Another attempt answered first."
    }
  }

  /// How an attempt ended, as gRFC A66 labels it: the status it received, else the error that
  /// ended it.
  private static func attemptStatus(
    _ seen: MeshAttemptObserver<Bytes>.State,
    outcome: MeshAttemptOutcome
  ) -> Status.Code {
    if let abandonment = seen.abandonment { return Status.Code(abandonment.code) }
    if let status = seen.status { return status.code }
    if let error = seen.transportError { return Status.Code(error.code) }
    switch outcome {
    case .notOpened(let error), .failed(let error, _): return Status.Code(error.code)
    case .lost: return .cancelled
    // Committed but no status seen: the caller went away, or the RPC ended at its deadline.
    case .committed: return .cancelled
    }
  }

  /// Codes that count against an endpoint in outlier detection.
  private static var endpointFailureCodes: Set<Status.Code> {
    [.unavailable, .internalError, .unknown, .dataLoss]
  }
}
