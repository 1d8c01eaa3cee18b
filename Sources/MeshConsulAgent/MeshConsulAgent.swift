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

internal import Hummingbird
internal import HummingbirdCore
internal import HummingbirdTLS
public import Logging
internal import MeshCore
internal import MeshTransport
internal import NIOCore
public import ServiceLifecycle

/// An embedded Consul-compatible agent: an in-memory `consul agent -dev` for development, demos
/// and tests.
///
/// It serves the HTTP API subset the mesh and Consul's own tools use — agent service register /
/// deregister / maintenance, TTL check updates, the agent's services, checks, self and members,
/// `/v1/health/{service,checks,node,state}`, the catalog's services and nodes, the status
/// endpoints — in Consul's wire format, with real blocking queries (`index` / `wait`,
/// `X-Consul-Index`), Consul's plain-text errors and status codes. It runs registered gRPC health
/// checks itself (grpc.health.v1 Check, over TLS when asked), expires TTL checks, and removes
/// services that stay critical longer than their `DeregisterCriticalServiceAfter`.
///
/// The HTTP server is Hummingbird's, with the limits of ``MeshConsulAgentConfiguration/Limits``.
///
/// ```swift
/// let agent = MeshConsulAgent(configuration: .init(port: 0))
/// try await withThrowingDiscardingTaskGroup { group in
///   group.addTask { try await agent.run() }
///   let port = try await agent.listeningPort
///   ...
///   agent.beginGracefulShutdown()
/// }
/// ```
public final class MeshConsulAgent<Clock: _Concurrency.Clock>: Sendable
where Clock.Duration == Duration {
  /// How the agent runs: its address, node, datacenter, TLS and limits.
  public let configuration: MeshConsulAgentConfiguration
  private let core: ConsulAgentCore<Clock>
  /// The agent's request handling, usable without sockets (tests, fuzzing).
  package let router: ConsulAgentRouter<Clock>
  private let connections = ConsulAgentConnectionCounter()
  /// The port once bound, or why it could not be (or the agent stopped first).
  private let binding = MeshMutex<Result<Int, any Error>?>(nil)
  /// Fired once ``binding`` is set.
  private let bindingSettled = MeshSignal()

  /// An agent configured by `configuration`, timed by `clock` (tests drive one of their own),
  /// logging to `logger`. Nothing is bound until ``run()``.
  public init(
    configuration: MeshConsulAgentConfiguration = MeshConsulAgentConfiguration(),
    clock: Clock,
    logger: Logger = Logger(label: "mesh.consul.agent", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.configuration = configuration
    self.core = ConsulAgentCore(configuration: configuration, clock: clock, logger: logger)
    self.router = ConsulAgentRouter(core: self.core)
  }

  /// The port the agent listens on, once it is bound. Any number of tasks may ask, before or
  /// after it is bound.
  ///
  /// - Throws: the bind error if the agent could not listen, an error if it stopped before it
  ///   was bound, `CancellationError` if the asking task is cancelled first.
  public var listeningPort: Int {
    get async throws {
      await self.bindingSettled.wait()
      guard let result = self.binding.withLock({ $0 }) else { throw CancellationError() }
      return try result.get()
    }
  }

  /// Records the outcome of binding (the first one only) and wakes those waiting for it.
  private func settleBinding(_ result: Result<Int, any Error>) {
    let settled = self.binding.withLock { binding -> Bool in
      guard binding == nil else { return false }
      binding = result
      return true
    }
    if settled { self.bindingSettled.fire() }
  }

  /// Stops accepting connections, ends blocking queries and lets ``run()`` return.
  public func beginGracefulShutdown() {
    self.core.shutdown.fire()
  }

  /// Serves until ``beginGracefulShutdown()``, a graceful shutdown of the swift-service-lifecycle
  /// `ServiceGroup` running it, or cancellation.
  public func run() async throws {
    defer {
      self.settleBinding(.failure(ConsulAgentError(500, "The agent stopped before it was bound.")))
    }
    try await withGracefulShutdownHandler {
      try await self.serve()
    } onGracefulShutdown: {
      self.beginGracefulShutdown()
    }
  }

  private func serve() async throws {
    let application: Application<RouterResponder<ConsulAgentRequestContext>>
    do {
      application = try self.makeApplication()
    } catch {
      self.settleBinding(.failure(error))
      throw error
    }
    // The HTTP server stops by graceful shutdown, never by cancellation: cancelling a NIO server
    // while an accepted connection is still queued traps ("Deinited NIOAsyncWriter without
    // calling finish()", apple/swift-nio#3481), as a CI run found.
    let server = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: [.init(service: application)],
        logger: self.core.logger
      )
    )
    let serverStopped = MeshSignal()
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.core.run() }
      group.addTask {
        defer { serverStopped.fire() }
        do {
          try await server.run()
        } catch is CancellationError {
          // A hard stop (the agent's task was cancelled).
        } catch {
          self.settleBinding(.failure(error))  // ignored once bound
          // The server failed (a port in use): the agent stops, with its error.
          self.core.shutdown.fire()
          throw error
        }
      }
      await self.core.shutdown.wait()
      // Blocking queries in flight return at once (they wait for the shutdown signal too); the
      // listener closes, idle connections close, and requests in flight finish. Then the
      // timers and the checks stop.
      await server.triggerGracefulShutdown()
      await serverStopped.wait()
      group.cancelAll()
    }
  }

  private func makeApplication() throws -> Application<RouterResponder<ConsulAgentRequestContext>> {
    let limits = self.configuration.limits
    let counter = self.connections
    let http1 = HTTPServerBuilder.http1(
      configuration: HTTP1Channel.Configuration(
        additionalChannelHandlers: [
          ConsulAgentConnectionHandler(
            counter: counter,
            limit: limits.maxConnectionsPerClient,
            readTimeout: TimeAmount(limits.requestReadTimeout)
          )
        ],
        idleTimeout: TimeAmount(limits.idleTimeout)
      )
    )
    let server: HTTPServerBuilder
    if let credentials = self.configuration.httpsCredentials {
      server = try .tls(http1, tlsConfiguration: try credentials.tlsServerConfiguration())
    } else {
      server = http1
    }
    return Application(
      responder: self.router.responder,
      server: server,
      configuration: ApplicationConfiguration(
        address: .hostname(self.configuration.host, port: self.configuration.port),
        serverName: nil,
        reuseAddress: true
      ),
      onServerRunning: { channel in
        let port = channel.localAddress?.port ?? self.configuration.port
        self.settleBinding(.success(port))
        self.core.logger.info(
          "Consul-compatible agent listening",
          metadata: ["mesh.consul.agent.address": "\(self.configuration.host):\(port)"]
        )
      },
      logger: self.core.logger
    )
  }

  // MARK: - Without sockets, and for tests

  /// Answers one request through the agent's router and handlers, without sockets.
  package func respond(to request: ConsulAgentHTTPRequest) async -> ConsulAgentHTTPResponse {
    await self.router.respond(to: request)
  }

  /// Returns once exactly `count` blocking queries are parked, waiting for a change.
  package func waitForBlockedQueries(_ count: Int) async {
    await self.core.waitForBlockedQueries(count)
  }

  /// Reads the agent's state.
  package func withState<T>(_ body: (ConsulAgentState<Clock.Instant>) -> T) -> T {
    self.core.withState(body)
  }

  /// Open connections from `client` (an IP address), as the connection cap counts them.
  package func openConnections(from client: String) -> Int {
    self.connections.count(client)
  }
}

extension MeshConsulAgent where Clock == ContinuousClock {
  /// An agent configured by `configuration`, on the continuous clock.
  public convenience init(
    configuration: MeshConsulAgentConfiguration = MeshConsulAgentConfiguration(),
    logger: Logger = Logger(label: "mesh.consul.agent", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.init(configuration: configuration, clock: ContinuousClock(), logger: logger)
  }
}

extension MeshConsulAgent: Service {}
