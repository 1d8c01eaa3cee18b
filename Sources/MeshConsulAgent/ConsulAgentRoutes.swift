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
internal import HTTPTypes
internal import Hummingbird
internal import MeshConsul
internal import MeshCore
internal import NIOCore

/// What a route's handler gets: the decoded path parameter, the query and the body.
struct ConsulAgentCall: Sendable {
  var method: HTTPRequest.Method
  var query: ConsulAgentQuery
  /// The `**` part of the path, percent-decoded (a service ID, a check ID, a name).
  var parameter: String
  var body: [UInt8]
}

/// A handler's answer.
struct ConsulAgentReply: Sendable {
  var status: HTTPResponse.Status
  var headers: HTTPFields
  var body: [UInt8]

  /// Writes answer `200` with an empty body and no content type, as Consul's.
  static var empty: Self { Self(status: .ok, headers: [:], body: []) }

  static func json(_ data: Data, headers: HTTPFields = [:]) -> Self {
    var headers = headers
    headers[.contentType] = "application/json"
    return Self(status: .ok, headers: headers, body: Array(data))
  }

  /// Consul's plain-text error, cut to 1 KiB: a message never carries a dump of the request.
  static func error(_ error: ConsulAgentError) -> Self {
    let message = ConsulAgentCheckLimits.truncated(error.message, maxBytes: 1024)
    var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
    // The rest of an oversized body is not read: the connection closes after the answer.
    if error.status == 413 { headers[.connection] = "close" }
    return Self(
      status: HTTPResponse.Status(code: error.status),
      headers: headers,
      body: Array(message.utf8)
    )
  }

  var response: Response {
    Response(
      status: self.status,
      headers: self.headers,
      body: ResponseBody(byteBuffer: ByteBuffer(bytes: self.body))
    )
  }
}

/// A request's query parameters, as Go's `url.ParseQuery` reads them (`+` is a space; a pair
/// with a bad escape is dropped).
struct ConsulAgentQuery: Sendable {
  private let items: [(name: String, value: String)]

  init(_ raw: String) {
    var items: [(String, String)] = []
    for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
      let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
      }
      guard let name = decode(parts[0]) else { continue }
      let value = parts.count > 1 ? decode(parts[1]) : ""
      guard let value else { continue }
      items.append((name, value))
    }
    self.items = items
  }

  func value(_ name: String) -> String? {
    self.items.first { $0.name == name }?.value
  }

  func all(_ name: String) -> [String] {
    self.items.filter { $0.name == name }.map(\.value)
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

/// The agent's endpoints: path, methods and handler.
enum ConsulAgentRoutes<Clock: _Concurrency.Clock> where Clock.Duration == Duration {
  struct Route: Sendable {
    var path: String
    var methods: [HTTPRequest.Method]
    var handle: @Sendable (ConsulAgentCore<Clock>, ConsulAgentCall) async throws -> ConsulAgentReply
  }

  typealias Core = ConsulAgentCore<Clock>

  static var all: [Route] {
    func get(
      _ path: String,
      _ handle: @escaping @Sendable (Core, ConsulAgentCall) async throws -> ConsulAgentReply
    ) -> Route {
      Route(path: path, methods: [.get], handle: handle)
    }
    func put(
      _ path: String,
      _ handle: @escaping @Sendable (Core, ConsulAgentCall) async throws -> ConsulAgentReply
    ) -> Route {
      Route(path: path, methods: [.put], handle: handle)
    }
    func missing(_ path: String, _ message: String) -> Route {
      get(path) { _, _ in throw ConsulAgentError(400, message) }
    }
    var routes: [Route] = [
      // Health
      get("/v1/health/service/**") { try await $0.healthService($1) },
      missing("/v1/health/service", "Missing service name"),
      get("/v1/health/checks/**") { core, call in
        let name = ConsulAgentKey(call.parameter)
        return try await core.read(.service(name), call) { $0.healthChecks(ofService: name) }
      },
      missing("/v1/health/checks", "Missing service name"),
      get("/v1/health/node/**") { core, call in
        let node = ConsulAgentKey(call.parameter)
        return try await core.read(.any, call) { $0.healthChecks(ofNode: node) }
      },
      missing("/v1/health/node", "Missing node name"),
      get("/v1/health/state/**") { try await $0.healthState($1) },
      missing("/v1/health/state", "Missing check state"),
      // Catalog
      get("/v1/catalog/services") { core, call in
        try await core.read(.catalog, call) { $0.catalogServices }
      },
      get("/v1/catalog/service/**") { core, call in
        let name = ConsulAgentKey(call.parameter)
        let tags = call.query.all("tag")
        return try await core.read(.service(name), call) { $0.catalogService(name, tags: tags) }
      },
      missing("/v1/catalog/service", "Missing service name"),
      get("/v1/catalog/nodes") { core, call in
        try await core.read(.catalog, call) { $0.catalogNodes }
      },
      get("/v1/catalog/node/**") { core, call in
        let node = ConsulAgentKey(call.parameter)
        return try await core.read(.any, call) { $0.catalogNode(node) }
      },
      missing("/v1/catalog/node", "Missing node name"),
      // Agent: services and checks
      put("/v1/agent/service/register") { try await $0.register($1) },
      put("/v1/agent/service/deregister/**") { core, call in
        try core.mutate { state, _ throws(ConsulAgentError) in
          try state.deregister(serviceID: ConsulAgentKey(call.parameter))
        }
        return .empty
      },
      put("/v1/agent/service/maintenance/**") { try await $0.maintenance($1) },
      get("/v1/agent/service/**") { try await $0.agentService($1) },
      get("/v1/agent/services") { core, call in
        let datacenter = core.configuration.datacenter
        return try core.agentRead(call) { $0.agentServices(datacenter: datacenter) }
      },
      get("/v1/agent/checks") { core, call in try core.agentRead(call) { $0.agentChecks } },
      get("/v1/agent/self") { core, call in
        let datacenter = core.configuration.datacenter
        return try core.agentRead(call) { $0.agentSelf(datacenter: datacenter) }
      },
      get("/v1/agent/members") { core, call in
        let datacenter = core.configuration.datacenter
        return try core.agentRead(call) { [$0.member(datacenter: datacenter)] }
      },
      put("/v1/agent/check/update/**") { try await $0.checkUpdate($1) },
      // Intentions: service-intentions config entries, and the intention views of them
      Route(
        path: "/v1/connect/intentions/exact",
        methods: [.get, .put, .delete],
        handle: { try await $0.exactIntention($1) }
      ),
      get("/v1/connect/intentions/match") { try await $0.matchIntentions($1) },
      get("/v1/connect/intentions/check") { try await $0.checkIntention($1) },
      get("/v1/connect/intentions") { core, call in
        try await core.read(.intentions, call) { $0.intentions.all }
      },
      put("/v1/config") { try await $0.setConfigEntry($1) },
      Route(
        path: "/v1/config/**",
        methods: [.get, .delete],
        handle: { try await $0.configEntry($1) }
      ),
      // Status
      get("/v1/status/leader") { core, call in
        try core.agentRead(call) { "\($0.node.address):8300" }
      },
      get("/v1/status/peers") { core, call in
        try core.agentRead(call) { ["\($0.node.address):8300"] }
      },
    ]
    for (verb, status) in [
      ("pass", ConsulCheckStatus.passing), ("warn", .warning), ("fail", .critical),
    ] {
      routes.append(
        put("/v1/agent/check/\(verb)/**") { core, call in
          try core.reportTTL(call.parameter, status: status, output: call.query.value("note") ?? "")
        }
      )
    }
    return routes
  }
}
