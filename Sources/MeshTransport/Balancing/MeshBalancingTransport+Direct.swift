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
internal import GRPCNIOTransportHTTP2Posix
internal import MeshCore

// An RPC's first attempt in the caller's own task.
//
// When an endpoint is ready and its subchannel connected, the caller writes the request to the
// attempt's stream and reads its response directly: no task of the transport's stands between
// them (in the relayed path, the attempts run in a child task, a pump task writes the request from
// the log, and the response comes back part by part through a channel: three hand-offs between
// threads per RPC, which on a fast transport cost more than the transport itself). The request is
// still recorded in the log while a retry could replay it. If the attempt fails before its response
// starts with a failure the RPC's policy retries, the retry loop takes over from it in a task of its
// own and the caller reads what it relays, as in the relayed path.
//
// Nothing in the caller's task waits for anything but the attempt's own stream: the stream is
// opened only on a connected subchannel (``MeshSubchannelFactory/withConnectedStream``), and the
// RPC's end (its deadline, its cancellation) fails that stream, which ends the caller's wait.
extension MeshBalancingTransport {
  enum DirectOutcome<T: Sendable> {
    case done(T)
    /// The subchannel was not connected, or its stream did not open: nothing was sent, and the
    /// relayed path makes the attempt on the same pick.
    case notConnected
  }

  /// Runs the RPC's first attempt on `picked` in the caller's task, if its subchannel is
  /// connected.
  func direct<T: Sendable>(
    _ call: MeshCall<Bytes, Clock.Instant>,
    on picked: Picked,
    plan: Plan,
    descriptor: MethodDescriptor,
    options: CallOptions,
    context: ClientContext,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> DirectOutcome<T> {
    var adjusted = options
    adjusted.waitForReady = false
    let attemptOptions = adjusted
    var opened = false
    do {
      let value = try await self.factory.withConnectedStream(
        on: picked.connection.subchannel,
        descriptor: descriptor,
        options: attemptOptions
      ) { stream, _ in
        opened = true
        return try await self.runDirect(
          DirectAttempt(
            transport: self,
            call: call,
            picked: picked,
            plan: plan,
            descriptor: descriptor,
            options: attemptOptions
          ),
          stream: stream,
          context: context,
          closure
        )
      }
      guard let value else { return .notConnected }
      return .done(value)
    } catch {
      // Thrown by the caller's closure (or the RPC's end): the RPC's outcome.
      if opened { throw error }
      return .notConnected
    }
  }

  private func runDirect<T: Sendable>(
    _ attempt: DirectAttempt,
    stream: RPCStream<Factory.Subchannel.Inbound, Factory.Subchannel.Outbound>,
    context: ClientContext,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    let call = attempt.call
    let observer = attempt.observer
    call.metrics?.attemptStarted.increment()
    _ = observer.attach(stream.outbound)
    if !call.attachDirect(observer) {
      // The RPC ended (its deadline, its cancellation) before the stream opened.
      await observer.failStream(
        call.endError ?? RPCError(code: .cancelled, message: "The RPC ended.")
      )
    }
    call.log.beginDirect()
    let perTryTimer = self.armPerTryTimeout(
      plan: attempt.plan,
      call: call,
      endpoint: attempt.picked.endpoint,
      observer: observer,
      signal: nil
    )
    let outbound = self.attemptOutbound(stream.outbound, call: call, number: 0, observer: observer)
    let rpc = RPCStream(
      descriptor: attempt.descriptor,
      inbound: RPCAsyncSequence<RPCResponsePart<Bytes>, any Error>(
        wrapping: DirectInbound(
          attempt: attempt,
          base: MeshObservedInbound(
            base: RPCAsyncSequence(wrapping: stream.inbound),
            observer: observer
          )
        )
      ),
      outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable(
        wrapping: MeshDirectWriter(log: call.log, outbound: outbound)
      )
    )
    let result: Result<T, any Error>
    do {
      result = .success(try await closure(rpc, context))
    } catch {
      result = .failure(error)
    }
    if let perTryTimer { self.timers.disarm(perTryTimer) }
    observer.detachStream()
    if let retry = attempt.close() {
      // The retry loop took over: it holds the RPC's admission and accounts for its attempts.
      retry.cancel()
      await retry.value
    } else {
      attempt.settle()
      self.finishAttempt(isRetry: false)
    }
    call.response.consumerFinished()
    // A caller that stopped reading before the status gave up on the call.
    if call.metrics != nil || call.trace != nil {
      call.responseEnded(.cancelled, message: "The caller stopped reading the response.")
    }
    return try result.get()
  }

  /// The first attempt of an RPC made in the caller's task, and the retry loop that takes over
  /// if it fails.
  final class DirectAttempt: Sendable {
    let transport: MeshBalancingTransport
    let call: MeshCall<Bytes, Clock.Instant>
    let picked: Picked
    let plan: Plan
    let descriptor: MethodDescriptor
    let options: CallOptions
    let observer: MeshAttemptObserver<Bytes>
    let started: Clock.Instant

    private enum Retry {
      case none
      case running(Task<Void, Never>)
      case closed
    }

    private let retry = MeshMutex(Retry.none)

    init(
      transport: MeshBalancingTransport,
      call: MeshCall<Bytes, Clock.Instant>,
      picked: Picked,
      plan: Plan,
      descriptor: MethodDescriptor,
      options: CallOptions
    ) {
      self.transport = transport
      self.call = call
      self.picked = picked
      self.plan = plan
      self.descriptor = descriptor
      self.options = options
      self.started = transport.clock.now
      self.observer = MeshAttemptObserver<Bytes>(
        span: call.trace?.startAttempt(number: 0, transparent: false, endpoint: picked.endpoint)
      )
    }

    /// Accounts for the attempt, committed (once; later calls do nothing).
    func settle() {
      self.transport.release(
        self.picked,
        started: self.started,
        observer: self.observer,
        outcome: .committed,
        metrics: self.call.metrics
      )
    }

    /// The attempt failed with `outcome` before its response started, and the RPC's policy may
    /// retry it: accounts for it and starts the retry loop.
    func fallBack(_ outcome: MeshAttemptOutcome) async {
      // The RPC's scope has not ended (the caller is reading), so no retry was started.
      let open = self.retry.withLock { retry -> Bool in
        if case .none = retry { return true }
        return false
      }
      guard open else { return }
      self.transport.release(
        self.picked,
        started: self.started,
        observer: self.observer,
        outcome: outcome,
        metrics: self.call.metrics
      )
      self.call.log.beginReplay()
      // The failed stream is reset now, not when the RPC ends: its slot on the connection is free
      // again (the attempt was released), and a write blocked on it returns.
      await self.observer.failStream(
        RPCError(code: .cancelled, message: "Another attempt takes over from this one.")
      )
      let (transport, call, plan) = (self.transport, self.call, self.plan)
      let (descriptor, options, endpoint) = (self.descriptor, self.options, self.picked.id)
      // Unstructured because the caller's closure, not this transport, is running when the
      // attempt fails (no task group of ours is in scope to add the loop to). It is bound to the
      // RPC all the same: the RPC's end fails what it waits for, and the RPC's scope cancels and
      // awaits it before returning (`close()`).
      let task = Task {
        await transport.retry(
          call,
          first: .ended(outcome, endpoint: endpoint),
          plan: plan,
          descriptor: descriptor,
          options: options
        )
      }
      // Only the caller's closure calls this, and the scope ends (close()) after it returned.
      self.retry.withLock { $0 = .running(task) }
    }

    /// The RPC's scope ends: the retry loop, if one was started (none can start after this).
    func close() -> Task<Void, Never>? {
      self.retry.withLock { retry in
        defer { retry = .closed }
        guard case .running(let task) = retry else { return nil }
        return task
      }
    }

    /// Passes on the committed attempt's `part`, accounting for the attempt at its end.
    func pass(_ part: RPCResponsePart<Bytes>?) throws -> RPCResponsePart<Bytes>? {
      switch part {
      case .metadata, .message:
        return part
      case .status, nil:
        self.settle()
        if case .status = part, let ended = self.call.endError {
          // The RPC ended (its deadline, its cancellation) before the status was read.
          throw self.report(ended)
        }
        if self.reports { self.call.responseRead(part) }
        return part
      }
    }

    /// The error to throw for the committed attempt's stream failing with `error`.
    func failure(_ error: any Error) -> any Error {
      self.settle()
      return self.report(self.call.endError ?? error)
    }

    private var reports: Bool { self.call.metrics != nil || self.call.trace != nil }

    private func report(_ error: any Error) -> any Error {
      self.reports ? self.call.responseFailed(error) : error
    }
  }

  /// The caller's view of the response: the first attempt's stream, or what the retry loop
  /// relays once it took over.
  struct DirectInbound: AsyncSequence, Sendable {
    typealias Element = RPCResponsePart<Bytes>
    typealias Failure = any Error

    let attempt: DirectAttempt
    let base: MeshObservedInbound<Bytes>

    func makeAsyncIterator() -> AsyncIterator {
      AsyncIterator(
        reader: DirectReader(attempt: self.attempt, base: self.base.makeAsyncIterator())
      )
    }

    struct AsyncIterator: AsyncIteratorProtocol {
      let reader: DirectReader

      mutating func next() async throws -> RPCResponsePart<Bytes>? {
        // grpc-swift calls this through an existential, which runs generic code: a mesh client's
        // transport runs the code compiled for its types (see `withStream`).
        if MeshBalancingTransport.isMeshClient {
          let part = try await unsafeDowncast(
            self.reader,
            to: MeshClientTransport.DirectReader.self
          ).next()
          return unsafeBitCast(part, to: RPCResponsePart<Bytes>?.self)
        }
        return try await self.reader.next()
      }
    }
  }

  /// Reads a ``DirectInbound`` (one task, the caller's).
  final class DirectReader {
    private enum Phase {
      case first
      case committed
      case relayed(MeshResponseSequence<Bytes>.AsyncIterator)
      case ended
    }

    let attempt: DirectAttempt
    private var base: MeshObservedInbound<Bytes>.AsyncIterator
    private var phase = Phase.first

    init(attempt: DirectAttempt, base: MeshObservedInbound<Bytes>.AsyncIterator) {
      self.attempt = attempt
      self.base = base
    }

    func next() async throws -> RPCResponsePart<Bytes>? {
      switch self.phase {
      case .committed:
        let part: RPCResponsePart<Bytes>?
        do {
          part = try await self.base.next()
        } catch {
          self.phase = .ended
          throw self.attempt.failure(error)
        }
        return try self.attempt.pass(part)
      case .first:
        return try await self.first()
      case .relayed(var relay):
        return try await relay.next()
      case .ended:
        return nil
      }
    }

    private func first() async throws -> RPCResponsePart<Bytes>? {
      let attempt = self.attempt
      let call = attempt.call
      let transport = attempt.transport
      let first: RPCResponsePart<Bytes>?
      do {
        first = try await self.base.next()
      } catch {
        let rpcError = RPCError(meshFailure: error)
        // The RPC ended (its deadline, its cancellation) or the caller's task was cancelled:
        // no retry (the relayed path's loop is cancelled then too).
        if call.endError == nil, !Task.isCancelled {
          if MeshBalancingTransport.transparentlyRetryable(
            rpcError,
            call: call,
            observer: attempt.observer
          ) {
            return try await self.fallBack(.notOpened(rpcError))
          }
          if transport.mayRetry(rpcError.code, number: 0, plan: attempt.plan, call: call) {
            return try await self.fallBack(.failed(rpcError, pushback: .none))
          }
          _ = call.commit(0)
          call.log.commitDirect()
        }
        self.phase = .ended
        throw attempt.failure(rpcError)
      }
      if let ended = call.endError {
        // The RPC ended while the response started: the caller reads why, nothing else.
        self.phase = .ended
        throw attempt.failure(ended)
      }
      if !Task.isCancelled {
        let seen = attempt.observer.snapshot
        if let abandonment = seen.abandonment {
          // Abandoned at its per-try timeout before anything arrived.
          return try await self.fallBack(.failed(abandonment, pushback: .none))
        }
        if case .status(let status, _)? = first, status.code != .ok,
          transport.mayRetry(
            RPCError.Code(status.code) ?? .unknown,
            number: 0,
            plan: attempt.plan,
            call: call
          )
        {
          let pushback: MeshPushback =
            seen.pushbackStops ? .stop : (seen.pushback.map { .retryAfter($0) } ?? .none)
          if pushback != .stop {
            return try await self.fallBack(
              .failed(
                RPCError(code: RPCError.Code(status.code) ?? .unknown, message: status.message),
                pushback: pushback
              )
            )
          }
        }
      }
      _ = call.commit(0)
      call.log.commitDirect()
      self.phase = .committed
      do {
        return try attempt.pass(first)
      } catch {
        self.phase = .ended
        throw error
      }
    }

    private func fallBack(
      _ outcome: MeshAttemptOutcome
    ) async throws -> RPCResponsePart<Bytes>? {
      await self.attempt.fallBack(outcome)
      let call = self.attempt.call
      var relay = MeshResponseSequence(
        channel: call.response,
        ending: call.metrics == nil && call.trace == nil ? nil : call
      ).makeAsyncIterator()
      self.phase = .relayed(relay)
      return try await relay.next()
    }
  }
}

/// The caller's request in an RPC whose first attempt it writes itself: recorded in the log while
/// a retry could replay it, and written to the attempt's stream until a retry takes over.
struct MeshDirectWriter<Bytes: GRPCContiguousBytes & Sendable>: ClosableRPCWriterProtocol {
  typealias Element = RPCRequestPart<Bytes>

  let log: MeshRequestLog<Bytes>
  let outbound: MeshRewritingOutbound<Bytes>

  func write(_ element: RPCRequestPart<Bytes>) async throws {
    // grpc-swift calls this through an existential, which runs generic code: a mesh client's
    // runs the code compiled for its bytes (see `MeshBalancingTransport.withStream`).
    if Bytes.self == GRPCNIOTransportBytes.self {
      try await unsafeBitCast(self, to: MeshDirectWriter<GRPCNIOTransportBytes>.self).writePart(
        unsafeBitCast(element, to: RPCRequestPart<GRPCNIOTransportBytes>.self)
      )
      return
    }
    try await self.writePart(element)
  }

  private func writePart(_ element: RPCRequestPart<Bytes>) async throws {
    guard try await self.log.write(element) else { return }
    // A write that fails means the stream ended: its response says how, and a retry replays the
    // request from the log (as in the relayed path, where the attempt's pump writes it).
    try? await self.outbound.write(element)
  }

  func write(contentsOf elements: some Sequence<RPCRequestPart<Bytes>>) async throws {
    for element in elements { try await self.write(element) }
  }

  func finish() async {
    if Bytes.self == GRPCNIOTransportBytes.self {
      await unsafeBitCast(self, to: MeshDirectWriter<GRPCNIOTransportBytes>.self).finishLog()
      return
    }
    await self.finishLog()
  }

  private func finishLog() async {
    if self.log.finish() { await self.outbound.finish() }
  }

  func finish(throwing error: any Error) async {
    if self.log.finish(throwing: error) { await self.outbound.finish(throwing: error) }
  }
}
