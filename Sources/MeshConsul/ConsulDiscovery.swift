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
public import MeshDiscovery

/// Discovery from Consul's health API: blocking queries on `/v1/health/service/<name>`.
///
/// Each watch keeps one request open for up to ``Configuration/wait`` and yields the service's
/// healthy instances whenever they change. While Consul is down, slow, or answers garbage, the
/// watch keeps the last good set, backs off exponentially (with jitter, to a cap) and tries
/// again; an agent that restarts (its index goes backwards) is followed with a fresh read. A
/// query Consul refuses (a 4xx other than 429: ACL denied, bad request) ends the watch with that
/// ``MeshConsulError``. The requests run inside the consumer's `next()`, so
/// cancelling the consumer cancels the request in flight, and `next()` throws
/// `CancellationError`.
public struct ConsulDiscovery<Clock: _Concurrency.Clock>: MeshDiscovery
where Clock.Duration == Duration {
  /// How watches query Consul.
  public struct Configuration: Sendable {
    /// The health query: `?passing` (default), tags, near, filter, consistency, datacenter.
    public var query: ConsulHealthQuery
    /// How long each blocking query may wait. Default 5 minutes; each request waits up to 1/16
    /// less, at random, so that many watchers do not wake together.
    public var wait: Duration
    /// A tagged address to use instead of the service address (`lan_ipv4`, `wan`…), if present.
    public var taggedAddress: String?
    /// Requests allowed back to back while the set churns. Default 3.
    public var burst: Int
    /// The sustained request rate while the set churns: one per this interval. Default 2 s.
    public var refillInterval: Duration
    /// The first backoff after an error. Default 1 s.
    public var initialBackoff: Duration
    /// The longest backoff. Default 60 s.
    public var maximumBackoff: Duration

    /// A configuration with each setting given, or its default: passing instances only, 5-minute
    /// waits, the service address, a burst of 3 requests then one every 2 seconds, and backoff from
    /// 1 second to 60 seconds.
    public init(
      query: ConsulHealthQuery = ConsulHealthQuery(),
      wait: Duration = .seconds(300),
      taggedAddress: String? = nil,
      burst: Int = 3,
      refillInterval: Duration = .seconds(2),
      initialBackoff: Duration = .seconds(1),
      maximumBackoff: Duration = .seconds(60)
    ) {
      self.query = query
      self.wait = wait
      self.taggedAddress = taggedAddress
      self.burst = burst
      self.refillInterval = refillInterval
      self.initialBackoff = initialBackoff
      self.maximumBackoff = maximumBackoff
    }
  }

  private let client: ConsulClient
  private let configuration: Configuration
  private let clock: Clock
  private let logger: Logger
  private let random: @Sendable () -> Double

  /// Discovery through `client`, timed by `clock`; `random` (0..<1) spreads waits and backoffs.
  public init(
    client: ConsulClient,
    configuration: Configuration = Configuration(),
    clock: Clock,
    logger: Logger = Logger(label: "mesh.consul", factory: { _ in SwiftLogNoOpLogHandler() }),
    random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
  ) {
    self.client = client
    self.configuration = configuration
    self.clock = clock
    self.logger = logger
    self.random = random
  }

  /// Watches the healthy instances of `service` with blocking queries; see ``ConsulDiscovery`` for
  /// what the watch does while Consul fails. An empty service name makes the sequence throw.
  public func watch(_ service: String) -> MeshEndpointUpdates {
    MeshEndpointUpdates(Updates(discovery: self, service: service))
  }

  private struct Updates: AsyncSequence, Sendable {
    let discovery: ConsulDiscovery
    let service: String

    func makeAsyncIterator() -> Iterator {
      Iterator(discovery: self.discovery, service: self.service)
    }
  }

  private struct Iterator: AsyncIteratorProtocol {
    let discovery: ConsulDiscovery
    let service: String
    var state: ConsulWatchState<Clock.Instant>

    init(discovery: ConsulDiscovery, service: String) {
      self.discovery = discovery
      self.service = service
      let configuration = discovery.configuration
      self.state = ConsulWatchState(
        configuration: .init(
          burst: max(1, configuration.burst),
          refillInterval: configuration.refillInterval,
          initialBackoff: configuration.initialBackoff,
          maximumBackoff: configuration.maximumBackoff,
          jitter: 0.2
        ),
        now: discovery.clock.now
      )
    }

    mutating func next() async throws -> MeshEndpointSet? {
      guard !self.service.isEmpty else {
        throw MeshDiscoveryError(code: .invalidTarget, message: "The service name is empty.")
      }
      let discovery = self.discovery
      let metadata: Logger.Metadata = ["mesh.consul.service": "\(self.service)"]
      while !Task.isCancelled {
        if let delay = self.state.takeToken(now: discovery.clock.now) {
          try await discovery.clock.sleep(for: delay)
          continue
        }
        let index = self.state.index
        let wait = discovery.configuration.wait
        do {
          let response = try await discovery.client.healthService(
            self.service,
            query: discovery.configuration.query,
            index: index > 0 ? index : nil,
            wait: wait - wait / 16 * discovery.random()
          )
          if response.index < index {
            discovery.logger.info(
              "Consul index went backwards; reading afresh",
              metadata: metadata.merging(
                [
                  "mesh.consul.index": "\(response.index)",
                  "mesh.consul.previous_index": "\(index)",
                ],
                uniquingKeysWith: { $1 }
              )
            )
          }
          self.state.succeeded(responseIndex: response.index)
          // An unchanged set (a blocking query that timed out) is skipped by MeshEndpointUpdates,
          // which then asks for the next one.
          return ConsulEndpoints.endpointSet(
            service: self.service,
            entries: response.value,
            taggedAddress: discovery.configuration.taggedAddress
          )
        } catch  where !error.isRetryable {
          // Consul refused the query itself (ACL denied, bad request): asking again the same way
          // cannot help, so the watch ends with it and the consumer decides (the balancing
          // transport keeps the last set, reports it, and watches again with backoff).
          if Task.isCancelled { throw CancellationError() }
          // Logged at debug: the consumer reports the failure (the balancing transport logs it at
          // error once per change).
          discovery.logger.debug(
            "Consul refused the watch",
            metadata: metadata.merging(
              ["mesh.consul.error": "\(error)"],
              uniquingKeysWith: { $1 }
            )
          )
          throw error
        } catch {
          if Task.isCancelled { throw CancellationError() }
          let backoff = self.state.failed(random: discovery.random())
          discovery.logger.info(
            "Consul watch failed; keeping the last endpoints",
            metadata: metadata.merging(
              [
                "mesh.consul.error": "\(error)",
                "mesh.consul.failures": "\(self.state.failures)",
                "mesh.consul.backoff": "\(backoff)",
              ],
              uniquingKeysWith: { $1 }
            )
          )
          try await discovery.clock.sleep(for: backoff)
        }
      }
      throw CancellationError()
    }
  }
}

extension ConsulDiscovery where Clock == ContinuousClock {
  /// Discovery through `client` on the continuous clock.
  public init(
    client: ConsulClient,
    configuration: Configuration = Configuration(),
    logger: Logger = Logger(label: "mesh.consul", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.init(
      client: client,
      configuration: configuration,
      clock: ContinuousClock(),
      logger: logger
    )
  }
}
