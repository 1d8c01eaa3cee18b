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

/// Where the instances of a service are: Consul, a static list, DNS, or anything else.
///
/// The balancing transport asks for a watch per target service and spreads RPCs over what it
/// yields; nothing else needs to know which registry is behind it.
public protocol MeshDiscovery: Sendable {
  /// Starts watching the instances of `service`.
  ///
  /// See ``MeshEndpointUpdates`` for what the sequence yields, what its end and a thrown error
  /// mean, and how to stop it.
  func watch(_ service: String) -> MeshEndpointUpdates
}

/// The endpoint sets of one service, pushed as they change.
///
/// - **Push-based.** Each element is the complete current set and replaces the previous one (not
///   a delta). The first element comes as soon as the registry first answers; later ones only
///   when the set changes, so two elements in a row always differ.
/// - **Transient failures are not errors.** While the registry is down or answers garbage, the
///   watch keeps retrying with backoff and yields nothing: the last set stays valid. An empty
///   set means the registry says there is no healthy instance.
/// - **A thrown error is final**: the watch cannot go on (for example, its configuration is
///   invalid). The consumer keeps the last set if it wants to degrade gracefully.
/// - **`nil` (the end)** means no update will ever come again, as for a fixed list; the last set
///   stays valid. Implementations that can change never finish on their own.
/// - **Cancellation.** Cancelling the task that iterates stops the watch and frees what it holds
///   (requests in flight, timers); `next()` then throws `CancellationError` (or returns nil),
///   which is not a failure of the registry.
/// - **One pass.** A value may be iterated once; call ``MeshDiscovery/watch(_:)`` again for an
///   independent watch.
public struct MeshEndpointUpdates: AsyncSequence, Sendable {
  /// Each element is the complete set of the service's endpoints.
  public typealias Element = MeshEndpointSet

  private let makeBase: @Sendable () -> any MeshEndpointIterator

  /// Type-erases `base`. Implementations usually do their work inside their iterator's
  /// `next()` (a blocking query, a timer and a lookup), so the consumer's task runs it and its
  /// cancellation stops it: no task is spawned behind the consumer's back.
  public init<Base: AsyncSequence & Sendable>(_ base: Base)
  where Base.Element == MeshEndpointSet {
    self.makeBase = { IteratorBox(base.makeAsyncIterator()) }
  }

  /// An iterator over the sets; see ``MeshEndpointUpdates`` for what it yields and when.
  public func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(base: self.makeBase())
  }

  /// The iterator of ``MeshEndpointUpdates``: yields a set only when it differs from the last one
  /// it returned.
  public struct AsyncIterator: AsyncIteratorProtocol {
    private let base: any MeshEndpointIterator
    private var last: MeshEndpointSet?

    fileprivate init(base: any MeshEndpointIterator) {
      self.base = base
    }

    /// The next set that differs from the last one returned.
    public mutating func next() async throws -> MeshEndpointSet? {
      while let set = try await self.base.next() {
        if set != self.last {
          self.last = set
          return set
        }
      }
      return nil
    }
  }
}

/// A type-erased iterator of endpoint sets.
private protocol MeshEndpointIterator: AnyObject {
  func next() async throws -> MeshEndpointSet?
}

/// Holds a concrete iterator so the erased one can mutate it.
private final class IteratorBox<Base: AsyncIteratorProtocol>: MeshEndpointIterator
where Base.Element == MeshEndpointSet {
  private var base: Base

  init(_ base: Base) {
    self.base = base
  }

  func next() async throws -> MeshEndpointSet? {
    try await self.base.next()
  }
}
