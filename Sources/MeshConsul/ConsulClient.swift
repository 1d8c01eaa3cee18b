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

internal import AsyncHTTPClient
public import Foundation
internal import MeshCore
internal import NIOCore
internal import NIOHTTP1
internal import NIOSSL

/// How to reach a Consul agent.
public struct ConsulClientConfiguration: Sendable {
  /// The agent's base URL, `http://127.0.0.1:8500` by default.
  public var address: URL
  /// The ACL token, sent as `X-Consul-Token`.
  public var token: String?
  /// The datacenter to query; nil for the agent's own.
  public var datacenter: String?
  /// The CA bundle (PEM file) to verify an HTTPS agent with; nil for the system's roots.
  public var caBundlePath: String?
  /// How long a non-blocking request may take. Blocking queries get their wait plus a margin.
  public var requestTimeout: Duration

  /// A configuration with each setting given, or its default: the local agent at
  /// `http://127.0.0.1:8500`, no token, the agent's datacenter, the system's roots, and 10 seconds
  /// per non-blocking request.
  public init(
    address: URL = URL(string: "http://127.0.0.1:8500")!,
    token: String? = nil,
    datacenter: String? = nil,
    caBundlePath: String? = nil,
    requestTimeout: Duration = .seconds(10)
  ) {
    self.address = address
    self.token = token
    self.datacenter = datacenter
    self.caBundlePath = caBundlePath
    self.requestTimeout = requestTimeout
  }

  /// Every setting at its default: the local agent on port 8500, no token, 10 s requests.
  public static var defaults: Self { Self() }

  /// Reads the environment as Consul's own tools do: `CONSUL_HTTP_ADDR` (`host:port` or a URL),
  /// `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_SSL` (`true` for HTTPS when the address has no scheme)
  /// and `CONSUL_CACERT`.
  ///
  /// - Throws: ``MeshConsulError`` with code `invalidConfiguration` for an unusable address.
  public static func fromEnvironment(
    _ environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(MeshConsulError) -> Self {
    var configuration = Self()
    if let address = environment["CONSUL_HTTP_ADDR"], !address.isEmpty {
      let useTLS = ["1", "true", "TRUE", "True"].contains(environment["CONSUL_HTTP_SSL"] ?? "")
      let text = address.contains("://") ? address : "\(useTLS ? "https" : "http")://\(address)"
      guard let url = URL(string: text) else {
        throw MeshConsulError(
          code: .invalidConfiguration,
          message: "CONSUL_HTTP_ADDR '\(address)' is not host:port or an http(s) URL."
        )
      }
      try Self.check(url, named: "CONSUL_HTTP_ADDR '\(address)'")
      configuration.address = url
    }
    if let token = environment["CONSUL_HTTP_TOKEN"], !token.isEmpty {
      configuration.token = token
    }
    if let caBundle = environment["CONSUL_CACERT"], !caBundle.isEmpty {
      configuration.caBundlePath = caBundle
    }
    return configuration
  }

  /// Checks that `address` is an http(s) URL with a valid host and, if it has one, a port of
  /// 1–65535, before async-http-client and NIO see it (NIO traps on a port past 65535).
  static func check(_ address: URL, named name: String) throws(MeshConsulError) {
    guard address.scheme == "http" || address.scheme == "https", let host = address.host,
      !host.isEmpty
    else {
      throw MeshConsulError(
        code: .invalidConfiguration,
        message: "\(name) is not host:port or an http(s) URL of a Consul agent."
      )
    }
    do {
      _ = try MeshHost(host, field: "host")
      if let port = address.port { _ = try MeshInput.port(port, field: "port") }
    } catch {
      throw MeshConsulError(
        code: .invalidConfiguration,
        message: "\(name) is not a usable Consul address: \(error)",
        cause: error
      )
    }
  }
}

/// A response's body and the query metadata of its headers.
public struct ConsulResponse<Value: Sendable>: Sendable {
  /// The decoded body.
  public var value: Value
  /// `X-Consul-Index`: the index to block on next.
  public var index: UInt64
  /// `X-Consul-KnownLeader`.
  public var knownLeader: Bool
  /// `X-Consul-LastContact`, in milliseconds.
  public var lastContactMilliseconds: Int
}

/// Options of a health query.
public struct ConsulHealthQuery: Sendable, Hashable {
  /// Read consistency.
  public enum Consistency: Sendable, Hashable {
    /// Consul's default mode: the leader answers, without checking its leadership with a quorum.
    case `default`
    /// `?stale`: any server answers, perhaps a little behind the leader; spreads reads.
    case stale
    /// `?consistent`: the leader confirms its leadership with a quorum first; the slowest.
    case consistent
  }

  /// Only instances whose every check passes (`?passing`).
  public var passingOnly: Bool
  /// Only instances that have every one of these tags.
  public var tags: [String]
  /// Sort by round-trip time from this node (`_agent` for the local agent).
  public var near: String?
  /// A Consul filter expression.
  public var filter: String?
  /// Read consistency: Consul's default, `?stale` or `?consistent`.
  public var consistency: Consistency
  /// The datacenter; nil uses the client's.
  public var datacenter: String?

  /// A query with each option given, or its default: passing instances only (`?passing`), no tag,
  /// `near` or filter, Consul's default consistency, and the client's datacenter.
  public init(
    passingOnly: Bool = true,
    tags: [String] = [],
    near: String? = nil,
    filter: String? = nil,
    consistency: Consistency = .default,
    datacenter: String? = nil
  ) {
    self.passingOnly = passingOnly
    self.tags = tags
    self.near = near
    self.filter = filter
    self.consistency = consistency
    self.datacenter = datacenter
  }
}

/// A client of a Consul agent's HTTP API: health queries (blocking), the catalog, and the local
/// agent's service registration and TTL checks.
///
/// Call ``shutdown()`` when done if the configuration names a CA bundle (the client then owns an
/// HTTP client of its own); otherwise it uses the shared one and shutting down is a no-op.
public final class ConsulClient: Sendable {
  /// Where the agent is and how to talk to it.
  public let configuration: ConsulClientConfiguration
  private let http: HTTPClient
  private let ownsHTTPClient: Bool

  /// A client of the agent `configuration` names.
  ///
  /// - Throws: ``MeshConsulError`` with code ``MeshConsulError/Code/invalidConfiguration`` for an
  ///   address that is not an http(s) URL with a valid host and port, or a CA bundle that cannot be
  ///   read as PEM certificates.
  public init(_ configuration: ConsulClientConfiguration = ConsulClientConfiguration())
    throws(MeshConsulError)
  {
    self.configuration = configuration
    try ConsulClientConfiguration.check(configuration.address, named: "'\(configuration.address)'")
    if let caBundlePath = configuration.caBundlePath {
      let roots: [NIOSSLCertificate]
      do {
        roots = try NIOSSLCertificate.fromPEMFile(caBundlePath)
      } catch {
        throw MeshConsulError(
          code: .invalidConfiguration,
          message: "The Consul CA bundle \(caBundlePath) cannot be read as PEM certificates: "
            + "\(error)",
          cause: error
        )
      }
      var tls = TLSConfiguration.makeClientConfiguration()
      tls.trustRoots = .certificates(roots)
      self.http = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(tlsConfiguration: tls)
      )
      self.ownsHTTPClient = true
    } else {
      self.http = .shared
      self.ownsHTTPClient = false
    }
  }

  /// Shuts down the HTTP client this client owns, if any.
  public func shutdown() async throws {
    if self.ownsHTTPClient {
      try await self.http.shutdown()
    }
  }

  // MARK: - Health and catalog

  /// `GET /v1/health/service/:service`: the instances of `service` with their checks.
  ///
  /// With `index`, a blocking query: Consul answers when the service's index passes `index`, or
  /// after `wait` (and its jitter). The request's own deadline is `wait` plus a margin, so a hung
  /// agent fails with ``MeshConsulError/Code/timeout``.
  public func healthService(
    _ service: String,
    query: ConsulHealthQuery = ConsulHealthQuery(),
    index: UInt64? = nil,
    wait: Duration? = nil
  ) async throws(MeshConsulError) -> ConsulResponse<[ConsulServiceEntry]> {
    var items: [URLQueryItem] = []
    if query.passingOnly { items.append(URLQueryItem(name: "passing", value: "1")) }
    for tag in query.tags { items.append(URLQueryItem(name: "tag", value: tag)) }
    if let near = query.near { items.append(URLQueryItem(name: "near", value: near)) }
    if let filter = query.filter { items.append(URLQueryItem(name: "filter", value: filter)) }
    switch query.consistency {
    case .default: break
    case .stale: items.append(URLQueryItem(name: "stale", value: ""))
    case .consistent: items.append(URLQueryItem(name: "consistent", value: ""))
    }
    if let datacenter = query.datacenter {
      items.append(URLQueryItem(name: "dc", value: datacenter))
    }
    let timeout = self.blocking(index: index, wait: wait, query: &items)
    return try await self.get(
      "/v1/health/service/\(Self.pathSegment(service))",
      query: items,
      timeout: timeout,
      as: [ConsulServiceEntry].self
    )
  }

  /// Adds a blocking query's `index` and `wait` to `items` (none for a nil or zero index);
  /// returns the request's deadline: `wait` and its jitter plus the usual timeout.
  private func blocking(index: UInt64?, wait: Duration?, query items: inout [URLQueryItem])
    -> Duration
  {
    guard let index, index > 0 else { return self.configuration.requestTimeout }
    items.append(URLQueryItem(name: "index", value: String(index)))
    let wait = wait ?? .seconds(300)
    // Whole milliseconds, at least 1, as Consul's Go client sends them.
    let milliseconds = max(1, MeshInput.milliseconds(clamping: wait))
    items.append(URLQueryItem(name: "wait", value: "\(milliseconds)ms"))
    // Consul may hold the request for wait + wait/16 of jitter.
    return wait + wait / 16 + self.configuration.requestTimeout
  }

  // MARK: - Intentions

  /// `GET /v1/connect/intentions/match?by=destination&name=`: the intentions that apply to calls
  /// to `destination` (its own and those to `*`), most specific first, keyed by `destination`
  /// (an empty list when none: Consul's `null`).
  ///
  /// With `index`, a blocking query: Consul answers when the intentions' index passes `index`, or
  /// after `wait`.
  public func intentionsMatching(
    destination: String,
    index: UInt64? = nil,
    wait: Duration? = nil
  ) async throws(MeshConsulError) -> ConsulResponse<[String: [ConsulIntention]]> {
    var items = [
      URLQueryItem(name: "by", value: "destination"),
      URLQueryItem(name: "name", value: destination),
    ]
    let timeout = self.blocking(index: index, wait: wait, query: &items)
    // A name with no intentions maps to null.
    let response = try await self.get(
      "/v1/connect/intentions/match",
      query: items,
      timeout: timeout,
      as: [String: [ConsulIntention]?].self
    )
    return ConsulResponse(
      value: response.value.compactMapValues { $0 ?? [] },
      index: response.index,
      knownLeader: response.knownLeader,
      lastContactMilliseconds: response.lastContactMilliseconds
    )
  }

  /// `PUT /v1/connect/intentions/exact?source=&destination=`: creates or replaces the intention
  /// from `source` to `destination` (in the destination's `service-intentions` config entry).
  public func upsertIntention(_ intention: ConsulIntention) async throws(MeshConsulError) {
    try await self.put(
      "/v1/connect/intentions/exact",
      query: [
        URLQueryItem(name: "source", value: intention.sourceName),
        URLQueryItem(name: "destination", value: intention.destinationName),
      ],
      body: try Self.encode(intention)
    )
  }

  /// `DELETE /v1/connect/intentions/exact?source=&destination=`; deleting a missing intention
  /// succeeds, as in Consul.
  public func deleteIntention(source: String, destination: String) async throws(MeshConsulError) {
    _ = try await self.execute(
      .DELETE,
      "/v1/connect/intentions/exact",
      query: [
        URLQueryItem(name: "source", value: source),
        URLQueryItem(name: "destination", value: destination),
      ],
      body: nil,
      timeout: self.configuration.requestTimeout
    )
  }

  /// `PUT /v1/config` with a `service-intentions` entry: every intention to the entry's
  /// destination at once, L7 permissions included.
  public func setServiceIntentions(_ entry: ConsulServiceIntentions) async throws(MeshConsulError) {
    try await self.put("/v1/config", body: try Self.encode(entry))
  }

  private static func encode(_ value: some Encodable) throws(MeshConsulError) -> Data {
    do {
      return try JSONEncoder().encode(value)
    } catch {
      throw MeshConsulError(
        code: .invalidConfiguration,
        message: "Cannot encode: \(error)",
        cause: error
      )
    }
  }

  /// `GET /v1/catalog/services`: every service name and the union of its tags.
  public func catalogServices() async throws(MeshConsulError) -> ConsulResponse<[String: [String]]>
  {
    try await self.get("/v1/catalog/services", as: [String: [String]].self)
  }

  /// `GET /v1/catalog/service/:service`: the registered instances, without health.
  public func catalogService(
    _ service: String
  ) async throws(MeshConsulError) -> ConsulResponse<[ConsulCatalogServiceNode]> {
    try await self.get(
      "/v1/catalog/service/\(Self.pathSegment(service))",
      as: [ConsulCatalogServiceNode].self
    )
  }

  // MARK: - The local agent

  /// `PUT /v1/agent/service/register`.
  public func register(
    _ registration: ConsulServiceRegistration,
    replaceExistingChecks: Bool = true
  ) async throws(MeshConsulError) {
    let body: Data
    do {
      body = try JSONEncoder().encode(registration)
    } catch {
      throw MeshConsulError(
        code: .invalidConfiguration,
        message: "Cannot encode: \(error)",
        cause: error
      )
    }
    try await self.put(
      "/v1/agent/service/register",
      query: replaceExistingChecks
        ? [URLQueryItem(name: "replace-existing-checks", value: "true")] : [],
      body: body
    )
  }

  /// `PUT /v1/agent/service/deregister/:service_id`.
  public func deregister(serviceID: String) async throws(MeshConsulError) {
    try await self.put("/v1/agent/service/deregister/\(Self.pathSegment(serviceID))")
  }

  /// `PUT /v1/agent/service/maintenance/:service_id`: in maintenance an instance is critical,
  /// so it leaves every `?passing` result.
  public func setMaintenance(
    serviceID: String,
    enabled: Bool,
    reason: String? = nil
  ) async throws(MeshConsulError) {
    var query = [URLQueryItem(name: "enable", value: enabled ? "true" : "false")]
    if let reason { query.append(URLQueryItem(name: "reason", value: reason)) }
    try await self.put(
      "/v1/agent/service/maintenance/\(Self.pathSegment(serviceID))",
      query: query
    )
  }

  /// `PUT /v1/agent/check/update/:check_id`: sets a TTL check's status and output, and resets
  /// its TTL.
  public func updateTTL(
    checkID: String,
    status: ConsulCheckStatus,
    output: String = ""
  ) async throws(MeshConsulError) {
    let body: Data
    do {
      body = try JSONEncoder().encode(ConsulCheckUpdate(status: status, output: output))
    } catch {
      throw MeshConsulError(
        code: .invalidConfiguration,
        message: "Cannot encode: \(error)",
        cause: error
      )
    }
    try await self.put("/v1/agent/check/update/\(Self.pathSegment(checkID))", body: body)
  }

  // MARK: - HTTP

  private static func pathSegment(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? text
  }

  private func url(_ path: String, query: [URLQueryItem]) throws(MeshConsulError) -> String {
    guard
      var components = URLComponents(
        url: self.configuration.address.appendingPathComponent(""),
        resolvingAgainstBaseURL: false
      )
    else {
      throw MeshConsulError(code: .invalidConfiguration, message: "Bad Consul address.")
    }
    let base =
      components.percentEncodedPath.hasSuffix("/")
      ? String(components.percentEncodedPath.dropLast()) : components.percentEncodedPath
    components.percentEncodedPath = base + path
    var items = query
    if let datacenter = self.configuration.datacenter,
      !items.contains(where: { $0.name == "dc" })
    {
      items.append(URLQueryItem(name: "dc", value: datacenter))
    }
    components.queryItems = items.isEmpty ? nil : items
    // '+' in a query value means a space to Go; encode it.
    components.percentEncodedQuery = components.percentEncodedQuery?
      .replacingOccurrences(of: "+", with: "%2B")
    guard let url = components.string else {
      throw MeshConsulError(code: .invalidConfiguration, message: "Bad Consul URL for \(path).")
    }
    return url
  }

  private func get<Value: Decodable & Sendable>(
    _ path: String,
    query: [URLQueryItem] = [],
    timeout: Duration? = nil,
    as type: Value.Type
  ) async throws(MeshConsulError) -> ConsulResponse<Value> {
    let (response, body) = try await self.execute(
      .GET,
      path,
      query: query,
      body: nil,
      timeout: timeout ?? self.configuration.requestTimeout
    )
    let value: Value
    do {
      value = try JSONDecoder().decode(Value.self, from: body)
    } catch {
      let preview = String(decoding: body.prefix(200), as: UTF8.self)
      throw MeshConsulError(
        code: .malformedResponse,
        message:
          "\(path) answered with a body that is not the expected JSON (\(error)): \(preview)",
        cause: error
      )
    }
    let headers = response.headers
    return ConsulResponse(
      value: value,
      index: headers.first(name: "X-Consul-Index").flatMap(UInt64.init) ?? 0,
      knownLeader: headers.first(name: "X-Consul-KnownLeader") == "true",
      lastContactMilliseconds: headers.first(name: "X-Consul-LastContact").flatMap(Int.init) ?? 0
    )
  }

  private func put(
    _ path: String,
    query: [URLQueryItem] = [],
    body: Data? = nil
  ) async throws(MeshConsulError) {
    _ = try await self.execute(
      .PUT,
      path,
      query: query,
      body: body,
      timeout: self.configuration.requestTimeout
    )
  }

  /// Sends a request; retries it once when the connection failed before an answer (a pooled
  /// keep-alive connection the agent closed, as after a restart). Every endpoint used here is
  /// idempotent.
  private func execute(
    _ method: HTTPMethod,
    _ path: String,
    query: [URLQueryItem],
    body: Data?,
    timeout: Duration
  ) async throws(MeshConsulError) -> (HTTPClientResponse, Data) {
    do {
      return try await self.executeOnce(method, path, query: query, body: body, timeout: timeout)
    } catch  where error.code == .connectionFailed && !Task.isCancelled {
      return try await self.executeOnce(method, path, query: query, body: body, timeout: timeout)
    }
  }

  private func executeOnce(
    _ method: HTTPMethod,
    _ path: String,
    query: [URLQueryItem],
    body: Data?,
    timeout: Duration
  ) async throws(MeshConsulError) -> (HTTPClientResponse, Data) {
    var request = HTTPClientRequest(url: try self.url(path, query: query))
    request.method = method
    if let token = self.configuration.token {
      request.headers.add(name: "X-Consul-Token", value: token)
    }
    if let body {
      request.headers.add(name: "Content-Type", value: "application/json")
      request.body = .bytes(ByteBuffer(bytes: body))
    }
    let nanoseconds = MeshInput.nanoseconds(clamping: timeout)
    do {
      let response = try await self.http.execute(request, timeout: .nanoseconds(nanoseconds))
      let buffer = try await response.body.collect(upTo: 64 * 1024 * 1024)
      let data = Data(buffer.readableBytesView)
      guard (200..<300).contains(response.status.code) else {
        let message = String(decoding: data, as: UTF8.self)
          .trimmingCharacters(in: .whitespacesAndNewlines)
        throw MeshConsulError(
          code: .unexpectedStatus,
          status: Int(response.status.code),
          message: message
        )
      }
      return (response, data)
    } catch let error as MeshConsulError {
      throw error
    } catch let error as HTTPClientError
      where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout
    {
      throw MeshConsulError(
        code: .timeout,
        message: "\(method) \(path) got no answer within \(timeout).",
        cause: error
      )
    } catch is CancellationError {
      throw MeshConsulError(
        code: .connectionFailed,
        message: "\(method) \(path) was cancelled.",
        cause: CancellationError()
      )
    } catch {
      throw MeshConsulError(
        code: .connectionFailed,
        message: "\(method) \(path) to \(self.configuration.address) failed: \(error)",
        cause: error
      )
    }
  }
}
