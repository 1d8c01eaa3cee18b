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

internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
public import Logging
internal import MeshConsul
internal import MeshDiscovery
internal import MeshProto
public import MeshTransport
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import NIOSSL
internal import SwiftProtobuf
private import Synchronization

/// How the embedded agent runs.
public struct MeshConsulAgentConfiguration: Sendable {
  /// The address to listen on. Default `127.0.0.1`.
  public var host: String
  /// The port to listen on; 0 picks a free one. Default 8500, as `consul agent -dev`.
  public var port: Int
  /// The node the agent registers services on. Default `mesh-agent`.
  public var nodeName: String
  /// The datacenter. Default `dc1`.
  public var datacenter: String
  /// The identity the agent presents to TLS gRPC checks, and the CA it verifies them with
  /// (an mTLS service requires a client certificate). Nil: TLS checks use the system's roots.
  public var checkCredentials: MeshCredentials?
  /// Serve the HTTP API over TLS with these credentials, as Consul's HTTPS port does. Nil: plain
  /// HTTP.
  public var httpsCredentials: MeshCredentials?
  /// Blocking queries without `wait` wait this long. Default 5 minutes, as Consul.
  public var defaultQueryTime: Duration
  /// The longest `wait` honoured. Default 10 minutes, as Consul.
  public var maxQueryTime: Duration

  public init(
    host: String = "127.0.0.1",
    port: Int = 8500,
    nodeName: String = "mesh-agent",
    datacenter: String = "dc1",
    checkCredentials: MeshCredentials? = nil
  ) {
    self.host = host
    self.port = port
    self.nodeName = nodeName
    self.datacenter = datacenter
    self.checkCredentials = checkCredentials
    self.httpsCredentials = nil
    self.defaultQueryTime = .seconds(300)
    self.maxQueryTime = .seconds(600)
  }
}

/// An embedded Consul-compatible agent: an in-memory `consul agent -dev` for development, demos
/// and tests.
///
/// It serves the HTTP API subset the mesh uses — agent service register / deregister /
/// maintenance, TTL check updates, `/v1/health/service` with `passing` and `tag`, the catalog —
/// in Consul's wire format, with real blocking queries (`index` / `wait`, `X-Consul-Index`),
/// Consul's plain-text errors and status codes. It runs registered gRPC health checks itself
/// (grpc.health.v1 Check, over TLS when asked), expires TTL checks, and removes services that
/// stay critical longer than their `DeregisterCriticalServiceAfter`.
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
  public let configuration: MeshConsulAgentConfiguration
  private let clock: Clock
  private let logger: Logger
  private let shared: Mutex<Shared>
  private let shutdown = MeshSignal()
  private let bound: AsyncStream<Result<Int, any Error>>
  private let boundContinuation: AsyncStream<Result<Int, any Error>>.Continuation
  private let checksChanged: AsyncStream<Void>
  private let checksChangedTrigger: AsyncStream<Void>.Continuation

  private struct Shared {
    var state: ConsulAgentState<Clock.Instant>
    var waiters: [UInt64: Waiter] = [:]
    var nextWaiterID: UInt64 = 0
    var timerWake: MeshSignal?
    var runningChecks: Set<String> = []
    var port: Int?
    var blockedQueryObservers: [(count: Int, signal: MeshSignal)] = []

    mutating func notifyBlockedQueryObservers() {
      let count = self.waiters.count
      self.blockedQueryObservers.removeAll { observer in
        guard observer.count == count else { return false }
        observer.signal.fire()
        return true
      }
    }
  }

  private enum WatchKey: Hashable {
    case service(String)
    case catalog
  }

  private struct Waiter {
    var key: WatchKey
    var afterIndex: UInt64
    var wake: MeshSignal
  }

  public init(
    configuration: MeshConsulAgentConfiguration = MeshConsulAgentConfiguration(),
    clock: Clock,
    logger: Logger = Logger(label: "mesh.consul.agent", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.configuration = configuration
    self.clock = clock
    self.logger = logger
    let node = ConsulNode(
      id: UUID().uuidString.lowercased(),
      node: configuration.nodeName,
      address: configuration.host == "0.0.0.0" ? "127.0.0.1" : configuration.host,
      datacenter: configuration.datacenter,
      taggedAddresses: [
        "lan": configuration.host, "lan_ipv4": configuration.host,
        "wan": configuration.host, "wan_ipv4": configuration.host,
      ],
      meta: ["consul-network-segment": "", "consul-version": "1.17.0"],
      createIndex: 5,
      modifyIndex: 5
    )
    self.shared = Mutex(Shared(state: ConsulAgentState(node: node)))
    (self.bound, self.boundContinuation) = AsyncStream.makeStream(
      of: Result<Int, any Error>.self,
      bufferingPolicy: .bufferingNewest(1)
    )
    (self.checksChanged, self.checksChangedTrigger) = AsyncStream.makeStream(
      of: Void.self,
      bufferingPolicy: .bufferingNewest(1)
    )
  }

  /// The port the agent listens on, once it is bound.
  ///
  /// - Throws: the bind error if the agent could not listen.
  public var listeningPort: Int {
    get async throws {
      if let port = self.shared.withLock({ $0.port }) { return port }
      var results = self.bound.makeAsyncIterator()
      guard let result = await results.next() else {
        throw ConsulAgentError(500, "The agent stopped before it was bound.")
      }
      return try result.get()
    }
  }

  /// Stops accepting connections, ends blocking queries and lets ``run()`` return.
  public func beginGracefulShutdown() {
    self.shutdown.fire()
  }

  /// Serves until ``beginGracefulShutdown()`` or cancellation.
  public func run() async throws {
    let serverChannel:
      NIOAsyncChannel<
        NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never
      >
    do {
      let tlsContext = try self.configuration.httpsCredentials.map { credentials in
        try NIOSSLContext(configuration: try credentials.tlsServerConfiguration())
      }
      serverChannel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .bind(host: self.configuration.host, port: self.configuration.port) { channel in
          channel.eventLoop.makeCompletedFuture {
            if let tlsContext {
              try channel.pipeline.syncOperations.addHandler(
                NIOSSLServerHandler(context: tlsContext)
              )
            }
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
              wrappingChannelSynchronously: channel
            )
          }
        }
    } catch {
      self.boundContinuation.yield(.failure(error))
      throw error
    }
    let port = serverChannel.channel.localAddress?.port ?? self.configuration.port
    self.shared.withLock { $0.port = port }
    self.boundContinuation.yield(.success(port))
    self.logger.info(
      "Consul-compatible agent listening",
      metadata: ["mesh.consul.agent.address": "\(self.configuration.host):\(port)"]
    )

    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.runTimers() }
      group.addTask { await self.runChecks() }
      group.addTask {
        do {
          try await serverChannel.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { connections in
              for try await connection in inbound {
                connections.addTask { await self.serve(connection) }
              }
            }
          }
        } catch is CancellationError {
          // Graceful shutdown: the listener and every connection were closed.
        }
      }
      await self.shutdown.wait()
      // Blocking queries in flight return at once (they wait for the shutdown signal too); then
      // the listener, its connections, the timers and the checks stop.
      group.cancelAll()
    }
  }

  // MARK: - HTTP

  private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>)
    async
  {
    try? await connection.executeThenClose { inbound, outbound in
      var head: HTTPRequestHead?
      var body = ByteBuffer()
      for try await part in inbound {
        switch part {
        case .head(let requestHead):
          head = requestHead
          body.clear()
        case .body(var chunk):
          body.writeBuffer(&chunk)
        case .end:
          guard let requestHead = head else { continue }
          let response = await self.respond(to: requestHead, body: Data(body.readableBytesView))
          var headers = response.headers
          headers.replaceOrAdd(name: "Content-Length", value: "\(response.body.count)")
          if !requestHead.isKeepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
          }
          try await outbound.write(
            .head(
              HTTPResponseHead(
                version: requestHead.version,
                status: response.status,
                headers: headers
              )
            )
          )
          if !response.body.isEmpty {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
          }
          try await outbound.write(.end(nil))
          if !requestHead.isKeepAlive { return }
        }
      }
    }
  }

  private struct Response {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: Data

    static func error(_ error: ConsulAgentError) -> Self {
      var headers = HTTPHeaders()
      headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
      return Self(
        status: HTTPResponseStatus(statusCode: error.status),
        headers: headers,
        body: Data(error.message.utf8)
      )
    }

    static var empty: Self {
      Self(status: .ok, headers: HTTPHeaders(), body: Data())
    }
  }

  private func respond(to head: HTTPRequestHead, body: Data) async -> Response {
    do {
      return try await self.route(head, body: body)
    } catch let error as ConsulAgentError {
      return .error(error)
    } catch {
      return .error(ConsulAgentError(500, "\(error)"))
    }
  }

  private func route(_ head: HTTPRequestHead, body: Data) async throws -> Response {
    guard let components = URLComponents(string: "http://agent\(head.uri)") else {
      throw ConsulAgentError(400, "Invalid URL")
    }
    let path = components.percentEncodedPath
    let query = Query(components.queryItems ?? [])
    func segment(after prefix: String) -> String? {
      guard path.hasPrefix(prefix) else { return nil }
      return String(path.dropFirst(prefix.count)).removingPercentEncoding
    }
    func allow(_ methods: [HTTPMethod]) throws -> Response? {
      if head.method == .OPTIONS {
        var headers = HTTPHeaders()
        headers.add(
          name: "Allow",
          value: (["OPTIONS"] + methods.map(\.rawValue)).joined(separator: ",")
        )
        return Response(status: .ok, headers: headers, body: Data())
      }
      guard methods.contains(head.method) else {
        var response = Response.error(
          ConsulAgentError(405, "method \(head.method.rawValue) not allowed")
        )
        response.headers.add(
          name: "Allow",
          value: (["OPTIONS"] + methods.map(\.rawValue)).joined(separator: ",")
        )
        return response
      }
      return nil
    }

    if let name = segment(after: "/v1/health/service/") {
      if let response = try allow([.GET]) { return response }
      guard !name.isEmpty else { throw ConsulAgentError(400, "Missing service name") }
      return try await self.healthService(name, query: query)
    }
    if path == "/v1/catalog/services" {
      if let response = try allow([.GET]) { return response }
      return try await self.read(.catalog, query: query) { state in state.catalogServices }
    }
    if let name = segment(after: "/v1/catalog/service/") {
      if let response = try allow([.GET]) { return response }
      guard !name.isEmpty else { throw ConsulAgentError(400, "Missing service name") }
      let tags = query.all("tag")
      return try await self.read(.service(name), query: query) { state in
        state.catalogService(name, tags: tags)
      }
    }
    if path == "/v1/agent/service/register" {
      if let response = try allow([.PUT]) { return response }
      let registration = try Self.decodeRegistration(body)
      let replace = query.flag("replace-existing-checks")
      try self.mutate { state, now throws(ConsulAgentError) in
        try state.register(registration, replaceExistingChecks: replace, now: now)
      }
      return .empty
    }
    if let serviceID = segment(after: "/v1/agent/service/deregister/") {
      if let response = try allow([.PUT]) { return response }
      try self.mutate { state, _ throws(ConsulAgentError) in
        try state.deregister(serviceID: serviceID)
      }
      return .empty
    }
    if let serviceID = segment(after: "/v1/agent/service/maintenance/") {
      if let response = try allow([.PUT]) { return response }
      guard let enable = query.value("enable") else {
        throw ConsulAgentError(400, "Missing value for enable")
      }
      guard let enabled = Query.parseBool(enable) else {
        throw ConsulAgentError(400, "Invalid value for enable: \"\(enable)\"")
      }
      let reason = query.value("reason")
      try self.mutate { state, _ throws(ConsulAgentError) in
        try state.setMaintenance(serviceID: serviceID, enabled: enabled, reason: reason)
      }
      return .empty
    }
    for (verb, status) in [
      ("pass", ConsulCheckStatus.passing), ("warn", .warning), ("fail", .critical),
    ] {
      if let checkID = segment(after: "/v1/agent/check/\(verb)/") {
        if let response = try allow([.PUT]) { return response }
        let note = query.value("note") ?? ""
        try self.mutate { state, now throws(ConsulAgentError) in
          try state.reportTTL(checkID: checkID, status: status, output: note, now: now)
        }
        return .empty
      }
    }
    if let checkID = segment(after: "/v1/agent/check/update/") {
      if let response = try allow([.PUT]) { return response }
      let update = try ConsulStrictJSON.decode(
        ConsulCheckUpdate.self,
        from: body,
        schema: ConsulStrictJSON.checkUpdate
      )
      try self.mutate { state, now throws(ConsulAgentError) in
        try state.reportTTL(
          checkID: checkID,
          status: update.status,
          output: update.output,
          now: now
        )
      }
      return .empty
    }
    if path == "/v1/status/leader" {
      if let response = try allow([.GET]) { return response }
      var headers = HTTPHeaders()
      headers.add(name: "Content-Type", value: "application/json")
      return Response(
        status: .ok,
        headers: headers,
        body: Data("\"\(self.configuration.host):8300\"".utf8)
      )
    }
    throw ConsulAgentError(404, "Invalid URL path: not a recognized HTTP API endpoint\n")
  }

  private static func decodeRegistration(_ body: Data) throws(ConsulAgentError)
    -> ConsulServiceRegistration
  {
    // Consul checks the name itself, with its own message, after decoding the body.
    let object = try ConsulStrictJSON.decode(
      ConsulJSONValue.self,
      from: body,
      schema: ConsulStrictJSON.registration
    )
    guard case .object(let fields) = object, case .string(let name) = fields["Name"] ?? .null,
      !name.isEmpty
    else {
      throw ConsulAgentError(400, "Missing service name")
    }
    return try ConsulStrictJSON.decode(
      ConsulServiceRegistration.self,
      from: body,
      schema: ConsulStrictJSON.registration
    )
  }

  private func healthService(_ name: String, query: Query) async throws -> Response {
    var passing = false
    if let value = query.value("passing") {
      guard let parsed = value.isEmpty ? true : Query.parseBool(value) else {
        throw ConsulAgentError(400, "Invalid value for ?passing")
      }
      passing = parsed
    }
    if query.value("filter").map({ !$0.isEmpty }) == true {
      throw ConsulAgentError(
        400,
        "Failed to create boolean expression evaluator: filter expressions are not supported by the embedded agent"
      )
    }
    let tags = query.all("tag")
    let passingOnly = passing
    return try await self.read(.service(name), query: query) { state in
      state.healthService(name, passingOnly: passingOnly, tags: tags)
    }
  }

  /// Answers a read, blocking first when the query carries an `index`.
  private func read<Value: Encodable>(
    _ key: WatchKey,
    query: Query,
    _ body: @escaping @Sendable (ConsulAgentState<Clock.Instant>) -> Value
  ) async throws -> Response {
    if let datacenter = query.value("dc"), !datacenter.isEmpty,
      datacenter != self.configuration.datacenter
    {
      throw ConsulAgentError(500, "No path to datacenter")
    }
    let stale = query.has("stale")
    let consistent = query.has("consistent")
    if stale && consistent {
      throw ConsulAgentError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
    }
    var index: UInt64 = 0
    if let text = query.value("index") {
      guard let parsed = UInt64(text) else { throw ConsulAgentError(400, "Invalid index") }
      index = parsed
    }
    var wait = self.configuration.defaultQueryTime
    if let text = query.value("wait") {
      guard let parsed = ConsulDuration.parse(text), parsed >= .zero else {
        throw ConsulAgentError(400, "Invalid wait time")
      }
      if parsed > .zero { wait = min(parsed, self.configuration.maxQueryTime) }
    }

    if index > 0 {
      // Consul adds up to wait/16 of jitter so that watchers do not all wake together.
      let jittered = wait + wait / 16 * Double.random(in: 0..<1)
      await self.waitForChange(key, after: index, timeout: jittered)
    }

    let (value, currentIndex) = self.shared.withLock { shared in
      let state = shared.state
      let index: UInt64
      switch key {
      case .service(let name): index = state.index(ofService: name)
      case .catalog: index = state.indexOfCatalog
      }
      return (body(state), index)
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    if query.has("pretty") { encoder.outputFormatting.insert(.prettyPrinted) }
    var data = try encoder.encode(value)
    if query.has("pretty") { data.append(UInt8(ascii: "\n")) }

    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: "application/json")
    headers.add(name: "Vary", value: "Accept-Encoding")
    headers.add(name: "X-Consul-Default-Acl-Policy", value: "allow")
    headers.add(
      name: "X-Consul-Effective-Consistency",
      value: stale ? "stale" : (consistent ? "consistent" : "leader")
    )
    headers.add(name: "X-Consul-Index", value: String(currentIndex))
    headers.add(name: "X-Consul-Knownleader", value: "true")
    headers.add(name: "X-Consul-Lastcontact", value: "0")
    headers.add(name: "X-Consul-Query-Backend", value: "blocking-query")
    return Response(status: .ok, headers: headers, body: data)
  }

  // MARK: - State changes and blocking queries

  /// Applies a change to the state, then wakes whoever it concerns.
  private func mutate(
    _ change: (inout ConsulAgentState<Clock.Instant>, Clock.Instant) throws(ConsulAgentError) ->
      Void
  ) throws(ConsulAgentError) {
    let now = self.clock.now
    try self.shared.withLock { shared throws(ConsulAgentError) in
      try change(&shared.state, now)
      Self.wakeWaiters(&shared)
    }
    self.checksChangedTrigger.yield()
  }

  private static func wakeWaiters(_ shared: inout Shared) {
    let state = shared.state
    for (id, waiter) in shared.waiters {
      let current: UInt64
      switch waiter.key {
      case .service(let name): current = state.index(ofService: name)
      case .catalog: current = state.indexOfCatalog
      }
      if current > waiter.afterIndex {
        waiter.wake.fire()
        shared.waiters[id] = nil
      }
    }
    shared.notifyBlockedQueryObservers()
    shared.timerWake?.fire()
    shared.timerWake = nil
  }

  /// Returns when the index of `key` passes `index`, after `timeout`, or on shutdown.
  private func waitForChange(_ key: WatchKey, after index: UInt64, timeout: Duration) async {
    let wake = MeshSignal()
    let id: UInt64? = self.shared.withLock { shared in
      let current: UInt64
      switch key {
      case .service(let name): current = shared.state.index(ofService: name)
      case .catalog: current = shared.state.indexOfCatalog
      }
      guard current <= index else { return nil }  // already changed
      let id = shared.nextWaiterID
      shared.nextWaiterID += 1
      shared.waiters[id] = Waiter(key: key, afterIndex: index, wake: wake)
      shared.notifyBlockedQueryObservers()
      return id
    }
    guard let id else { return }
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await wake.wait() }
      group.addTask { try? await self.clock.sleep(for: timeout) }
      group.addTask { await self.shutdown.wait() }
      await group.next()
      group.cancelAll()
    }
    self.shared.withLock { shared in
      shared.waiters[id] = nil
      shared.notifyBlockedQueryObservers()
    }
  }

  // MARK: - Timers: TTL expiry and the critical-service reaper

  private func runTimers() async {
    while !Task.isCancelled && !self.shutdown.hasFired {
      let wake = MeshSignal()
      let deadline = self.shared.withLock { shared in
        let reaped = shared.state.tick(now: self.clock.now)
        if !reaped.isEmpty {
          Self.wakeWaiters(&shared)
        }
        shared.timerWake = wake
        return shared.state.nextDeadline
      }
      // Sleep until the next deadline, or until a change may have moved it.
      await withTaskGroup(of: Void.self) { group in
        if let deadline {
          group.addTask { try? await self.clock.sleep(until: deadline, tolerance: nil) }
        }
        group.addTask { await wake.wait() }
        group.addTask { await self.shutdown.wait() }
        await group.next()
        group.cancelAll()
      }
    }
  }

  // MARK: - gRPC checks

  private func runChecks() async {
    await withDiscardingTaskGroup { group in
      var changes = self.checksChanged.makeAsyncIterator()
      repeat {
        let toStart = self.shared.withLock { shared in
          let checks = shared.state.grpcChecks.filter { !shared.runningChecks.contains($0.checkID) }
          for check in checks { shared.runningChecks.insert(check.checkID) }
          return checks
        }
        for check in toStart {
          group.addTask {
            await self.runCheck(check.checkID, target: check.target)
          }
        }
      } while await changes.next() != nil && !Task.isCancelled
    }
  }

  /// Probes one gRPC check every interval while it stays registered with the same target.
  private func runCheck(_ checkID: String, target: ConsulGRPCCheckTarget) async {
    defer { self.shared.withLock { _ = $0.runningChecks.remove(checkID) } }
    while !Task.isCancelled {
      let current = self.shared.withLock { shared in
        shared.state.grpcChecks.first { $0.checkID == checkID }
      }
      guard let current, current.target == target else { return }
      let (status, output) = await self.probe(target, timeout: current.timeout)
      let now = self.clock.now
      self.shared.withLock { shared in
        shared.state.recordProbe(checkID: checkID, status: status, output: output, now: now)
        Self.wakeWaiters(&shared)
      }
      guard (try? await self.clock.sleep(for: current.interval)) != nil else { return }
    }
  }

  /// One grpc.health.v1 Check, as Consul's gRPC check makes it.
  private func probe(
    _ target: ConsulGRPCCheckTarget,
    timeout: Duration
  ) async -> (ConsulCheckStatus, String) {
    do {
      let security: HTTP2ClientTransport.Posix.TransportSecurity
      if !target.useTLS {
        security = .plaintext
      } else if target.tlsSkipVerify {
        security = .tls { $0.serverCertificateVerification = .noVerification }
      } else if let credentials = self.configuration.checkCredentials {
        let policy: MeshIdentityPolicy =
          if let name = target.tlsServerName { .exactly(try .dns(name)) } else { .anyIdentity }
        security = try credentials.clientTransportSecurity(server: policy)
      } else {
        security = .tls
      }
      let resolvable: any ResolvableTarget =
        if target.host.contains(":") {
          .ipv6(address: target.host, port: target.port)
        } else if target.host.split(separator: ".").count == 4,
          target.host.split(separator: ".").allSatisfy({ UInt8($0) != nil })
        {
          .ipv4(address: target.host, port: target.port)
        } else {
          .dns(host: target.host, port: target.port)
        }
      let transport = try HTTP2ClientTransport.Posix(
        target: resolvable,
        transportSecurity: security
      )
      return try await withGRPCClient(transport: transport) { client in
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        let response = try await Grpc_Health_V1_Health.Client(wrapping: client).check(
          .with { $0.service = target.service },
          options: options
        )
        if response.status == .serving {
          return (.passing, "gRPC check \(target.text): success")
        }
        return (
          .critical, "gRPC \(target.text) serving status: \(Self.statusName(response.status))"
        )
      }
    } catch let error as RPCError {
      return (.critical, "gRPC check \(target.text): \(error.code): \(error.message)")
    } catch {
      return (.critical, "gRPC check \(target.text): \(error)")
    }
  }

  private static func statusName(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus)
    -> String
  {
    switch status {
    case .unknown: return "UNKNOWN"
    case .serving: return "SERVING"
    case .notServing: return "NOT_SERVING"
    case .serviceUnknown: return "SERVICE_UNKNOWN"
    case .UNRECOGNIZED(let value): return "\(value)"
    }
  }

  // MARK: - For tests

  /// Returns once exactly `count` blocking queries are parked, waiting for a change.
  package func waitForBlockedQueries(_ count: Int) async {
    let signal = MeshSignal()
    self.shared.withLock { shared in
      shared.blockedQueryObservers.append((count, signal))
      shared.notifyBlockedQueryObservers()
    }
    await signal.wait()
  }

  /// Reads the agent's state.
  package func withState<T>(_ body: (ConsulAgentState<Clock.Instant>) -> T) -> T {
    self.shared.withLock { body($0.state) }
  }

}

extension MeshConsulAgent where Clock == ContinuousClock {
  public convenience init(
    configuration: MeshConsulAgentConfiguration = MeshConsulAgentConfiguration(),
    logger: Logger = Logger(label: "mesh.consul.agent", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.init(configuration: configuration, clock: ContinuousClock(), logger: logger)
  }
}

/// A request's query parameters.
private struct Query {
  private let items: [URLQueryItem]

  init(_ items: [URLQueryItem]) {
    self.items = items
  }

  func value(_ name: String) -> String? {
    self.items.first { $0.name == name }.map { $0.value ?? "" }
  }

  func all(_ name: String) -> [String] {
    self.items.filter { $0.name == name }.compactMap(\.value)
  }

  func has(_ name: String) -> Bool {
    self.items.contains { $0.name == name }
  }

  /// A presence flag that may also carry a boolean (`?replace-existing-checks`, `=true`).
  func flag(_ name: String) -> Bool {
    guard let value = self.value(name) else { return false }
    return value.isEmpty || Self.parseBool(value) == true
  }

  /// Go's strconv.ParseBool.
  static func parseBool(_ text: String) -> Bool? {
    switch text {
    case "1", "t", "T", "TRUE", "true", "True": return true
    case "0", "f", "F", "FALSE", "false", "False": return false
    default: return nil
    }
  }
}
