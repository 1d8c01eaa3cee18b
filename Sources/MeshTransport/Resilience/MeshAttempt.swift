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
internal import Tracing

/// A snapshot of a balancing transport's resilience state: the gauges and counters to export.
public struct MeshTransportStats: Hashable, Sendable {
  /// Endpoints known from discovery, and those that can be picked now.
  public var endpoints = 0
  public var pickable = 0
  /// Endpoints ejected by outlier detection now (their IDs), and those half-open (taking probes).
  public var ejectedEndpoints: Set<String> = []
  public var ejected: Int { self.ejectedEndpoints.count }
  public var halfOpen = 0
  /// Ejections and readmissions (after a successful half-open probe) since the start.
  public var ejectionsTotal = 0
  public var readmissionsTotal = 0
  /// Connections open to all endpoints.
  public var connections = 0
  /// Attempts in flight, of which retries.
  public var attemptsInFlight = 0
  public var retriesInFlight = 0
  /// RPCs waiting for a pickable endpoint.
  public var pending = 0
  /// Attempts started, of which retries, since the start.
  public var attemptsTotal = 0
  public var retriesTotal = 0
  /// Retries refused by the retry budget.
  public var retriesRefusedByBudget = 0
  /// RPCs failed fast by each breaker (and pool growth refused by `maxConnections`).
  public var breakerRejections: [MeshCircuitBreaker: Int] = [:]
  /// Attempts that ended in a failure of the endpoint, and of them per-try timeouts.
  public var failedAttempts = 0
  public var perTryTimeouts = 0
  /// Attempts abandoned at their per-try timeout, counted when it passes (``perTryTimeouts``
  /// counts them when they end).
  public var perTryAbandonments = 0
  /// Endpoints of the current discovery set that were skipped as invalid (a host that is not
  /// an IP address or DNS name, a port outside 1–65535).
  public var invalidEndpoints = 0
  /// Why each endpoint that is not connected failed to connect, by endpoint ID (a TLS identity
  /// mismatch names the expected and presented identities).
  public var connectionErrors: [String: String] = [:]
  /// Why discovery last failed; nil once it answers again.
  public var discoveryError: String?
  /// The transport is shutting down: it takes no new RPC, and those in flight finish on their
  /// connections before they close.
  public var draining = false

  public init() {}

  /// Adds `other`'s gauges and counters (two clients of the same target).
  public mutating func add(_ other: MeshTransportStats) {
    self.endpoints = max(self.endpoints, other.endpoints)
    self.pickable = max(self.pickable, other.pickable)
    self.ejectedEndpoints.formUnion(other.ejectedEndpoints)
    self.halfOpen += other.halfOpen
    self.ejectionsTotal += other.ejectionsTotal
    self.readmissionsTotal += other.readmissionsTotal
    self.connections += other.connections
    self.attemptsInFlight += other.attemptsInFlight
    self.retriesInFlight += other.retriesInFlight
    self.pending += other.pending
    self.attemptsTotal += other.attemptsTotal
    self.retriesTotal += other.retriesTotal
    self.retriesRefusedByBudget += other.retriesRefusedByBudget
    self.breakerRejections.merge(other.breakerRejections, uniquingKeysWith: +)
    self.failedAttempts += other.failedAttempts
    self.perTryTimeouts += other.perTryTimeouts
    self.perTryAbandonments += other.perTryAbandonments
    self.invalidEndpoints = max(self.invalidEndpoints, other.invalidEndpoints)
    self.connectionErrors.merge(other.connectionErrors, uniquingKeysWith: { first, _ in first })
    self.discoveryError = self.discoveryError ?? other.discoveryError
    self.draining = self.draining || other.draining
  }
}

/// The circuit breakers of a target service.
public enum MeshCircuitBreaker: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
  case maxConnections = "max connections"
  case maxPendingRequests = "max pending requests"
  case maxRequests = "max requests"
  case maxRetries = "max retries"
  case retryBudget = "retry budget"

  public var description: String { self.rawValue }
}

/// What one attempt saw: filled by its inbound stream, read when it ends. Also the handle that
/// fails the attempt's stream at its per-try timeout.
final class MeshAttemptObserver<Bytes: GRPCContiguousBytes & Sendable>: Sendable {
  private let state = MeshMutex(State())
  /// The attempt's span (with tracing on): ended when the attempt is accounted for.
  let span: (any Span)?

  init(span: (any Span)? = nil) {
    self.span = span
  }

  struct State {
    var receivedFirstPart = false
    var committed = false
    var status: Status?
    var pushbackStops = false
    var pushback: Duration?
    var transportError: RPCError?
    /// The status or error that ended the stream arrived after the RPC was cancelled (its
    /// deadline, its caller), so it says nothing about the endpoint. Recorded when it arrives:
    /// by the time the attempt is accounted for, the caller may have read the status and moved
    /// on, which cancels the attempt's task.
    var endedAfterCancellation = false
    /// The attempt has been accounted for (its load released, its outcome recorded).
    var released = false
    /// Message bytes sent and received (counted with metrics on).
    var sentBytes = 0
    var receivedBytes = 0
    /// The error the attempt was abandoned with at its per-try timeout: what its inbound stream
    /// throws. (The RPC's own end — its deadline, its cancellation — cancels the attempt's task
    /// instead.)
    var abandonment: RPCError?
    var outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable?
  }

  var snapshot: State { self.state.withLock { $0 } }

  /// What the attempt saw, for accounting for it: nil if it already has been.
  func claimRelease() -> State? {
    self.state.withLock { state in
      guard !state.released else { return nil }
      state.released = true
      return state
    }
  }

  /// Keeps the attempt's request stream, for an abandonment to fail. Returns the abandonment if
  /// the attempt was abandoned before its stream opened: the caller fails the stream itself.
  func attach(_ outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable) -> RPCError? {
    self.state.withLock { state in
      state.outbound = outbound
      return state.abandonment
    }
  }

  /// Fails the attempt's stream with `error` (the RPC ended: its deadline, its cancellation), if
  /// it is still attached.
  func failStream(_ error: RPCError) async {
    let outbound = self.state.withLock { state in
      defer { state.outbound = nil }
      return state.outbound
    }
    await outbound?.finish(throwing: error)
  }

  /// The attempt's stream closes: nothing fails it any more.
  func detachStream() {
    self.state.withLock { $0.outbound = nil }
  }

  /// Records a part; returns the part to pass on: for a status that ends an abandoned attempt,
  /// the abandonment's (the transport reports the stream's end in its own words).
  func observe(_ part: RPCResponsePart<Bytes>?) -> RPCResponsePart<Bytes>? {
    self.state.withLock { state in
      if case .status = part, let abandonment = state.abandonment {
        return .status(
          Status(code: Status.Code(abandonment.code), message: abandonment.message),
          abandonment.metadata
        )
      }
      var part = part
      if !state.receivedFirstPart, case .status(let status, let trailers) = part,
        status.code == .cancelled, !Task.isCancelled
      {
        // The server cancelled the call before answering it (a server going away does): a reset,
        // which the mesh retries as UNAVAILABLE (Envoy's `reset`).
        part = .status(
          Status(
            code: .unavailable,
            message: "The server reset the call before answering (CANCELLED: \(status.message))."
          ),
          trailers
        )
      }
      state.receivedFirstPart = true
      switch part {
      case .metadata: ()
      case .message(let message):
        state.committed = true
        state.receivedBytes += message.count
      case .status(let status, let trailers):
        state.status = status
        state.endedAfterCancellation = Task.isCancelled
        if let text = trailers.meshFirstString("grpc-retry-pushback-ms") {
          if let milliseconds = Int64(text), milliseconds >= 0 {
            state.pushback = .milliseconds(milliseconds)
          } else {
            state.pushbackStops = true
          }
        }
      case .none: ()
      }
      return part
    }
  }

  /// Records the stream's error; returns the error to throw: the abandonment's, if it was
  /// abandoned (the transport reports the stream's end in its own words).
  func observe(_ error: any Error) -> any Error {
    self.state.withLock { state in
      if let abandonment = state.abandonment { return abandonment }
      if state.transportError == nil {
        state.transportError = RPCError(meshFailure: error, context: "The stream failed")
        state.endedAfterCancellation = Task.isCancelled
      }
      return error
    }
  }

  /// Counts a message sent.
  func countSent(_ bytes: Int) {
    self.state.withLock { $0.sentBytes += bytes }
  }

  /// Fails the stream at its per-try timeout, unless the response has started; true when it
  /// was abandoned.
  func abandonAtPerTryTimeout(error: RPCError) async -> Bool {
    let (abandoned, outbound) = self.state.withLock {
      state -> (Bool, RPCWriter<RPCRequestPart<Bytes>>.Closable?) in
      guard state.status == nil, state.transportError == nil, state.abandonment == nil,
        !state.receivedFirstPart, !state.released
      else {
        return (false, nil)
      }
      state.abandonment = error
      return (true, state.outbound)
    }
    await outbound?.finish(throwing: error)
    return abandoned
  }
}

/// The attempt's inbound stream, reporting what it sees to the observer.
struct MeshObservedInbound<Bytes: GRPCContiguousBytes & Sendable>: AsyncSequence, Sendable {
  typealias Element = RPCResponsePart<Bytes>
  typealias Failure = any Error

  let base: RPCAsyncSequence<RPCResponsePart<Bytes>, any Error>
  let observer: MeshAttemptObserver<Bytes>

  func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(base: self.base.makeAsyncIterator(), observer: self.observer)
  }

  struct AsyncIterator: AsyncIteratorProtocol {
    var base: RPCAsyncSequence<RPCResponsePart<Bytes>, any Error>.AsyncIterator
    let observer: MeshAttemptObserver<Bytes>

    mutating func next() async throws -> RPCResponsePart<Bytes>? {
      do {
        let part = try await self.base.next()
        return self.observer.observe(part)
      } catch {
        throw self.observer.observe(error)
      }
    }
  }
}

/// The attempt's outbound stream, setting headers on its metadata: `grpc-previous-rpc-attempts`
/// (grpc-swift 2.4 computes it but does not send it) and a shorter `grpc-timeout` where a
/// propagated deadline or the method's timeout is nearer than the caller's.
struct MeshRewritingOutbound<Bytes: GRPCContiguousBytes & Sendable>: ClosableRPCWriterProtocol {
  typealias Element = RPCRequestPart<Bytes>

  let base: RPCWriter<RPCRequestPart<Bytes>>.Closable
  let previousAttempts: Int
  /// The time left before the RPC's deadline, if it has one.
  let remaining: (@Sendable () -> Duration)?
  /// Counts the bytes of the messages sent (with metrics on).
  let counter: MeshAttemptObserver<Bytes>?
  /// Writes the attempt's trace context (with tracing on).
  let tracer: (any Tracer)?
  let span: (any Span)?

  func write(_ element: RPCRequestPart<Bytes>) async throws {
    try await self.base.write(self.rewrite(element))
  }

  func write(contentsOf elements: some Sequence<RPCRequestPart<Bytes>>) async throws {
    try await self.base.write(contentsOf: elements.map { self.rewrite($0) })
  }

  func finish() async {
    await self.base.finish()
  }

  func finish(throwing error: any Error) async {
    await self.base.finish(throwing: error)
  }

  private func rewrite(_ part: RPCRequestPart<Bytes>) -> RPCRequestPart<Bytes> {
    if case .message(let message) = part {
      self.counter?.countSent(message.count)
      return part
    }
    guard case .metadata(var metadata) = part else { return part }
    if let tracer = self.tracer, let span = self.span {
      tracer.inject(span.context, into: &metadata, using: MeshMetadataInjector())
    }
    if self.previousAttempts > 0 {
      metadata.replaceOrAddString(
        String(self.previousAttempts),
        forKey: "grpc-previous-rpc-attempts"
      )
    }
    if let remainingTime = self.remaining {
      // Always rewritten in the mesh's encoding, the shorter of the two: grpc-swift's executor
      // writes eight digits, which grpc-swift's own servers cannot read.
      var remaining = remainingTime()
      if let current = metadata.meshFirstString("grpc-timeout").flatMap(MeshGRPCTimeout.decode) {
        remaining = min(remaining, current)
      }
      metadata.replaceOrAddString(MeshGRPCTimeout.encode(remaining), forKey: "grpc-timeout")
    }
    return .metadata(metadata)
  }
}

extension Metadata {
  /// The first string value of `key`.
  func meshFirstString(_ key: String) -> String? {
    var values = self[stringValues: key].makeIterator()
    return values.next()
  }
}
