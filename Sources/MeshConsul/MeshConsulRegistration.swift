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

public import Logging

/// Registers the running instance with the local Consul agent and keeps it registered.
///
/// ```swift
/// let registration = MeshConsulRegistration(
///   client: consul,
///   registration: ConsulServiceRegistration(
///     id: "orders-1", name: "orders", address: "10.0.0.7", port: 8443,
///     check: .grpc("10.0.0.7:8443", interval: .seconds(10), useTLS: true,
///                  deregisterCriticalServiceAfter: .seconds(600))
///   )
/// )
/// // In a task group or a ServiceGroup:
/// try await registration.run()
/// ```
///
/// ``run()`` registers, then — for a registration with a TTL check — reports `passing` every
/// ``heartbeatInterval`` (a third of the TTL by default) until ``beginGracefulShutdown()``, when it
/// deregisters and returns. Cancelling the task is the hard stop: nothing more is sent, and
/// Consul's `DeregisterCriticalServiceAfter` removes the instance. A failed heartbeat is logged and
/// retried at the next beat.
public final class MeshConsulRegistration<Clock: _Concurrency.Clock>: Sendable
where Clock.Duration == Duration {
  /// The client of the local agent the instance registers with.
  public let client: ConsulClient
  /// What is registered: the service definition and its checks.
  public let registration: ConsulServiceRegistration
  /// How often TTL checks are reported passing; nil when the registration has no TTL check.
  public let heartbeatInterval: Duration?
  private let clock: Clock
  private let logger: Logger
  private let shutdown: AsyncStream<Void>
  private let shutdownTrigger: AsyncStream<Void>.Continuation

  /// The service ID Consul knows the instance by.
  public var serviceID: String {
    self.registration.id ?? self.registration.name
  }

  /// Keeps `registration` registered through `client`, timed by `clock`.
  ///
  /// - Parameter heartbeatInterval: How often TTL checks are reported passing; nil for a third of
  ///   the shortest TTL among the registration's checks.
  public init(
    client: ConsulClient,
    registration: ConsulServiceRegistration,
    heartbeatInterval: Duration? = nil,
    clock: Clock,
    logger: Logger = Logger(label: "mesh.consul", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.client = client
    self.registration = registration
    let ttls = registration.allChecks.compactMap { $0.ttl.flatMap(ConsulDuration.parse) }
    self.heartbeatInterval = heartbeatInterval ?? ttls.min().map { $0 / 3 }
    self.clock = clock
    self.logger = logger
    (self.shutdown, self.shutdownTrigger) = AsyncStream.makeStream(of: Void.self)
  }

  /// The IDs of the registration's TTL checks, as Consul assigns them.
  public var ttlCheckIDs: [String] {
    let checks = self.registration.allChecks
    return checks.enumerated().compactMap { position, check in
      guard check.ttl != nil else { return nil }
      if let id = check.checkID { return id }
      return checks.count > 1
        ? "service:\(self.serviceID):\(position + 1)" : "service:\(self.serviceID)"
    }
  }

  /// Registers, heartbeats TTL checks, and deregisters after ``beginGracefulShutdown()``.
  ///
  /// - Throws: ``MeshConsulError`` if the first registration fails.
  public func run() async throws {
    try await self.client.register(self.registration)
    self.logger.info(
      "Registered with Consul",
      metadata: ["mesh.consul.service_id": "\(self.serviceID)"]
    )
    try await self.heartbeatTTLChecks()

    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        for await _ in self.shutdown {}
      }
      if let interval = self.heartbeatInterval {
        group.addTask {
          while (try? await self.clock.sleep(for: interval)) != nil {
            try? await self.heartbeatTTLChecks()
          }
        }
      }
      // The first child to return is the shutdown signal (or cancellation): stop the beats.
      _ = await group.next()
      group.cancelAll()
    }

    guard !Task.isCancelled else { return }
    try await self.client.deregister(serviceID: self.serviceID)
    self.logger.info(
      "Deregistered from Consul",
      metadata: ["mesh.consul.service_id": "\(self.serviceID)"]
    )
  }

  /// Stops heartbeats, deregisters the instance, and lets ``run()`` return.
  public func beginGracefulShutdown() {
    self.shutdownTrigger.finish()
  }

  /// Puts the instance in (or out of) maintenance: while on, it leaves every `?passing` result.
  public func setMaintenance(_ enabled: Bool, reason: String? = nil) async throws {
    try await self.client.setMaintenance(
      serviceID: self.serviceID,
      enabled: enabled,
      reason: reason
    )
  }

  private func heartbeatTTLChecks() async throws {
    for checkID in self.ttlCheckIDs {
      do {
        try await self.client.updateTTL(checkID: checkID, status: .passing, output: "heartbeat")
      } catch {
        self.logger.info(
          "TTL heartbeat failed",
          metadata: ["mesh.consul.check_id": "\(checkID)", "mesh.consul.error": "\(error)"]
        )
      }
    }
  }
}

extension MeshConsulRegistration where Clock == ContinuousClock {
  /// Keeps `registration` registered through `client`, on the continuous clock.
  public convenience init(
    client: ConsulClient,
    registration: ConsulServiceRegistration,
    heartbeatInterval: Duration? = nil,
    logger: Logger = Logger(label: "mesh.consul", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.init(
      client: client,
      registration: registration,
      heartbeatInterval: heartbeatInterval,
      clock: ContinuousClock(),
      logger: logger
    )
  }
}
