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
internal import Logging
internal import MeshCore
internal import MeshDiscovery

/// One RPC on the balancing transport: the request its attempts replay, the response the
/// committed attempt passes on, and how the RPC ends.
final class MeshCall<Bytes: GRPCContiguousBytes & Sendable>: Sendable {
  let log: MeshRequestLog<Bytes>
  let response = MeshResponseChannel<Bytes>()
  let start: ContinuousClock.Instant
  let deadline: ContinuousClock.Instant?

  private struct State {
    var committed: Int?
    var ended = false
    var lastFailure: RPCError?
  }

  private let state = MeshMutex(State())

  init(start: ContinuousClock.Instant, deadline: ContinuousClock.Instant?, bufferLimit: Int) {
    self.start = start
    self.deadline = deadline
    self.log = MeshRequestLog(limit: bufferLimit)
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

  private func end(_ error: RPCError, evenIfCommitted: Bool) {
    let proceed = self.state.withLock { state -> Bool in
      guard !state.ended, evenIfCommitted || state.committed == nil else { return false }
      state.ended = true
      return true
    }
    guard proceed else { return }
    self.response.fail(error)
    self.log.close(with: error)
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

/// What an RPC waiting for an endpoint does next.
enum MeshPickDecision {
  case pick
  case wait(UInt64)
  case fail(RPCError)
}

/// The server's `grpc-retry-pushback-ms`.
enum MeshPushback: Sendable, Equatable {
  case none
  case retryAfter(Duration)
  case stop
}

extension MeshBalancingTransport {
  /// The endpoint an attempt runs on.
  struct Picked {
    var id: String
    var endpoint: MeshEndpoint
    var connection: Int
    var generation: MeshSignal
    var subchannel: Factory.Subchannel
    var started: ContinuousClock.Instant
  }

  /// What one RPC does: its attempts and how they are spread.
  struct Plan: Sendable {
    var maxAttempts = 1
    /// Codes after which another attempt may follow.
    var retryableCodes: Set<Status.Code> = []
    var perTryTimeout: Duration?
    /// Hedging: the wait before each further attempt; nil for retries.
    var hedgingDelay: Duration?
    var initialBackoff = Duration.zero
    var maxBackoff = Duration.zero
    var backoffMultiplier = 1.0
    var waitForReady = false
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    let start = ContinuousClock.now
    let method = self.resilience.policy(for: descriptor)
    let deadline = try self.deadline(method: method, options: options, start: start)
    let plan = self.plan(method: method, options: options)
    try self.admit(retry: nil, now: start)
    let call = MeshCall<Bytes>(start: start, deadline: deadline, bufferLimit: 64)
    // A caller's own timeout is also enforced by grpc-swift's executor, at the same instant
    // (measured a moment earlier), with a bare "RPC timed out before completing". The mesh ends
    // such an RPC a few milliseconds first, so that the caller reads what it waited for.
    let expiry = deadline.map { options.timeout == nil ? $0 : $0.advanced(by: .milliseconds(-5)) }
    let timer = expiry.map { expiry in
      self.timers.arm(at: expiry) { [self] in
        call.abort(self.deadlineError(call))
      }
    }
    defer {
      if let timer { self.timers.disarm(timer) }
    }
    let context = ClientContext(
      descriptor: descriptor,
      remotePeer: "mesh:\(self.service)",
      localPeer: "mesh"
    )
    let stream = RPCStream(
      descriptor: descriptor,
      inbound: RPCAsyncSequence<RPCResponsePart<Bytes>, any Error>(
        wrapping: MeshResponseSequence(channel: call.response)
      ),
      outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable(
        wrapping: MeshRequestWriter(log: call.log)
      )
    )
    // The attempts run in a child task, so that ending the RPC (its deadline, the caller's
    // cancellation, the response's end) cancels whatever they wait for: an endpoint, a
    // connection grpc-swift is still making, a backoff.
    return try await withRPCCancellationHandler {
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          await self.drive(call, plan: plan, descriptor: descriptor, options: options)
        }
        defer {
          call.response.consumerFinished()
          group.cancelAll()
        }
        return try await closure(stream, context)
      }
    } onCancelRPC: {
      call.abort(RPCError(code: .cancelled, message: "The RPC being served was cancelled."))
    }
  }

  /// The RPC's deadline: the caller's timeout, else the method's or the target's default; the
  /// method's when the caller's is longer; a propagated deadline less the margin when sooner.
  private func deadline(
    method: MeshMethodPolicy,
    options: CallOptions,
    start: ContinuousClock.Instant
  ) throws(RPCError) -> ContinuousClock.Instant? {
    var timeout = options.timeout ?? method.timeout ?? self.defaultTimeout
    if let methodTimeout = method.timeout, let current = timeout, current > methodTimeout {
      timeout = methodTimeout
    }
    var deadline = timeout.map {
      start.advanced(by: MeshInput.clamp($0, to: .zero...MeshGoDuration.max))
    }
    if let propagated = MeshPropagatedDeadline.current {
      let limit = propagated.advanced(by: .zero - self.resilience.propagationMargin)
      guard limit > start else {
        throw RPCError(
          code: .deadlineExceeded,
          message: """
            The deadline of the RPC being served has passed (less the \
            \(self.resilience.propagationMargin) margin); '\(self.service)' was not called.
            """
        )
      }
      deadline = deadline.map { min($0, limit) } ?? limit
    }
    if let deadline, deadline <= start {
      throw RPCError(
        code: .deadlineExceeded,
        message: "The RPC's timeout is zero; '\(self.service)' was not called."
      )
    }
    return deadline
  }

  private func plan(method: MeshMethodPolicy, options: CallOptions) -> Plan {
    var plan = Plan()
    plan.waitForReady = options.waitForReady ?? false
    // A grpc-swift execution policy in the call's options: its executor retries, calling the
    // transport once per attempt.
    guard options.executionPolicy == nil else { return plan }
    if let retry = method.retry {
      plan.maxAttempts = retry.maxAttempts
      plan.retryableCodes = retry.retryableStatusCodes
      plan.perTryTimeout = retry.perTryTimeout
      plan.initialBackoff = retry.initialBackoff
      plan.maxBackoff = retry.maxBackoff
      plan.backoffMultiplier = retry.backoffMultiplier
    } else if let hedging = method.hedging {
      plan.maxAttempts = hedging.maxAttempts
      plan.retryableCodes = hedging.nonFatalStatusCodes
      plan.hedgingDelay = hedging.hedgingDelay
    }
    return plan
  }

  /// The error of an RPC whose deadline passed: what it was waiting for, and the last attempt's
  /// failure where there was one.
  private func deadlineError(_ call: MeshCall<Bytes>) -> RPCError {
    let elapsed = call.start.duration(to: call.deadline ?? .now)
    var message =
      "The RPC's deadline (\(MeshGoDuration.format(elapsed))) passed calling '\(self.service)'"
    if let last = call.lastFailure {
      message += "; the last attempt failed: \(last.code): \(last.message)"
    }
    let (unready, discoveryError) = self.state.withLock {
      ($0.unreadyReasons, $0.hasEndpoints ? nil : $0.stats.discoveryError)
    }
    if !unready.isEmpty { message += "; endpoints not ready: \(unready)" }
    if let discoveryError { message += "; discovery has not answered: \(discoveryError)" }
    return RPCError(code: .deadlineExceeded, message: message + ".")
  }

  // MARK: - Attempts

  /// Runs the RPC's attempts until one commits, none may follow, or the task is cancelled (the
  /// RPC ended).
  private func drive(
    _ call: MeshCall<Bytes>,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions
  ) async {
    if plan.hedgingDelay != nil {
      await self.hedge(call, plan: plan, descriptor: descriptor, options: options)
    } else {
      await self.retry(call, plan: plan, descriptor: descriptor, options: options)
    }
  }

  /// Attempts one after another, each on an endpoint the RPC has not failed on while there is
  /// one, with jittered exponential backoff or the server's pushback between them.
  private func retry(
    _ call: MeshCall<Bytes>,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions
  ) async {
    var failed: Set<String> = []
    var attempt = 0
    var transparentRetries = 0
    var ceiling = plan.initialBackoff
    // The admission the current attempt holds (withStream admitted the first); released once
    // the attempt ends, however the loop ends.
    var held: Bool? = false
    defer {
      if let isRetry = held { self.finishAttempt(isRetry: isRetry) }
    }
    while !Task.isCancelled {
      let picked: Picked
      switch await self.pickEndpoint(avoiding: failed, waitForReady: plan.waitForReady) {
      case .success(let found):
        picked = found
      case .failure(let error):
        call.fail(call.lastFailure.map { Self.combine(error, after: $0) } ?? error)
        return
      }
      let outcome = await self.runAttempt(
        call,
        number: attempt,
        on: picked,
        plan: plan,
        descriptor: descriptor,
        options: options
      )
      let failure: RPCError
      var pushback = MeshPushback.none
      switch outcome {
      case .committed, .lost:
        return
      case .notOpened(let error):
        failed.insert(picked.id)
        // The stream never opened (no connection): the RPC never left, so it goes to another
        // endpoint at once, whatever the method's policy (gRFC A6's transparent retry). The
        // attempt keeps its admission.
        if transparentRetries < 2, !Task.isCancelled, self.hasEndpoint(outside: failed) {
          transparentRetries += 1
          call.recordFailure(error)
          continue
        }
        failure = error
      case .failed(let error, let serverPushback):
        failed.insert(picked.id)
        failure = error
        pushback = serverPushback
      }
      if let isRetry = held { self.finishAttempt(isRetry: isRetry) }
      held = nil
      call.recordFailure(failure)
      attempt += 1
      guard plan.retryableCodes.contains(Status.Code(failure.code)), attempt < plan.maxAttempts,
        pushback != .stop, call.log.isReplayable
      else {
        call.fail(failure)
        return
      }
      let delay: Duration
      if case .retryAfter(let after) = pushback {
        delay = after
        ceiling = plan.initialBackoff
      } else {
        delay = self.jitter(upTo: ceiling)
        ceiling = Self.grow(ceiling, by: plan.backoffMultiplier, upTo: plan.maxBackoff)
      }
      if let deadline = call.deadline, ContinuousClock.now.advanced(by: delay) >= deadline {
        call.fail(
          RPCError(
            code: failure.code,
            message: "\(failure.message) (not retried: the RPC's deadline comes before the "
              + "next attempt would)",
            cause: failure.cause
          )
        )
        return
      }
      // The retry is admitted before its backoff (as Envoy counts a retry from when it is
      // scheduled): a budget or breaker that refuses it fails the RPC now, with the failure it
      // would have retried, instead of after the wait. An RPC that ended is not retried.
      guard !Task.isCancelled else { return }
      do {
        try self.admit(retry: failure, now: .now)
      } catch {
        call.fail(error)
        return
      }
      held = true
      if delay > .zero {
        guard (try? await Task.sleep(for: delay, tolerance: .zero)) != nil else { return }
      }
    }
  }

  /// Attempts in parallel: a further one each hedging delay, or at once after a non-fatal
  /// failure, each on an endpoint no earlier attempt of the RPC used while there is one; the
  /// first to answer wins and the others are cancelled.
  private func hedge(
    _ call: MeshCall<Bytes>,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions
  ) async {
    let used = MeshUsedEndpoints()
    await withTaskGroup(of: MeshHedgeEvent.self) { group in
      var started = 0
      var running = 0
      var stopped = false  // the server said stop, a fatal failure, or a refused hedge
      var startNext = true  // the first attempt, admitted by withStream
      while true {
        if startNext, !stopped, !call.isCommitted, started < plan.maxAttempts,
          call.log.isReplayable
        {
          let number = started
          started += 1
          running += 1
          group.addTask {
            await self.hedgedAttempt(
              call,
              number: number,
              used: used,
              plan: plan,
              descriptor: descriptor,
              options: options
            )
          }
          if started < plan.maxAttempts, let delay = plan.hedgingDelay {
            group.addTask {
              _ = try? await Task.sleep(for: delay, tolerance: .zero)
              return .hedgeDue
            }
          }
        }
        startNext = false
        if running == 0 {
          call.fail(
            call.lastFailure ?? RPCError(code: .unavailable, message: "No attempt could be made.")
          )
          break
        }
        guard let event = await group.next(), !Task.isCancelled else { break }
        switch event {
        case .hedgeDue:
          startNext = true
        case .ended(.committed):
          group.cancelAll()
          return
        case .ended(.lost):
          running -= 1
        case .ended(.notOpened(let error)), .ended(.failed(let error, pushback: .none)):
          running -= 1
          call.recordFailure(error)
          // A non-fatal failure sends the next hedge at once; any other ends the hedging.
          if plan.retryableCodes.contains(Status.Code(error.code)) {
            startNext = true
          } else {
            stopped = true
          }
        case .ended(.failed(let error, pushback: .stop)):
          running -= 1
          call.recordFailure(error)
          stopped = true
        case .ended(.failed(let error, pushback: .retryAfter(let delay))):
          running -= 1
          call.recordFailure(error)
          group.addTask {
            _ = try? await Task.sleep(for: delay, tolerance: .zero)
            return .hedgeDue
          }
        }
        if stopped && running == 0 {
          call.fail(
            call.lastFailure ?? RPCError(code: .unavailable, message: "No attempt succeeded.")
          )
          break
        }
      }
      group.cancelAll()
    }
  }

  /// One attempt of a hedged RPC, on an endpoint no earlier attempt of the RPC used while there
  /// is one.
  private func hedgedAttempt(
    _ call: MeshCall<Bytes>,
    number: Int,
    used: MeshUsedEndpoints,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions
  ) async -> MeshHedgeEvent {
    if number > 0 {
      do throws(RPCError) {
        try self.admit(
          retry: call.lastFailure
            ?? RPCError(code: .unavailable, message: "The first attempt is slow."),
          now: .now
        )
      } catch {
        // A refused hedge is not sent; the attempts already running go on.
        return .ended(.failed(error, pushback: .stop))
      }
    }
    defer { self.finishAttempt(isRetry: number > 0) }
    let picked: Picked
    switch await self.pickEndpoint(avoiding: used.snapshot, waitForReady: plan.waitForReady) {
    case .success(let found): picked = found
    case .failure(let error): return .ended(.failed(error, pushback: .none))
    }
    used.insert(picked.id)
    let outcome = await self.runAttempt(
      call,
      number: number,
      on: picked,
      plan: plan,
      descriptor: descriptor,
      options: options
    )
    return .ended(outcome)
  }

  private func jitter(upTo ceiling: Duration) -> Duration {
    let nanoseconds = MeshInput.nanoseconds(clamping: ceiling)
    guard nanoseconds > 0 else { return .zero }
    let value = self.state.withLock { state in
      Int64.random(in: 0...nanoseconds, using: &state.random)
    }
    return .nanoseconds(value)
  }

  /// `later` with what happened before it (an earlier attempt's failure).
  private static func combine(_ later: RPCError, after earlier: RPCError) -> RPCError {
    RPCError(
      code: later.code,
      message: "\(later.message) (an earlier attempt failed: \(earlier.code): \(earlier.message))",
      cause: earlier
    )
  }

  /// Runs one attempt on `picked`: replays the request, and passes the response on unless it is
  /// a failure another attempt may fix.
  private func runAttempt(
    _ call: MeshCall<Bytes>,
    number: Int,
    on picked: Picked,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions
  ) async -> MeshAttemptOutcome {
    let observer = MeshAttemptObserver<Bytes>()
    var perTryTimer: UInt64?
    if let perTryTimeout = plan.perTryTimeout, plan.maxAttempts > 1 {
      let perTryDeadline = ContinuousClock.now.advanced(by: perTryTimeout)
      if call.deadline.map({ perTryDeadline < $0 }) ?? true {
        let error = RPCError(
          code: .unavailable,
          message: "No response from \(picked.endpoint) within the per-try timeout of "
            + "\(MeshGoDuration.format(perTryTimeout))."
        )
        perTryTimer = self.timers.arm(at: perTryDeadline) {
          // A timer action must not block the timer runner; failing the stream is async.
          Task { await observer.abandonAtPerTryTimeout(error: error) }
        }
      }
    }
    defer {
      if let perTryTimer { self.timers.disarm(perTryTimer) }
    }
    var attemptOptions = options
    // The transport waits for readiness itself (bounded by the deadline); a subchannel that is
    // not ready fails the attempt at once, so that another endpoint can take it.
    attemptOptions.waitForReady = false
    var opened = false
    let outcome: MeshAttemptOutcome
    do {
      outcome = try await picked.subchannel.withStream(
        descriptor: descriptor,
        options: attemptOptions
      ) { stream, _ in
        opened = true
        observer.attach(stream.outbound)
        return await self.exchange(
          call,
          number: number,
          stream: stream,
          observer: observer,
          plan: plan
        )
      }
    } catch {
      let described = self.attemptError(error, on: picked, observer: observer)
      outcome = opened ? .failed(described, pushback: .none) : .notOpened(described)
    }
    self.release(picked, observer: observer, outcome: outcome)
    return outcome
  }

  /// The attempt's error as the caller should read it: which endpoint, and why its connection
  /// failed where that is known.
  private func attemptError(
    _ error: any Error,
    on picked: Picked,
    observer: MeshAttemptObserver<Bytes>
  ) -> RPCError {
    if let abandonment = observer.snapshot.abandonment { return abandonment }
    let rpcError = (error as? RPCError) ?? RPCError(code: .unavailable, message: "\(error)")
    guard rpcError.code == .unavailable else { return rpcError }
    let reason =
      self.factory.connectionFailure(for: picked.endpoint).map { "\($0)" }
      ?? self.state.withLock { $0.entries[picked.id]?.lastError }
    var message = "\(picked.endpoint): \(rpcError.message)"
    if let reason, !message.contains(reason) { message += " (\(reason))" }
    return RPCError(code: .unavailable, message: message, cause: rpcError)
  }

  /// Sends the request on the attempt's stream and reads the response's start: a failure
  /// another attempt may fix ends the attempt; anything else commits it and passes it on.
  private func exchange(
    _ call: MeshCall<Bytes>,
    number: Int,
    stream: RPCStream<Factory.Subchannel.Inbound, Factory.Subchannel.Outbound>,
    observer: MeshAttemptObserver<Bytes>,
    plan: Plan
  ) async -> MeshAttemptOutcome {
    guard let reader = call.log.addReader() else {
      return .failed(
        RPCError(code: .unavailable, message: "The request can no longer be replayed."),
        pushback: .stop
      )
    }
    let outbound = MeshRewritingOutbound(
      base: stream.outbound,
      previousAttempts: number,
      deadline: call.deadline
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
        let rpcError = (error as? RPCError) ?? RPCError(code: .unavailable, message: "\(error)")
        if self.mayRetry(rpcError.code, number: number, plan: plan, call: call) {
          return .failed(rpcError, pushback: .none)
        }
        guard call.commit(number) else { return .lost }
        call.log.commit(reader)
        call.response.finish(throwing: rpcError)
        return .committed
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
        call.response.finish()
        return .committed
      }
      guard await call.response.send(first) else { return .committed }
      do {
        while let part = try await inbound.next() {
          guard await call.response.send(part) else { return .committed }
        }
        call.response.finish()
      } catch {
        call.response.finish(throwing: error)
      }
      return .committed
    }
  }

  /// Whether a failure with `code` on attempt `number` may be followed by another attempt.
  private func mayRetry(
    _ code: RPCError.Code,
    number: Int,
    plan: Plan,
    call: MeshCall<Bytes>
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

  // MARK: - Admission

  /// Applies the breakers and the retry budget to a new attempt. `retry` is the failure the
  /// attempt retries (nil for an RPC's first attempt).
  func admit(retry: RPCError?, now: ContinuousClock.Instant) throws(RPCError) {
    let breakers = self.resilience.circuitBreakers
    let waiters = try self.state.withLock {
      state throws(RPCError) -> [CheckedContinuation<Void, Never>] in
      let waiters = self.tickOutlierDetection(&state, now: now)
      if let retry {
        if state.stats.retriesInFlight >= breakers.maxRetries {
          state.reject(.maxRetries)
          throw self.refusal(of: retry, breaker: .maxRetries, limit: breakers.maxRetries)
        }
        if state.budget?.tryRetry(now: now) == false {
          state.reject(.retryBudget)
          throw self.refusal(of: retry, breaker: .retryBudget, limit: nil)
        }
      } else {
        state.budget?.recordRequest(now: now)
      }
      if state.stats.attemptsInFlight >= breakers.maxRequests {
        state.reject(.maxRequests)
        throw RPCError(
          code: .unavailable,
          message: """
            Circuit breaker '\(MeshCircuitBreaker.maxRequests)' of '\(self.service)' is open: \
            \(breakers.maxRequests) RPCs are in flight.
            """
        )
      }
      state.stats.attemptsInFlight += 1
      state.stats.attemptsTotal += 1
      if retry != nil {
        state.stats.retriesInFlight += 1
        state.stats.retriesTotal += 1
      }
      state.notifyObservers()
      return waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  /// The end of an admitted attempt.
  func finishAttempt(isRetry: Bool) {
    self.state.withLock { state in
      state.stats.attemptsInFlight -= 1
      if isRetry { state.stats.retriesInFlight -= 1 }
      state.notifyObservers()
    }
  }

  private func refusal(of failure: RPCError, breaker: MeshCircuitBreaker, limit: Int?) -> RPCError {
    let detail = limit.map { ": \($0) retries are in flight" } ?? ": retries are at their cap"
    return RPCError(
      code: failure.code,
      message: """
        \(failure.message) (not retried: circuit breaker '\(breaker)' of \
        '\(self.service)' is open\(detail))
        """,
      cause: failure
    )
  }

  // MARK: - Picking

  /// Waits until an endpoint can be picked, then picks one, avoiding `failed` while another is
  /// available. Waits while discovery has not answered, while endpoints are still being probed,
  /// and (with `waitForReady`) while none is connected; fails at once when discovery lists no
  /// endpoint, or (without it) when every endpoint was probed and none is connected. Returns
  /// when the task is cancelled (the RPC ended).
  private func pickEndpoint(
    avoiding failed: Set<String>,
    waitForReady: Bool
  ) async -> Result<Picked, RPCError> {
    let maxPending = self.resilience.circuitBreakers.maxPendingRequests
    while true {
      if Task.isCancelled {
        return .failure(RPCError(code: .cancelled, message: "The RPC ended while it waited."))
      }
      let decision = self.state.withLock { state -> MeshPickDecision in
        if state.isShutDown {
          return .fail(
            RPCError(code: .unavailable, message: "The transport of '\(self.service)' shut down.")
          )
        }
        if state.hasEndpoints {
          if !state.picker.endpoints.isEmpty { return .pick }
          if state.order.isEmpty {
            let reason = state.stats.discoveryError.map { " (discovery: \($0))" } ?? ""
            let invalid =
              state.stats.invalidEndpoints > 0
              ? " \(state.stats.invalidEndpoints) invalid endpoints were skipped." : ""
            return .fail(
              RPCError(
                code: .unavailable,
                message: "No endpoint of '\(self.service)' is available\(reason).\(invalid)"
              )
            )
          }
          let allProbed = state.order.allSatisfy { state.entries[$0]?.probed ?? true }
          if allProbed && !waitForReady {
            return .fail(
              RPCError(
                code: .unavailable,
                message: "No endpoint of '\(self.service)' is ready: \(state.unreadyReasons)."
              )
            )
          }
        }
        guard state.waiters.count < maxPending else {
          state.reject(.maxPendingRequests)
          return .fail(
            RPCError(
              code: .unavailable,
              message: """
                Circuit breaker '\(MeshCircuitBreaker.maxPendingRequests)' of \
                '\(self.service)' is open: \(maxPending) RPCs are waiting for an endpoint.
                """
            )
          )
        }
        return .wait(state.waiters.makeID())
      }
      switch decision {
      case .pick:
        if let picked = self.pick(avoiding: failed, now: .now) { return .success(picked) }
      case .fail(let error):
        return .failure(error)
      case .wait(let id):
        await self.waitForChange(id)
      }
    }
  }

  /// Returns at the balancer's next change, or when the task is cancelled.
  private func waitForChange(_ id: UInt64) async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let stored = self.state.withLock { state -> Bool in
          // Checked under the lock the cancellation handler takes: once it ran, nothing would
          // resume a stored waiter.
          guard !Task.isCancelled else { return false }
          state.waiters.enqueue(continuation, id: id)
          state.notifyObservers()
          return true
        }
        if !stored { continuation.resume() }
      }
    } onCancel: {
      let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
        let waiter = state.waiters.remove(id)
        state.notifyObservers()
        return waiter
      }
      waiter?.resume()
    }
  }

  /// Picks the endpoint of an attempt, avoiding those the RPC's earlier attempts failed on while
  /// another is available, and half-open endpoints already probed.
  private func pick(avoiding failed: Set<String>, now: ContinuousClock.Instant) -> Picked? {
    var newConnection: (GRPCClient<Factory.Subchannel>, MeshSignal)?
    let picked = self.state.withLock { state -> Picked? in
      guard !state.isShutDown else { return nil }
      var excluded = failed
      var choice = state.picker.pick(excluding: excluded, now: now, using: &state.random)
      if let id = choice, state.detector?.admits(id) == false {
        excluded.insert(id)
        choice = state.picker.pick(excluding: excluded, now: now, using: &state.random) ?? id
      }
      guard let id = choice, var entry = state.entries[id] else { return nil }
      // The least busy connection; a new one when all are full and the pool may grow.
      var chosen = 0
      for index in entry.pool.indices where entry.pool[index].streams < entry.pool[chosen].streams {
        chosen = index
      }
      if entry.pool[chosen].streams >= self.maxStreamsPerConnection,
        entry.pool.count < self.maxConnectionsPerEndpoint
      {
        if state.connections >= self.resilience.circuitBreakers.maxConnections {
          state.reject(.maxConnections)  // the stream queues on the open connection
        } else if let subchannel = try? self.factory.makeSubchannel(for: entry.endpoint) {
          let client = GRPCClient(transport: subchannel)
          entry.pool.append(Pooled(subchannel: subchannel, client: client, streams: 0))
          state.connections += 1
          chosen = entry.pool.count - 1
          newConnection = (client, entry.removed)
        }
      }
      entry.pool[chosen].streams += 1
      state.entries[id] = entry
      state.picker.started(id)
      state.detector?.started(id)
      return Picked(
        id: id,
        endpoint: entry.endpoint,
        connection: chosen,
        generation: entry.removed,
        subchannel: entry.pool[chosen].subchannel,
        started: now
      )
    }
    if let (client, removed) = newConnection {
      self.eventSinkYieldPooled(client, removed: removed)
    }
    return picked
  }

  /// Whether some pickable endpoint is not in `excluded`.
  private func hasEndpoint(outside excluded: Set<String>) -> Bool {
    self.state.withLock { state in
      state.picker.endpoints.contains { !excluded.contains($0.id) }
    }
  }

  // MARK: - Accounting

  /// Accounts for the end of an attempt on `picked`: its load, and outlier detection.
  private func release(
    _ picked: Picked,
    observer: MeshAttemptObserver<Bytes>,
    outcome: MeshAttemptOutcome
  ) {
    let seen = observer.snapshot
    let end = ContinuousClock.now
    var endpointFailed = false
    let perTryTimedOut = seen.abandonment != nil
    if perTryTimedOut {
      endpointFailed = true
    } else if Task.isCancelled {
      // The RPC ended (its deadline, the caller): not the endpoint's fault.
    } else if let status = seen.status {
      endpointFailed = Self.endpointFailureCodes.contains(status.code)
    } else if let error = seen.transportError {
      endpointFailed = error.code != .cancelled && error.code != .deadlineExceeded
    } else {
      switch outcome {
      case .notOpened(let error), .failed(let error, _):
        endpointFailed = error.code == .unavailable
      case .committed, .lost:
        break
      }
    }
    let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
      state.picker.finished(picked.id, latency: picked.started.duration(to: end), now: end)
      if state.entries[picked.id]?.removed === picked.generation {
        state.entries[picked.id]?.pool[picked.connection].streams -= 1
      }
      if endpointFailed { state.stats.failedAttempts += 1 }
      if perTryTimedOut { state.stats.perTryTimeouts += 1 }
      if let changes = state.detector?.finished(picked.id, success: !endpointFailed, now: end),
        !changes.isEmpty
      {
        self.log(changes)
        return state.refresh()
      }
      return []
    }
    for waiter in waiters { waiter.resume() }
  }

  /// Codes that count against an endpoint in outlier detection.
  private static var endpointFailureCodes: Set<Status.Code> {
    [.unavailable, .internalError, .unknown, .dataLoss]
  }

  private func tickOutlierDetection(
    _ state: inout State,
    now: ContinuousClock.Instant
  ) -> [CheckedContinuation<Void, Never>] {
    guard let changes = state.detector?.tick(now: now), !changes.isEmpty else { return [] }
    self.log(changes)
    return state.refresh()
  }

  func log(_ changes: [MeshOutlierDetector<ContinuousClock.Instant>.Change]) {
    for change in changes {
      switch change {
      case .ejected(let id, let until, let reason):
        self.logger.warning(
          "Ejected an endpoint",
          metadata: [
            "mesh.service": "\(self.service)", "mesh.endpoint": "\(id)",
            "mesh.reason": "\(reason.rawValue)",
            "mesh.ejection_ms":
              "\(MeshInput.milliseconds(clamping: ContinuousClock.now.duration(to: until)))",
          ]
        )
      case .halfOpen(let id):
        self.logger.info(
          "Probing an ejected endpoint",
          metadata: ["mesh.service": "\(self.service)", "mesh.endpoint": "\(id)"]
        )
      case .readmitted(let id):
        self.logger.info(
          "Readmitted an endpoint",
          metadata: ["mesh.service": "\(self.service)", "mesh.endpoint": "\(id)"]
        )
      }
    }
  }
}
