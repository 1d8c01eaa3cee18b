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

import MeshCore
import MeshHealth
import Testing

@Suite("HealthStatusTable")
struct HealthStatusTableTests {
  /// A watcher sink and the stream it feeds, buffering everything so tests see every yield.
  struct Probe {
    let stream: AsyncStream<WatchedStatus>
    let watcher: HealthStatusTable.Watcher

    init() {
      (self.stream, self.watcher) = AsyncStream.makeStream(of: WatchedStatus.self)
    }

    /// Everything yielded so far (finishes the sink first).
    func drain() async -> [WatchedStatus] {
      self.watcher.finish()
      var received: [WatchedStatus] = []
      for await status in self.stream {
        received.append(status)
      }
      return received
    }
  }

  @Test("The whole server starts serving; other services are unknown")
  func initialState() {
    let table = HealthStatusTable()
    #expect(table.status(of: "") == .serving)
    #expect(table.status(of: "svc") == nil)
    #expect(table.allStatuses == ["": .serving])
    #expect(table.watcherCount == 0)
    #expect(!table.isTerminal)
  }

  @Test("Setting a status notifies only when it changes")
  func setStatusNotifiesOnChange() async {
    var table = HealthStatusTable()
    let probe = Probe()
    _ = table.addWatcher(probe.watcher, for: "svc")

    table.setStatus(.serving, for: "svc")?.deliver()
    #expect(table.setStatus(.serving, for: "svc") == nil, "same status is not a change")
    table.setStatus(.notServing, for: "svc")?.deliver()
    #expect(table.status(of: "svc") == .notServing)

    #expect(
      await probe.drain() == [.serviceUnknown, .known(.serving), .known(.notServing)]
    )
  }

  @Test("A change reaches the watchers of that service only")
  func notificationsAreScopedToTheService() async {
    var table = HealthStatusTable()
    let a = Probe()
    let b = Probe()
    _ = table.addWatcher(a.watcher, for: "a")
    _ = table.addWatcher(b.watcher, for: "b")

    let notification = table.setStatus(.serving, for: "a")
    #expect(notification?.watchers.count == 1)
    notification?.deliver()

    #expect(await a.drain() == [.serviceUnknown, .known(.serving)])
    #expect(await b.drain() == [.serviceUnknown])
  }

  @Test("No notification when nobody watches")
  func noWatchersNoNotification() {
    var table = HealthStatusTable()
    #expect(table.setStatus(.notServing, for: "svc") == nil)
    #expect(table.status(of: "svc") == .notServing)
  }

  @Test("Watching an unknown service does not make it known")
  func watchingDoesNotRegister() async {
    var table = HealthStatusTable()
    let probe = Probe()
    _ = table.addWatcher(probe.watcher, for: "ghost")
    #expect(table.status(of: "ghost") == nil)
    #expect(table.allStatuses.keys.sorted() == [""])
    #expect(await probe.drain() == [.serviceUnknown])
  }

  @Test("A new watcher is told the current status at once")
  func watcherGetsCurrentStatus() async {
    var table = HealthStatusTable()
    _ = table.setStatus(.notServing, for: "svc")
    let probe = Probe()
    _ = table.addWatcher(probe.watcher, for: "svc")
    let whole = Probe()
    _ = table.addWatcher(whole.watcher, for: "")
    #expect(await probe.drain() == [.known(.notServing)])
    #expect(await whole.drain() == [.known(.serving)])
  }

  @Test("Clearing a status makes the service unknown and tells its watchers")
  func clearStatus() async {
    var table = HealthStatusTable()
    _ = table.setStatus(.serving, for: "svc")
    let probe = Probe()
    _ = table.addWatcher(probe.watcher, for: "svc")

    table.clearStatus(for: "svc")?.deliver()
    #expect(table.status(of: "svc") == nil)
    #expect(table.clearStatus(for: "svc") == nil, "clearing an unknown service is a no-op")

    #expect(await probe.drain() == [.known(.serving), .serviceUnknown])
  }

  @Test("The terminal state sets everything NOT_SERVING and freezes the table")
  func terminalState() async {
    var table = HealthStatusTable()
    _ = table.setStatus(.serving, for: "a")
    _ = table.setStatus(.notServing, for: "b")
    let a = Probe()
    let b = Probe()
    let whole = Probe()
    _ = table.addWatcher(a.watcher, for: "a")
    _ = table.addWatcher(b.watcher, for: "b")
    _ = table.addWatcher(whole.watcher, for: "")

    let notifications = table.enterTerminalState()
    #expect(notifications.count == 2, "b was already NOT_SERVING")
    for notification in notifications {
      notification.deliver()
    }
    #expect(table.isTerminal)
    #expect(table.allStatuses == ["": .notServing, "a": .notServing, "b": .notServing])

    // Every later update is ignored.
    #expect(table.setStatus(.serving, for: "a") == nil)
    #expect(table.setStatus(.serving, for: "new") == nil)
    #expect(table.clearStatus(for: "a") == nil)
    #expect(table.enterTerminalState().isEmpty)
    #expect(table.status(of: "a") == .notServing)
    #expect(table.status(of: "new") == nil)

    #expect(await a.drain() == [.known(.serving), .known(.notServing)])
    #expect(await b.drain() == [.known(.notServing)])
    #expect(await whole.drain() == [.known(.serving), .known(.notServing)])
  }

  @Test("Removing watchers brings the count back to zero; removing twice is harmless")
  func removeWatchers() {
    var table = HealthStatusTable()
    let ids = (0..<3).map { _ in table.addWatcher(Probe().watcher, for: "svc") }
    let other = table.addWatcher(Probe().watcher, for: "other")
    #expect(table.watcherCount == 4)

    for id in ids {
      table.removeWatcher(id)
    }
    table.removeWatcher(ids[0])
    #expect(table.watcherCount == 1)
    #expect(table.setStatus(.serving, for: "svc") == nil, "no watchers of svc are left")

    table.removeWatcher(other)
    #expect(table.watcherCount == 0)
  }

  @Test("One change fans out to 10,000 watchers of a service, and only to them")
  func fanOutToManyWatchers() async {
    var table = HealthStatusTable()
    _ = table.setStatus(.serving, for: "svc")
    let probes = (0..<10_000).map { _ in Probe() }
    for probe in probes {
      _ = table.addWatcher(probe.watcher, for: "svc")
    }
    let bystander = Probe()
    _ = table.addWatcher(bystander.watcher, for: "other")
    #expect(table.watcherCount == 10_001)

    let notification = table.setStatus(.notServing, for: "svc")
    #expect(notification?.watchers.count == 10_000)
    notification?.deliver()

    for probe in probes {
      #expect(await probe.drain() == [.known(.serving), .known(.notServing)])
    }
    #expect(await bystander.drain() == [.serviceUnknown])
  }

  @Test("Watcher-count waiters resume when the count is reached")
  func watcherCountWaiters() async {
    let table = TableBox()
    async let reachedTwo: Void = table.waitForCount(2)
    async let reachedZero: Void = table.waitForCount(0)  // true now: resumes at once
    await reachedZero

    let first = table.add()
    let second = table.add()
    await reachedTwo
    table.remove(first)
    table.remove(second)
    await table.waitForCount(0)
  }
}

/// A table behind a lock, so concurrent waiters can be exercised.
private final class TableBox: Sendable {
  private let table = MeshMutex(HealthStatusTable())

  func add() -> HealthStatusTable.WatcherID {
    let (_, watcher) = AsyncStream.makeStream(of: WatchedStatus.self)
    return self.table.withLock { $0.addWatcher(watcher, for: "s") }
  }

  func remove(_ id: HealthStatusTable.WatcherID) {
    self.table.withLock { $0.removeWatcher(id) }
  }

  func waitForCount(_ count: Int) async {
    await withCheckedContinuation { continuation in
      self.table.withLock { $0.addWatcherCountWaiter(count: count, continuation: continuation) }
    }
  }
}
