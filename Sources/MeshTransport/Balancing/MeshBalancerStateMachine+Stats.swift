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

internal import MeshCore
internal import MeshDiscovery

// What the balancer reports: its stats, their observers, and why endpoints are not ready.
extension MeshBalancerStateMachine {
  var stats: MeshTransportStats {
    var stats = MeshTransportStats()
    self.admission.record(into: &stats)
    stats.endpoints = self.order.count
    stats.pickable = self.picker.endpoints.count
    stats.connections = self.connections
    stats.pending = self.waiters.count
    stats.draining = self.isShutDown
    stats.invalidEndpoints = self.invalidEndpoints
    stats.discoveryError = self.discoveryError
    stats.failedAttempts = self.failedAttempts
    stats.perTryTimeouts = self.perTryTimeouts
    stats.perTryAbandonments = self.perTryAbandonments
    for id in self.order {
      if let error = self.entries[id]?.lastError { stats.connectionErrors[id] = error }
    }
    if let detector = self.detector {
      stats.ejectedEndpoints = detector.ejected
      stats.halfOpen = self.order.lazy.filter { detector.state(of: $0) == .halfOpen }.count
      stats.ejectionsTotal = detector.ejectionsTotal
      stats.readmissionsTotal = detector.readmissionsTotal
    }
    return stats
  }

  /// Adds an observer of the stats; false when `predicate` already holds (nothing is stored).
  mutating func observe(
    _ predicate: @escaping @Sendable (MeshTransportStats) -> Bool,
    signal: MeshSignal
  ) -> Bool {
    if predicate(self.stats) { return false }
    self.observers.append((predicate, signal))
    return true
  }

  /// The observers whose predicate now holds, removed, to fire.
  mutating func notifyObservers() -> [MeshSignal] {
    guard !self.observers.isEmpty else { return [] }
    let stats = self.stats
    var fired: [MeshSignal] = []
    self.observers.removeAll { observer in
      guard observer.predicate(stats) else { return false }
      fired.append(observer.signal)
      return true
    }
    return fired
  }

  /// The endpoints picked from now.
  var pickableEndpoints: [MeshEndpoint] {
    self.picker.endpoints.compactMap { self.entries[$0.id]?.endpoint }
  }

  /// Endpoints that are not connected, with why, for an RPC's failure (at most three).
  var unreadyReasons: String {
    let reasons = self.order.lazy.compactMap { id -> String? in
      guard let entry = self.entries[id], !entry.connected else { return nil }
      return "\(entry.endpoint): \(entry.lastError ?? "not connected yet")"
    }
    let shown = Array(reasons.prefix(3))
    let more = self.order.count > 3 ? " (of \(self.order.count) endpoints)" : ""
    return shown.joined(separator: "; ") + more
  }
}
