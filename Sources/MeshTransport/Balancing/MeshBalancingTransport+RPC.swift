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
internal import MeshCore
internal import Tracing

extension MeshBalancingTransport {
  /// What one RPC does: its attempts and how they are spread.
  struct Plan: Sendable {
    var maxAttempts = 1
    /// Codes after which another attempt may follow.
    var retryableCodes = MeshStatusCodes()
    var perTryTimeout: Duration?
    /// Hedging: the wait before each further attempt; nil for retries.
    var hedgingDelay: Duration?
    var initialBackoff = Duration.zero
    var maxBackoff = Duration.zero
    var backoffMultiplier = 1.0
    var waitForReady = false
  }

  /// Where an RPC's attempts start.
  enum FirstAttempt: Sendable {
    /// Pick an endpoint.
    case pick
    /// On this endpoint, already picked.
    case picked(Picked)
    /// The first attempt, made in the caller's task, ended so on this endpoint.
    case ended(MeshAttemptOutcome, endpoint: String)
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    try await self.withStream(
      descriptor: descriptor,
      options: options,
      defaultTimeout: self.defaultTimeout,
      closure
    )
  }

  /// ``withStream(descriptor:options:_:)`` with another default timeout (a
  /// ``MeshTargetTransport`` handle's).
  func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    defaultTimeout: Duration?,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    // A mesh client's transport (any subchannel factory, erased, on the continuous clock) runs
    // the RPC in code compiled for its concrete types: called from grpc-swift's generic client,
    // this transport's code is otherwise generic, and looking up the runtime metadata of each
    // generic type it touches cost more CPU per RPC than the native transport itself. The result
    // goes through a local, so that the specialized code is not generic over it either.
    if Self.isMeshClient {
      let specialized = unsafeDowncast(self, to: MeshClientTransport.self)
      var result: T?
      try await specialized.runRPC(
        descriptor: descriptor,
        options: options,
        defaultTimeout: defaultTimeout
      ) { stream, context in
        // The same type: Factory is MeshAnySubchannelFactory.
        result = try await closure(
          unsafeBitCast(stream, to: RPCStream<Inbound, Outbound>.self),
          context
        )
      }
      guard let result else {
        throw RPCError(code: .internalError, message: "The RPC ended without a result.")
      }
      return result
    }
    return try await self.runRPC(
      descriptor: descriptor,
      options: options,
      defaultTimeout: defaultTimeout,
      closure
    )
  }

  /// Whether this is a mesh client's transport (``MeshClientTransport``): over the erased factory
  /// on the continuous clock, with code compiled for those types to dispatch to.
  static var isMeshClient: Bool {
    Factory.self == MeshAnySubchannelFactory.self && Clock.self == ContinuousClock.self
  }

  /// Runs one RPC.
  private func runRPC<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    defaultTimeout: Duration?,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    let start = self.clock.now
    let method = self.resilience.policy(for: descriptor)
    let deadline = try self.deadline(
      method: method,
      options: options,
      defaultTimeout: defaultTimeout,
      start: start
    )
    let plan = self.plan(method: method, options: options)
    let methodMetrics = self.metrics?.method(descriptor)
    let measuredFrom = methodMetrics == nil ? nil : ContinuousClock.now
    let trace = self.tracer.map {
      MeshCallTrace(tracer: $0, descriptor: descriptor, target: self.service)
    }
    do throws(RPCError) {
      try self.admit(retry: nil, now: start)
    } catch {
      // Refused by a breaker: the call ends here, with no attempt.
      if let trace {
        trace.event("mesh.circuit_breaker.rejected", ["mesh.reason": .string(error.message)])
        trace.end(Status.Code(error.code), message: error.message)
      }
      if let methodMetrics, let measuredFrom {
        methodMetrics.callEnded(
          Status.Code(error.code),
          duration: measuredFrom.duration(to: .now),
          counts: MeshCallCounts()
        )
      }
      throw error
    }
    let call = MeshCall<Bytes, Clock.Instant>(
      start: start,
      deadline: deadline,
      bufferLimit: 64,
      metrics: methodMetrics,
      measuredFrom: measuredFrom,
      trace: trace
    )
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
    return try await withRPCCancellationHandler {
      var first = FirstAttempt.pick
      // The common case: an endpoint is ready and its subchannel connected. The first attempt
      // runs in the caller's task; the machinery below takes over only if it fails.
      if plan.hedgingDelay == nil, self.factory.opensConnectedStreams,
        self.factory.requestFailureEndsResponse,
        let picked = self.pickNow(waitForReady: plan.waitForReady)
      {
        switch try await self.direct(
          call,
          on: picked,
          plan: plan,
          descriptor: descriptor,
          options: options,
          context: context,
          closure
        ) {
        case .done(let value): return value
        case .notConnected: first = .picked(picked)
        }
      }
      return try await self.relayed(
        call,
        first: first,
        plan: plan,
        descriptor: descriptor,
        options: options,
        context: context,
        closure
      )
    } onCancelRPC: {
      call.abort(RPCError(code: .cancelled, message: "The RPC being served was cancelled."))
    }
  }

  /// Runs the RPC with its attempts in a child task, the caller writing to the request log and
  /// reading what the committed attempt relays.
  private func relayed<T: Sendable>(
    _ call: MeshCall<Bytes, Clock.Instant>,
    first: FirstAttempt,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions,
    context: ClientContext,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    let stream = RPCStream(
      descriptor: descriptor,
      inbound: RPCAsyncSequence<RPCResponsePart<Bytes>, any Error>(
        wrapping: MeshResponseSequence(
          channel: call.response,
          ending: call.metrics == nil && call.trace == nil ? nil : call
        )
      ),
      outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable(
        wrapping: MeshRequestWriter(log: call.log)
      )
    )
    // The attempts run in a child task, so that ending the RPC (its deadline, the caller's
    // cancellation, the response's end) cancels whatever they wait for: an endpoint, a
    // connection grpc-swift is still making, a backoff.
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        await self.drive(call, first: first, plan: plan, descriptor: descriptor, options: options)
      }
      defer {
        call.response.consumerFinished()
        group.cancelAll()
        // A caller that stopped reading before the status gave up on the call.
        if call.metrics != nil || call.trace != nil {
          call.responseEnded(.cancelled, message: "The caller stopped reading the response.")
        }
      }
      return try await closure(stream, context)
    }
  }

  /// The RPC's deadline: the caller's timeout, else the method's or the target's default; the
  /// method's when the caller's is longer; a propagated deadline less the margin when sooner.
  private func deadline(
    method: MeshMethodPolicy,
    options: CallOptions,
    defaultTimeout: Duration?,
    start: Clock.Instant
  ) throws(RPCError) -> Clock.Instant? {
    var timeout = options.timeout ?? method.timeout ?? defaultTimeout
    if let methodTimeout = method.timeout, let current = timeout, current > methodTimeout {
      timeout = methodTimeout
    }
    var deadline = timeout.map {
      start.advanced(by: MeshInput.clamp($0, to: .zero...MeshGoDuration.max))
    }
    if let propagated = MeshPropagatedDeadline.current {
      // The propagated deadline is on the continuous clock (grpc-swift's); its time left is
      // carried over to this transport's clock.
      let left = ContinuousClock.now.duration(to: propagated)
      let limit = start.advanced(by: left - self.resilience.propagationMargin)
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
      plan.retryableCodes = MeshStatusCodes(retry.retryableStatusCodes)
      plan.perTryTimeout = retry.perTryTimeout
      plan.initialBackoff = retry.initialBackoff
      plan.maxBackoff = retry.maxBackoff
      plan.backoffMultiplier = retry.backoffMultiplier
    } else if let hedging = method.hedging {
      plan.maxAttempts = hedging.maxAttempts
      plan.retryableCodes = MeshStatusCodes(hedging.nonFatalStatusCodes)
      plan.hedgingDelay = hedging.hedgingDelay
    }
    return plan
  }

  /// The error of an RPC whose deadline passed: what it was waiting for, and the last attempt's
  /// failure where there was one.
  private func deadlineError(_ call: MeshCall<Bytes, Clock.Instant>) -> RPCError {
    let elapsed = call.start.duration(to: call.deadline ?? self.clock.now)
    var message =
      "The RPC's deadline (\(MeshGoDuration.format(elapsed))) passed calling '\(self.service)'"
    if let last = call.lastFailure {
      message += "; the last attempt failed: \(last.code): \(last.message)"
    }
    let (unready, discoveryError, discoveryFailure) = self.state.withLock { state in
      let silent = !state.machine.hasEndpoints
      return (
        state.machine.unreadyReasons,
        silent ? state.machine.discoveryError : nil,
        silent ? state.machine.discoveryFailure : nil
      )
    }
    if !unready.isEmpty { message += "; endpoints not ready: \(unready)" }
    if let discoveryError { message += "; discovery has not answered: \(discoveryError)" }
    // The cause a caller can inspect: the last attempt's failure, else discovery's.
    return RPCError(
      code: .deadlineExceeded,
      message: message + ".",
      cause: call.lastFailure ?? discoveryFailure
    )
  }

  // MARK: - Attempts

  /// Runs the RPC's attempts until one commits, none may follow, or the task is cancelled (the
  /// RPC ended).
  private func drive(
    _ call: MeshCall<Bytes, Clock.Instant>,
    first: FirstAttempt,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions
  ) async {
    if plan.hedgingDelay != nil {
      // Hedged RPCs never start in the caller's task, so `first` is always `.pick`.
      await self.hedge(call, plan: plan, descriptor: descriptor, options: options)
    } else {
      await self.retry(call, first: first, plan: plan, descriptor: descriptor, options: options)
    }
  }

  /// Attempts one after another, each on an endpoint the RPC has not failed on while there is
  /// one, with jittered exponential backoff or the server's pushback between them.
  func retry(
    _ call: MeshCall<Bytes, Clock.Instant>,
    first: FirstAttempt,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions
  ) async {
    var failed: Set<String> = []
    var attempt = 0
    var transparentRetries = 0
    var transparent = false
    var ceiling = plan.initialBackoff
    // The admission the current attempt holds (withStream admitted the first); released once
    // the attempt ends, however the loop ends.
    var held: Bool? = false
    defer {
      if let isRetry = held { self.finishAttempt(isRetry: isRetry) }
    }
    var next = first
    while true {
      let outcome: MeshAttemptOutcome
      let endpoint: String
      if case .ended(let ended, let id) = next {
        (outcome, endpoint) = (ended, id)
      } else {
        let picked: Picked
        if case .picked(let given) = next {
          // Already holding a stream of the endpoint: the attempt releases it however it ends.
          picked = given
        } else {
          guard !Task.isCancelled else { return }
          switch await self.pickEndpoint(avoiding: failed, waitForReady: plan.waitForReady) {
          case .success(let found):
            picked = found
          case .failure(let error):
            call.fail(call.lastFailure.map { Self.combine(error, after: $0) } ?? error)
            return
          }
        }
        outcome = await self.runAttempt(
          call,
          number: attempt,
          transparent: transparent,
          on: picked,
          plan: plan,
          descriptor: descriptor,
          options: options
        )
        endpoint = picked.id
      }
      next = .pick
      transparent = false
      let failure: RPCError
      var pushback = MeshPushback.none
      switch outcome {
      case .committed, .lost:
        return
      case .notOpened(let error):
        // A stream the server refused unprocessed (a GOAWAY) may go to the same endpoint's next
        // connection; one that could not open avoids the endpoint while there is another.
        if !error.meshUnprocessed { failed.insert(endpoint) }
        // The stream never opened (no connection): the RPC never left, so it goes to another
        // endpoint at once, whatever the method's policy (gRFC A6's transparent retry). The
        // attempt keeps its admission.
        if transparentRetries < 2, !Task.isCancelled, self.hasEndpoint(outside: failed) {
          transparentRetries += 1
          transparent = true
          call.countTransparentRetry(after: error)
          call.recordFailure(error)
          continue
        }
        failure = error
      case .failed(let error, let serverPushback):
        failed.insert(endpoint)
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
      if let deadline = call.deadline, self.clock.now.advanced(by: delay) >= deadline {
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
        try self.admit(retry: failure, now: self.clock.now)
      } catch {
        call.refused(error)
        call.fail(error)
        return
      }
      held = true
      if delay > .zero {
        guard (try? await self.clock.sleep(for: delay, tolerance: .zero)) != nil else { return }
      }
      call.countRetry(after: delay)
    }
  }

  /// Attempts in parallel: a further one each hedging delay, or at once after a non-fatal
  /// failure, each on an endpoint no earlier attempt of the RPC used while there is one; the
  /// first to answer wins and the others are cancelled.
  private func hedge(
    _ call: MeshCall<Bytes, Clock.Instant>,
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
              _ = try? await self.clock.sleep(for: delay, tolerance: .zero)
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
            _ = try? await self.clock.sleep(for: delay, tolerance: .zero)
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
    _ call: MeshCall<Bytes, Clock.Instant>,
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
          now: self.clock.now
        )
      } catch {
        // A refused hedge is not sent; the attempts already running go on.
        call.refused(error)
        return .ended(.failed(error, pushback: .stop))
      }
      call.countHedge()
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
      transparent: false,
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
}

/// A set of status codes as bits: copied with an RPC's plan, which a `Set` would make a
/// reference to count on every copy.
struct MeshStatusCodes: Sendable {
  private var bits: UInt32 = 0

  init() {}

  init(_ codes: Set<Status.Code>) {
    for code in codes where (0..<32).contains(code.rawValue) {
      self.bits |= 1 << UInt32(code.rawValue)
    }
  }

  func contains(_ code: Status.Code) -> Bool {
    (0..<32).contains(code.rawValue) && self.bits & (1 << UInt32(code.rawValue)) != 0
  }
}
