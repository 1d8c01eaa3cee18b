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
internal import GRPCNIOTransportHTTP2Posix
internal import MeshCore
internal import NIOCore

/// The parts a stream received, between the event loop that receives them and the one task that
/// reads them.
///
/// The loop appends whole parts (one lock, at most one continuation resumed per batch of parts
/// received together); the reader takes them in order. Its bytes are flow control's: when the
/// loop holds back a window update because the reader is behind, ``onDrained`` runs once the
/// reader has caught up.
final class MeshNativeInbound<Element: Sendable>: Sendable {
  private struct State {
    var parts = CircularBuffer<(element: Element, bytes: Int)>(initialCapacity: 4)
    var waiter: CheckedContinuation<Element?, any Error>?
    var end: Result<Void, any Error>?
    var bufferedBytes = 0
    var notifyWhenDrained = false
    /// Called (on the reader's task) when the reader has caught up after ``holdBack()``.
    var onDrained: (@Sendable () -> Void)?
    /// Called when the reader's task is cancelled while it waits.
    var onCancel: (@Sendable () -> Void)?
  }

  private let state = MeshMutex(State())
  /// Buffered bytes at or below which the reader is caught up.
  let drainedBelow: Int

  init(drainedBelow: Int) {
    self.drainedBelow = drainedBelow
  }

  /// Sets what runs when the reader catches up and when it is cancelled waiting; `nil` for both
  /// once the stream is done (the owner's references end there).
  func setCallbacks(
    onDrained: (@Sendable () -> Void)?,
    onCancel: (@Sendable () -> Void)?
  ) {
    self.state.withLock { state in
      state.onDrained = onDrained
      state.onCancel = onCancel
    }
  }

  private func drained() {
    self.state.withLock { $0.onDrained }?()
  }

  /// Appends a part of `bytes` (flow-controlled) bytes; returns the bytes now buffered.
  @discardableResult
  func append(_ element: Element, bytes: Int = 0) -> Int {
    let (waiter, buffered) = self.state.withLock {
      state -> (CheckedContinuation<Element?, any Error>?, Int) in
      guard state.end == nil else { return (nil, state.bufferedBytes) }
      if let waiter = state.waiter {
        state.waiter = nil
        return (waiter, state.bufferedBytes)
      }
      state.parts.append((element, bytes))
      state.bufferedBytes += bytes
      return (nil, state.bufferedBytes)
    }
    waiter?.resume(returning: element)
    return buffered
  }

  /// Asks for ``onDrained`` once the reader has caught up (the loop held a window update back).
  func holdBack() {
    let drained = self.state.withLock { state -> Bool in
      if state.bufferedBytes <= self.drainedBelow { return true }
      state.notifyWhenDrained = true
      return false
    }
    if drained { self.drained() }
  }

  /// Ends the parts: the reader gets what is buffered, then `result` (nil after success). The
  /// first end wins.
  func finish(_ result: Result<Void, any Error> = .success(())) {
    let waiter = self.state.withLock { state -> CheckedContinuation<Element?, any Error>? in
      guard state.end == nil else { return nil }
      state.end = result
      if state.parts.isEmpty {
        defer { state.waiter = nil }
        return state.waiter
      }
      return nil
    }
    waiter?.resume(with: result.map { nil })
  }

  /// Ends the parts at once, dropping what is buffered: the reader gets `error` next.
  func fail(_ error: any Error) {
    let waiter = self.state.withLock { state -> CheckedContinuation<Element?, any Error>? in
      if case .failure = state.end { return nil }
      state.end = .failure(error)
      state.parts.removeAll()
      state.bufferedBytes = 0
      defer { state.waiter = nil }
      return state.waiter
    }
    waiter?.resume(throwing: error)
  }

  /// The flow-controlled bytes buffered and not yet read.
  var bufferedBytes: Int {
    self.state.withLock { $0.bufferedBytes }
  }

  /// True once ended and every part has been read.
  var isFinished: Bool {
    self.state.withLock { $0.end != nil && $0.parts.isEmpty }
  }

  /// The next part; nil at the end.
  private enum Taken {
    case element(Element, drained: Bool)
    case end(Result<Void, any Error>)
    case wait
  }

  func next() async throws -> Element? {
    let taken = self.state.withLock { state -> Taken in
      if let (element, bytes) = state.parts.popFirst() {
        state.bufferedBytes -= bytes
        let drained = state.notifyWhenDrained && state.bufferedBytes <= self.drainedBelow
        if drained { state.notifyWhenDrained = false }
        return .element(element, drained: drained)
      }
      if let end = state.end { return .end(end) }
      return .wait
    }
    switch taken {
    case .element(let element, let drained):
      if drained { self.drained() }
      return element
    case .end(let result):
      try result.get()
      return nil
    case .wait:
      return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
          let immediate = self.state.withLock { state -> Result<Element?, any Error>? in
            if let (element, bytes) = state.parts.popFirst() {
              state.bufferedBytes -= bytes
              return .success(element)
            }
            if let end = state.end { return end.map { nil } }
            state.waiter = continuation
            return nil
          }
          if let immediate { continuation.resume(with: immediate) }
        }
      } onCancel: {
        self.state.withLock { $0.onCancel }?()
      }
    }
  }
}

/// An `AsyncSequence` over a ``MeshNativeInbound`` (iterated once).
struct MeshNativeInboundSequence<Element: Sendable>: AsyncSequence, Sendable {
  let inbound: MeshNativeInbound<Element>

  struct AsyncIterator: AsyncIteratorProtocol {
    let inbound: MeshNativeInbound<Element>

    mutating func next() async throws -> Element? {
      try await self.read()
    }

    mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> Element? {
      try await self.read()
    }

    /// The next part. grpc-swift calls this iterator through an existential, which runs generic
    /// code; the transports' own parts are read by the code compiled for them (the generic code
    /// looks up the runtime metadata of every generic type it touches, on every part).
    private func read() async throws -> Element? {
      typealias Response = RPCResponsePart<GRPCNIOTransportBytes>
      typealias Request = RPCRequestPart<GRPCNIOTransportBytes>
      if Element.self == Response.self {
        let part = try await unsafeDowncast(
          self.inbound,
          to: MeshNativeInbound<Response>.self
        ).next()
        return unsafeBitCast(part, to: Element?.self)
      }
      if Element.self == Request.self {
        let part = try await unsafeDowncast(self.inbound, to: MeshNativeInbound<Request>.self)
          .next()
        return unsafeBitCast(part, to: Element?.self)
      }
      return try await self.inbound.next()
    }
  }

  func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(inbound: self.inbound)
  }
}
