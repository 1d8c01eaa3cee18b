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

/// What a `Watch` stream reports: a set status, or that the service is unknown.
package enum WatchedStatus: Hashable, Sendable {
  case known(MeshServingStatus)
  case serviceUnknown
}

/// The health servicer's state: a status per service name, and the open `Watch` streams.
///
/// A value type with no I/O: mutations return a ``Notification`` naming the watchers to tell, and
/// the owner delivers it. Watchers are grouped by service, so a change touches only the watchers of
/// that service and costs nothing per idle watcher of another.
package struct HealthStatusTable {
  /// The sink of one `Watch` stream.
  package typealias Watcher = AsyncStream<WatchedStatus>.Continuation

  /// The most services `List` reports before failing with `RESOURCE_EXHAUSTED` (gRFC A90).
  package static let listLimit = 100

  /// The watchers to tell about a new status.
  package struct Notification {
    package let watchers: [UInt64: Watcher]
    package let status: WatchedStatus

    /// Yields the status to every watcher; never blocks (each stream buffers its newest value).
    package func deliver() {
      for watcher in self.watchers.values {
        watcher.yield(self.status)
      }
    }
  }

  /// Identifies a registered watcher, for removal.
  package struct WatcherID: Hashable, Sendable {
    package let service: String
    package let id: UInt64
  }

  private var statuses: [String: MeshServingStatus]
  private var watchers: [String: [UInt64: Watcher]]
  private var nextWatcherID: UInt64
  /// Tasks waiting for ``watcherCount`` to reach a value (see `waitForWatcherCount`).
  private var watcherCountWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)]
  /// Set by ``enterTerminalState()``; every later update is ignored.
  package private(set) var isTerminal: Bool
  package private(set) var watcherCount: Int

  /// A table in which the whole server (the empty service name) is serving.
  package init() {
    self.statuses = ["": .serving]
    self.watchers = [:]
    self.nextWatcherID = 0
    self.watcherCountWaiters = []
    self.isTerminal = false
    self.watcherCount = 0
  }

  /// The status set for `service`, or nil if it is unknown.
  package func status(of service: String) -> MeshServingStatus? {
    self.statuses[service]
  }

  /// Every known service and its status.
  package var allStatuses: [String: MeshServingStatus] {
    self.statuses
  }

  /// Sets the status of `service`; returns the watchers to tell if it changed.
  package mutating func setStatus(
    _ status: MeshServingStatus,
    for service: String
  ) -> Notification? {
    guard !self.isTerminal else { return nil }
    let previous = self.statuses.updateValue(status, forKey: service)
    guard previous != status else { return nil }
    return self.notification(for: service, status: .known(status))
  }

  /// Forgets `service`; its watchers are told `SERVICE_UNKNOWN`.
  package mutating func clearStatus(for service: String) -> Notification? {
    guard !self.isTerminal else { return nil }
    guard self.statuses.removeValue(forKey: service) != nil else { return nil }
    return self.notification(for: service, status: .serviceUnknown)
  }

  /// Sets every known service to `NOT_SERVING` and ignores later updates.
  package mutating func enterTerminalState() -> [Notification] {
    guard !self.isTerminal else { return [] }
    var notifications: [Notification] = []
    for (service, status) in self.statuses where status != .notServing {
      self.statuses[service] = .notServing
      if let notification = self.notification(for: service, status: .known(.notServing)) {
        notifications.append(notification)
      }
    }
    self.isTerminal = true
    return notifications
  }

  /// Registers a watcher of `service` and yields the current status to it at once.
  ///
  /// Watching does not make a service known: an unknown service stays unknown to `Check` and
  /// `List`, and the watcher is told `SERVICE_UNKNOWN` until a status is set.
  package mutating func addWatcher(_ watcher: Watcher, for service: String) -> WatcherID {
    let id = self.nextWatcherID
    self.nextWatcherID &+= 1
    self.watchers[service, default: [:]][id] = watcher
    self.watcherCount += 1
    self.resumeWatcherCountWaiters()
    watcher.yield(self.statuses[service].map { .known($0) } ?? .serviceUnknown)
    return WatcherID(service: service, id: id)
  }

  /// Removes a watcher; removing one twice is harmless.
  package mutating func removeWatcher(_ watcherID: WatcherID) {
    guard var serviceWatchers = self.watchers.removeValue(forKey: watcherID.service) else {
      return
    }
    if serviceWatchers.removeValue(forKey: watcherID.id) != nil {
      self.watcherCount -= 1
      self.resumeWatcherCountWaiters()
    }
    if !serviceWatchers.isEmpty {
      self.watchers[watcherID.service] = serviceWatchers
    }
  }

  /// Resumes `continuation` once ``watcherCount`` equals `count` (at once if it does now).
  package mutating func addWatcherCountWaiter(
    count: Int,
    continuation: CheckedContinuation<Void, Never>
  ) {
    if self.watcherCount == count {
      continuation.resume()
    } else {
      self.watcherCountWaiters.append((count, continuation))
    }
  }

  private mutating func resumeWatcherCountWaiters() {
    let count = self.watcherCount
    self.watcherCountWaiters.removeAll { waiter in
      guard waiter.count == count else { return false }
      waiter.continuation.resume()
      return true
    }
  }

  private func notification(for service: String, status: WatchedStatus) -> Notification? {
    guard let watchers = self.watchers[service], !watchers.isEmpty else { return nil }
    return Notification(watchers: watchers, status: status)
  }
}
