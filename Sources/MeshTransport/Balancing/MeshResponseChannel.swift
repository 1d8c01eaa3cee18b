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
private import MeshCore

/// The response of one RPC, passed from the attempt that committed to the caller, with
/// backpressure: the attempt waits while `capacity` parts are unread.
///
/// Either side can end it: the attempt with the response's end or failure, the RPC (its
/// deadline) with ``fail(_:)``, which the caller then reads in place of what was left.
final class MeshResponseChannel<Bytes: GRPCContiguousBytes & Sendable>: Sendable {
  private struct State {
    var buffer: [RPCResponsePart<Bytes>] = []
    var head = 0
    var ended = false
    var failure: (any Error)?
    var consumerGone = false
    var consumer: CheckedContinuation<RPCResponsePart<Bytes>?, any Error>?
    var producer: CheckedContinuation<Bool, Never>?

    var unread: Int { self.buffer.count - self.head }

    mutating func pop() -> RPCResponsePart<Bytes> {
      let part = self.buffer[self.head]
      self.head += 1
      if self.head == self.buffer.count {
        self.buffer.removeAll(keepingCapacity: true)
        self.head = 0
      }
      return part
    }
  }

  private let state = MeshMutex(State())
  private let capacity: Int

  init(capacity: Int = 16) {
    self.capacity = capacity
  }

  // MARK: - The attempt's side

  /// Passes `part` on; false once the caller no longer reads (or the RPC failed).
  func send(_ part: RPCResponsePart<Bytes>) async -> Bool {
    let (consumer, mustWait, open) = self.state.withLock {
      state -> (CheckedContinuation<RPCResponsePart<Bytes>?, any Error>?, Bool, Bool) in
      guard !state.consumerGone, !state.ended else { return (nil, false, false) }
      if let consumer = state.consumer {
        state.consumer = nil
        return (consumer, false, true)
      }
      state.buffer.append(part)
      return (nil, state.unread >= self.capacity, true)
    }
    guard open else { return false }
    if let consumer {
      consumer.resume(returning: part)
      return true
    }
    guard mustWait else { return true }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
        let now = self.state.withLock { state -> Bool? in
          if state.consumerGone || state.ended || Task.isCancelled { return false }
          guard state.unread >= self.capacity else { return true }
          state.producer = continuation
          return nil
        }
        if let now { continuation.resume(returning: now) }
      }
    } onCancel: {
      let producer = self.state.withLock { state in
        defer { state.producer = nil }
        return state.producer
      }
      producer?.resume(returning: false)
    }
  }

  /// The response ended (`error` nil) or failed.
  func finish(throwing error: (any Error)? = nil) {
    let (consumer, producer) = self.state.withLock {
      state -> (
        CheckedContinuation<RPCResponsePart<Bytes>?, any Error>?, CheckedContinuation<Bool, Never>?
      ) in
      guard !state.ended else { return (nil, nil) }
      state.ended = true
      state.failure = error
      defer {
        state.consumer = nil
        state.producer = nil
      }
      return (state.unread == 0 ? state.consumer : nil, state.producer)
    }
    if let error { consumer?.resume(throwing: error) } else { consumer?.resume(returning: nil) }
    producer?.resume(returning: false)
  }

  /// Fails the response now, dropping what was not read: the caller reads `error`.
  func fail(_ error: any Error) {
    let (consumer, producer) = self.state.withLock {
      state -> (
        CheckedContinuation<RPCResponsePart<Bytes>?, any Error>?, CheckedContinuation<Bool, Never>?
      ) in
      guard !state.ended || state.unread > 0 else { return (nil, nil) }
      state.ended = true
      state.failure = error
      state.buffer.removeAll()
      state.head = 0
      defer {
        state.consumer = nil
        state.producer = nil
      }
      return (state.consumer, state.producer)
    }
    consumer?.resume(throwing: error)
    producer?.resume(returning: false)
  }

  // MARK: - The caller's side

  /// The caller stopped reading: the attempt's sends return false.
  func consumerFinished() {
    let producer = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
      state.consumerGone = true
      state.buffer.removeAll()
      state.head = 0
      defer { state.producer = nil }
      return state.producer
    }
    producer?.resume(returning: false)
  }

  func next() async throws -> RPCResponsePart<Bytes>? {
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation {
        (continuation: CheckedContinuation<RPCResponsePart<Bytes>?, any Error>) in
        let (now, producer) = self.state.withLock {
          state -> (Result<RPCResponsePart<Bytes>?, any Error>?, CheckedContinuation<Bool, Never>?)
          in
          if state.unread > 0 {
            let part = state.pop()
            var producer: CheckedContinuation<Bool, Never>?
            if state.unread < self.capacity {
              producer = state.producer
              state.producer = nil
            }
            return (.success(part), producer)
          }
          if state.ended { return (state.failure.map { .failure($0) } ?? .success(nil), nil) }
          if Task.isCancelled { return (.failure(CancellationError()), nil) }
          state.consumer = continuation
          return (nil, nil)
        }
        producer?.resume(returning: true)
        if let now { continuation.resume(with: now) }
      }
    } onCancel: {
      let consumer = self.state.withLock { state in
        defer { state.consumer = nil }
        return state.consumer
      }
      consumer?.resume(throwing: CancellationError())
    }
  }
}

/// The caller's view of a ``MeshResponseChannel``.
struct MeshResponseSequence<Bytes: GRPCContiguousBytes & Sendable>: AsyncSequence, Sendable {
  typealias Element = RPCResponsePart<Bytes>
  typealias Failure = any Error

  let channel: MeshResponseChannel<Bytes>
  /// Told the status the caller reads (with metrics on).
  let ending: (any MeshResponseEnding)?

  init(channel: MeshResponseChannel<Bytes>, ending: (any MeshResponseEnding)? = nil) {
    self.channel = channel
    self.ending = ending
  }

  func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(channel: self.channel, ending: self.ending)
  }

  struct AsyncIterator: AsyncIteratorProtocol {
    let channel: MeshResponseChannel<Bytes>
    let ending: (any MeshResponseEnding)?

    mutating func next() async throws -> RPCResponsePart<Bytes>? {
      // grpc-swift calls this through an existential, which runs generic code: a mesh client's
      // runs the code compiled for its bytes (see `MeshBalancingTransport.withStream`).
      if Bytes.self == GRPCNIOTransportBytes.self {
        let part = try await unsafeBitCast(
          self,
          to: MeshResponseSequence<GRPCNIOTransportBytes>.AsyncIterator.self
        ).nextPart()
        return unsafeBitCast(part, to: RPCResponsePart<Bytes>?.self)
      }
      return try await self.nextPart()
    }

    private func nextPart() async throws -> RPCResponsePart<Bytes>? {
      guard let ending = self.ending else { return try await self.channel.next() }
      do {
        let part = try await self.channel.next()
        ending.responseRead(part)
        return part
      } catch {
        throw ending.responseFailed(error)
      }
    }
  }
}

/// Told how a response ended, as its caller read it.
protocol MeshResponseEnding: AnyObject, Sendable {
  func responseEnded(_ code: Status.Code, message: String)
}

extension MeshResponseEnding {
  /// The caller read `part`: a status (or the end without one) ends the response.
  func responseRead<Bytes>(_ part: RPCResponsePart<Bytes>?) {
    switch part {
    case .status(let status, _): self.responseEnded(status.code, message: status.message)
    case nil: self.responseEnded(.unknown, message: "The response ended without a status.")
    case .metadata, .message: ()
    }
  }

  /// The caller's read failed with `error`, which ends the response; returns it, to throw.
  func responseFailed(_ error: any Error) -> any Error {
    if let error = error as? RPCError {
      self.responseEnded(Status.Code(error.code), message: error.message)
    } else {
      self.responseEnded(error is CancellationError ? .cancelled : .unknown, message: "\(error)")
    }
    return error
  }
}

/// The caller's view of a ``MeshRequestLog``.
struct MeshRequestWriter<Bytes: GRPCContiguousBytes & Sendable>: ClosableRPCWriterProtocol {
  typealias Element = RPCRequestPart<Bytes>

  let log: MeshRequestLog<Bytes>

  func write(_ element: RPCRequestPart<Bytes>) async throws {
    // Called through an existential, as MeshResponseSequence's iterator is.
    if Bytes.self == GRPCNIOTransportBytes.self {
      try await unsafeDowncast(self.log, to: MeshRequestLog<GRPCNIOTransportBytes>.self).write(
        unsafeBitCast(element, to: RPCRequestPart<GRPCNIOTransportBytes>.self)
      )
      return
    }
    try await self.log.write(element)
  }

  func write(contentsOf elements: some Sequence<RPCRequestPart<Bytes>>) async throws {
    for element in elements { try await self.log.write(element) }
  }

  func finish() async {
    if Bytes.self == GRPCNIOTransportBytes.self {
      unsafeDowncast(self.log, to: MeshRequestLog<GRPCNIOTransportBytes>.self).finish()
      return
    }
    self.log.finish()
  }

  func finish(throwing error: any Error) async {
    self.log.finish(throwing: error)
  }
}
