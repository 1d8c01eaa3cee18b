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
private import MeshCore
internal import MeshProto
internal import SwiftProtobuf

/// The standard grpc.health.v1 `Health` service: `Check`, `Watch` and `List`.
///
/// Holds a serving status per service name. The empty name is the whole server and starts
/// ``MeshServingStatus/serving``; every other service is unknown until a status is set for it.
///
/// Register it with the server like any generated service, and keep it to update statuses:
///
/// ```swift
/// let health = MeshHealthService()
/// let server = GRPCServer(transport: transport, services: [greeter, health])
/// health.setServing(service: "helloworld.Greeter")
/// ```
///
/// - `Check` returns the current status; an unknown service fails with `NOT_FOUND`.
/// - `Watch` sends the current status at once, then one message per change, never the same status
///   twice in a row. A slow reader may skip an intermediate status but always ends on the latest
///   one. For an unknown service it sends `SERVICE_UNKNOWN` and keeps the stream open. Watching
///   does not make a service known. The stream ends when the caller cancels it or the server stops.
/// - `List` returns every known service; more than 100 fail with `RESOURCE_EXHAUSTED` (gRFC A90).
///
/// To drain, call ``enterTerminalState()`` before shutting the server down: every service turns
/// `NOT_SERVING`, every watcher is told, and later updates are ignored.
///
/// A status change costs one non-blocking yield per watcher of that service and no task per
/// watcher; there is no polling.
public final class MeshHealthService: Sendable {
  fileprivate let table: MeshMutex<HealthStatusTable>

  /// Creates a health service in which the whole server (`""`) is serving.
  public init() {
    self.table = MeshMutex(HealthStatusTable())
  }

  /// Marks `service` as serving. The default, `""`, is the whole server.
  public func setServing(service: String = "") {
    self.setStatus(.serving, for: service)
  }

  /// Marks `service` as not serving. The default, `""`, is the whole server.
  public func setNotServing(service: String = "") {
    self.setStatus(.notServing, for: service)
  }

  /// Sets the status of `service`. Ignored after ``enterTerminalState()``.
  public func setStatus(_ status: MeshServingStatus, for service: String) {
    self.table.withLock { table in
      // Delivered under the lock so that two racing updates reach every watcher in the order they
      // were applied; each delivery is a non-blocking yield.
      table.setStatus(status, for: service)?.deliver()
    }
  }

  /// Forgets `service`: `Check` fails with `NOT_FOUND` and watchers are told `SERVICE_UNKNOWN`.
  /// Ignored after ``enterTerminalState()``.
  public func clearStatus(for service: String) {
    self.table.withLock { table in
      table.clearStatus(for: service)?.deliver()
    }
  }

  /// Sets every known service to not serving and ignores all later updates.
  ///
  /// Call it when the server starts to drain, so that clients and registries that watch or check
  /// its health stop sending it work before it goes away.
  public func enterTerminalState() {
    self.table.withLock { table in
      for notification in table.enterTerminalState() {
        notification.deliver()
      }
    }
  }

  /// The status of `service`, or nil if it is unknown.
  public func status(of service: String) -> MeshServingStatus? {
    self.table.withLock { $0.status(of: service) }
  }

  /// Every known service's status (the whole server's under `""`), for metrics.
  public var statuses: [String: MeshServingStatus] {
    self.table.withLock { $0.allStatuses }
  }

  /// The number of open `Watch` streams (a gauge for metrics, and a leak check).
  public var watcherCount: Int {
    self.table.withLock { $0.watcherCount }
  }

  /// Suspends until exactly `count` `Watch` streams are open. For tests and drain logic that must
  /// wait for watchers to come or go without polling.
  package func waitForWatcherCount(_ count: Int) async {
    await withCheckedContinuation { continuation in
      self.table.withLock { $0.addWatcherCountWaiter(count: count, continuation: continuation) }
    }
  }
}

extension MeshHealthService: RegistrableRPCService {
  /// Registers grpc.health.v1 `Check`, `Watch` and `List` with `router`; the server calls this
  /// when it is given the service.
  public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    HealthServicer(health: self).registerMethods(with: &router)
  }
}

/// The generated service protocol's implementation, kept out of ``MeshHealthService``'s public API.
private struct HealthServicer: Grpc_Health_V1_Health.SimpleServiceProtocol {
  let health: MeshHealthService

  func check(
    request: Grpc_Health_V1_HealthCheckRequest,
    context: ServerContext
  ) async throws -> Grpc_Health_V1_HealthCheckResponse {
    guard let status = self.health.status(of: request.service) else {
      throw RPCError(code: .notFound, message: "Unknown service '\(request.service)'.")
    }
    return .with { $0.status = .init(.known(status)) }
  }

  func list(
    request: Grpc_Health_V1_HealthListRequest,
    context: ServerContext
  ) async throws -> Grpc_Health_V1_HealthListResponse {
    let statuses = self.health.table.withLock { $0.allStatuses }
    guard statuses.count <= HealthStatusTable.listLimit else {
      throw RPCError(
        code: .resourceExhausted,
        message: """
          \(statuses.count) services are registered, more than the \
          \(HealthStatusTable.listLimit) that List may return.
          """
      )
    }
    return .with { response in
      for (service, status) in statuses {
        response.statuses[service] = .with { $0.status = .init(.known(status)) }
      }
    }
  }

  func watch(
    request: Grpc_Health_V1_HealthCheckRequest,
    response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
    context: ServerContext
  ) async throws {
    // Newest-only buffering: a watcher that reads slowly skips to the latest status rather than
    // queueing every change, so memory per watcher is bounded.
    let (updates, continuation) = AsyncStream.makeStream(
      of: WatchedStatus.self,
      bufferingPolicy: .bufferingNewest(1)
    )
    let watcherID = self.health.table.withLock { $0.addWatcher(continuation, for: request.service) }
    defer {
      self.health.table.withLock { $0.removeWatcher(watcherID) }
      continuation.finish()
    }

    // gRPC reports a cancelled RPC (the caller went away, the server stopped) through the RPC
    // cancellation handle, not by cancelling this task: listen to both, or the stream never ends.
    try await withRPCCancellationHandler {
      try await withTaskCancellationHandler {
        var lastSent: WatchedStatus?
        for await status in updates where status != lastSent {
          try await response.write(.with { $0.status = .init(status) })
          lastSent = status
        }
      } onCancel: {
        continuation.finish()
      }
    } onCancelRPC: {
      continuation.finish()
    }
  }
}

extension Grpc_Health_V1_HealthCheckResponse.ServingStatus {
  init(_ status: WatchedStatus) {
    switch status {
    case .known(let status):
      switch status.value {
      case .serving:
        self = .serving
      case .notServing:
        self = .notServing
      }
    case .serviceUnknown:
      self = .serviceUnknown
    }
  }
}
