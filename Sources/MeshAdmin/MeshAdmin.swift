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

public import CoreMetrics
internal import Foundation
internal import HTTPTypes
internal import Hummingbird
internal import HummingbirdCore
public import Logging
public import MeshCore
public import MeshPrometheus
internal import MeshTransport
internal import NIOCore
public import ServiceLifecycle
internal import X509

/// A process's admin endpoint, in the spirit of Envoy's admin: one HTTP server (Hummingbird)
/// that shows what the mesh in this process is doing.
///
/// | Path | What |
/// | --- | --- |
/// | `/metrics` | every metric, in Prometheus's text format |
/// | `/clusters` | each target's endpoints: address, zone, weight, state, in flight, ejection, last error (JSON) |
/// | `/config_dump` | the effective configuration, secrets redacted (JSON) |
/// | `/certs` | the process's identity, SANs and expiry, and its trust bundle (JSON) |
/// | `/healthz` | 200 while the process runs (a liveness probe) |
/// | `/ready` | 200 when every client and server here is ready, else 503 with why (a readiness probe) |
/// | `/logging` | the mesh's log level: `GET` reads it, `POST /logging?level=debug` sets it |
///
/// A `MeshClient` or `MeshServer` whose configuration sets `admin` runs one and adds itself; a
/// process with both adds one to the other's with ``add(_:)``.
public final class MeshAdmin: Service, Sendable {
  public let configuration: MeshAdminConfiguration
  /// The registry `/metrics` serves.
  public let metrics: MeshPrometheusMetrics
  /// What records to ``metrics``: the factory a client or server uses when given none.
  public var metricsFactory: any MetricsFactory { self.metrics.factory }
  /// The level `/logging` reads and sets.
  public let logLevel: MeshLogLevel
  private let logger: Logger
  private let sources = MeshMutex<[any MeshAdminSource]>([])
  private let binding = MeshMutex<Result<Int, any Error>?>(nil)
  private let bindingSettled = MeshSignal()
  private let shutdown = MeshSignal()

  /// An endpoint as `configuration` says; nothing is bound until ``run()``.
  ///
  /// - Throws: ``MeshInputError`` for a bad host or port.
  public init(
    configuration: MeshAdminConfiguration,
    logLevel: MeshLogLevel = MeshLogLevel(),
    logger: Logger = Logger(label: "mesh.admin", factory: { _ in SwiftLogNoOpLogHandler() })
  ) throws(MeshInputError) {
    try configuration.validate()
    self.configuration = configuration
    self.metrics = configuration.metrics ?? MeshPrometheusMetrics()
    self.logLevel = logLevel
    self.logger = logger
  }

  /// The endpoint a client or server whose configuration asks for one makes: `logger` becomes
  /// one whose level `/logging` sets, starting at its current level.
  ///
  /// - Throws: ``MeshInputError`` for a bad host or port.
  package convenience init(
    configuration: MeshAdminConfiguration,
    controlling logger: inout Logger
  ) throws(MeshInputError) {
    try self.init(
      configuration: configuration,
      logLevel: MeshLogLevel(logger.logLevel),
      logger: logger
    )
    logger = self.logLevel.controlling(logger)
  }

  /// Runs the endpoint, showing `owner`, beside the owner's run; ``Running/stop(logger:)`` it once
  /// the owner has stopped.
  ///
  /// It runs in a detached task: it must not follow the owner's task's graceful shutdown (a
  /// service group would stop it as the drain starts, while `/ready` and `/metrics` still matter)
  /// nor its cancellation (a cancelled NIO server traps, apple/swift-nio#3481).
  package func start(showing owner: any MeshAdminSource) -> Running {
    self.add(owner)
    return Running(admin: self, owner: owner, task: Task.detached { try await self.run() })
  }

  /// An endpoint started for an owner.
  package struct Running: Sendable {
    let admin: MeshAdmin
    let owner: any MeshAdminSource
    let task: Task<Void, any Error>

    /// Stops the endpoint gracefully, waits for it, and stops showing the owner; an error that
    /// stopped it is logged to `logger`.
    package func stop(logger: Logger) async {
      self.admin.beginGracefulShutdown()
      if case .failure(let error) = await self.task.result {
        logger.warning(
          "The admin endpoint stopped with an error",
          metadata: ["mesh.error": "\(error)"]
        )
      }
      self.admin.remove(self.owner)
    }
  }

  /// Shows `source` (a client or a server) on this endpoint too (once, however often added).
  public func add(_ source: any MeshAdminSource) {
    self.sources.withLock { sources in
      if !sources.contains(where: { $0 === source }) { sources.append(source) }
    }
  }

  /// Stops showing `source`.
  public func remove(_ source: any MeshAdminSource) {
    self.sources.withLock { $0.removeAll { $0 === source } }
  }

  /// The port once bound; any number of tasks may ask, before or after.
  ///
  /// - Throws: the bind error, or an error if the endpoint stopped before it was bound.
  public var listeningPort: Int {
    get async throws {
      await self.bindingSettled.wait()
      guard let result = self.binding.withLock({ $0 }) else { throw CancellationError() }
      return try result.get()
    }
  }

  /// `http://host:port/` once bound.
  public var url: String {
    get async throws {
      let port = try await self.listeningPort
      let host =
        self.configuration.host.contains(":")
        ? "[\(self.configuration.host)]" : self.configuration.host
      return "http://\(host):\(port)/"
    }
  }

  /// Stops accepting connections and lets ``run()`` return once requests in flight finish.
  public func beginGracefulShutdown() {
    self.shutdown.fire()
  }

  /// Serves until ``beginGracefulShutdown()`` or a graceful shutdown of the service group running
  /// it.
  public func run() async throws {
    defer {
      self.settle(.failure(MeshAdminError("The admin endpoint stopped before it was bound.")))
    }
    try await withGracefulShutdownHandler {
      try await self.serve()
    } onGracefulShutdown: {
      self.beginGracefulShutdown()
    }
  }

  private func settle(_ result: Result<Int, any Error>) {
    let first = self.binding.withLock { binding -> Bool in
      guard binding == nil else { return false }
      binding = result
      return true
    }
    if first { self.bindingSettled.fire() }
  }

  private func serve() async throws {
    let application = Application(
      router: self.makeRouter(),
      // A connection idle (or stalled mid-request) for 10 s is closed: none holds a graceful
      // stop for longer.
      server: .http1(configuration: HTTP1Channel.Configuration(idleTimeout: .seconds(10))),
      configuration: ApplicationConfiguration(
        address: .hostname(self.configuration.host, port: self.configuration.port),
        serverName: nil,
        reuseAddress: true
      ),
      onServerRunning: { channel in
        let port = channel.localAddress?.port ?? self.configuration.port
        self.settle(.success(port))
        self.logger.info(
          "Admin endpoint listening",
          metadata: ["mesh.admin.address": "\(self.configuration.host):\(port)"]
        )
      },
      logger: self.logger
    )
    // Stopped by graceful shutdown, never by cancellation (apple/swift-nio#3481: a NIO server
    // cancelled while a connection is queued traps).
    let server = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: [.init(service: application)],
        logger: self.logger
      )
    )
    let stopped = MeshSignal()
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask {
        defer { stopped.fire() }
        do {
          try await server.run()
        } catch is CancellationError {
          // A hard stop.
        } catch {
          self.settle(.failure(error))
          self.shutdown.fire()
          throw error
        }
      }
      await self.shutdown.wait()
      await server.triggerGracefulShutdown()
      await stopped.wait()
    }
  }

  // MARK: - Routes

  private func makeRouter() -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.get("/") { _, _ in self.index() }
    router.get("/metrics") { _, _ in self.metricsText() }
    router.get("/healthz") { _, _ in Self.text("OK\n") }
    router.get("/ready") { _, _ in self.ready() }
    router.get("/clusters") { _, _ in self.clusters() }
    router.get("/config_dump") { _, _ in self.configDump() }
    router.get("/certs") { _, _ in self.certs() }
    router.get("/logging") { _, _ in self.logging(setting: nil) }
    router.post("/logging") { request, _ in
      self.logging(setting: request.uri.queryParameters.get("level") ?? "")
    }
    router.put("/logging") { request, _ in
      self.logging(setting: request.uri.queryParameters.get("level") ?? "")
    }
    return router
  }

  private var current: [any MeshAdminSource] { self.sources.withLock { $0 } }

  func index() -> Response {
    Self.text(
      """
      swift-grpc-mesh admin
        /metrics      metrics (Prometheus text)
        /clusters     each target's endpoints (JSON)
        /config_dump  the effective configuration, secrets redacted (JSON)
        /certs        identity, SANs, expiry, trust bundle (JSON)
        /healthz      liveness
        /ready        readiness
        /logging      log level (POST /logging?level=debug)

      """
    )
  }

  func metricsText() -> Response {
    for source in self.current { source.recordAdminMetrics() }
    return Response(
      status: .ok,
      headers: [.contentType: MeshPrometheusMetrics.contentType],
      body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.exposition()))
    )
  }

  func ready() -> Response {
    var reasons: [String: String] = [:]
    for source in self.current {
      if let reason = source.adminUnreadyReason() { reasons[source.adminSection] = reason }
    }
    if self.shutdown.hasFired { reasons["admin"] = "shutting down" }
    guard reasons.isEmpty else {
      return Self.json(ReadyReply(ready: false, reasons: reasons), status: .serviceUnavailable)
    }
    return Self.json(ReadyReply(ready: true, reasons: [:]))
  }

  func clusters() -> Response {
    Self.json(self.current.flatMap { $0.adminClusters() })
  }

  func configDump() -> Response {
    var sections: [String: MeshAdminJSON] = [
      "admin": .object([
        "host": .string(self.configuration.host),
        "port": .int(self.configuration.port),
        "log_level": .string(self.logLevel.level.rawValue),
      ])
    ]
    for source in self.current {
      sections[source.adminSection] = MeshAdminJSON.reflecting(source.adminConfiguration)
    }
    return Self.json(MeshAdminJSON.object(sections))
  }

  func certs() -> Response {
    var sections: [String: CertificatesReply] = [:]
    for source in self.current {
      guard let credentials = source.adminCredentials else { continue }
      sections[source.adminSection] = CertificatesReply(credentials)
    }
    return Self.json(sections)
  }

  func logging(setting name: String?) -> Response {
    if let name {
      guard let level = MeshLogLevel.parse(name) else {
        let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
        return Self.json(
          ["error": "level must be one of \(levels), not \(MeshInput.quoted(name))"],
          status: .badRequest
        )
      }
      self.logLevel.set(level)
      self.logger.info("Log level set", metadata: ["mesh.admin.log_level": "\(level)"])
    }
    return Self.json(["level": self.logLevel.level.rawValue])
  }

  // MARK: - Replies

  private struct ReadyReply: Encodable {
    var ready: Bool
    var reasons: [String: String]
  }

  private struct CertificatesReply: Encodable {
    struct Details: Encodable {
      var subject: String
      var issuer: String
      var serialNumber: String
      var notValidBefore: Date
      var notValidAfter: Date
      var subjectAlternativeNames: [String]

      init(_ certificate: Certificate) {
        self.subject = "\(certificate.subject)"
        self.issuer = "\(certificate.issuer)"
        self.serialNumber = "\(certificate.serialNumber)"
        self.notValidBefore = certificate.notValidBefore
        self.notValidAfter = certificate.notValidAfter
        let names = (try? certificate.extensions.subjectAlternativeNames) ?? nil
        self.subjectAlternativeNames = names.map { $0.map { "\($0)" } } ?? []
      }
    }

    var identities: [String]
    var certificate: Details
    var secondsToExpiry: Int64
    var trustBundle: [Details]
    var lastVerificationFailure: String?

    init(_ credentials: MeshCredentials) {
      self.identities = credentials.identities.map { "\($0)" }
      self.certificate = Details(credentials.certificate)
      self.secondsToExpiry = credentials.timeUntilExpiry().components.seconds
      self.trustBundle = credentials.trustRoots.map(Details.init)
      self.lastVerificationFailure = credentials.lastVerificationFailure.map { "\($0)" }
    }
  }

  private static func text(_ text: String) -> Response {
    Response(
      status: .ok,
      headers: [.contentType: "text/plain; charset=utf-8"],
      body: ResponseBody(byteBuffer: ByteBuffer(string: text))
    )
  }

  private static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    let body: ByteBuffer
    do {
      body = ByteBuffer(bytes: try encoder.encode(value) + [0x0A])
    } catch {
      return Response(
        status: .internalServerError,
        headers: [.contentType: "text/plain; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: "Could not encode the reply: \(error)\n"))
      )
    }
    return Response(
      status: status,
      headers: [.contentType: "application/json"],
      body: ResponseBody(byteBuffer: body)
    )
  }
}

/// Why an admin endpoint could not run.
public struct MeshAdminError: Error, Hashable, Sendable, CustomStringConvertible {
  public var message: String

  public init(_ message: String) {
    self.message = message
  }

  public var description: String { self.message }
}
