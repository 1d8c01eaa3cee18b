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

import Foundation
import MeshConsul
import Testing

@testable import MeshConsulAgent

/// Drives the agent's router and handlers without sockets, as the fuzz target does.
extension MeshConsulAgent {
  func call(
    _ method: String,
    _ pathAndQuery: String,
    body: String? = nil,
    headers: [(name: String, value: String)] = []
  ) async -> ConsulAgentHTTPResponse {
    let parts = pathAndQuery.split(separator: "?", maxSplits: 1)
    return await self.respond(
      to: ConsulAgentHTTPRequest(
        method: method,
        path: String(parts[0]),
        query: parts.count > 1 ? String(parts[1]) : "",
        headers: headers,
        body: Array((body ?? "").utf8)
      )
    )
  }
}

/// A JSON document's shape: its keys and value kinds, recursively (an array by its first
/// element), so that the agent's output can be held against a fixture whose values differ.
func shape(_ value: ConsulJSONValue) -> String {
  switch value {
  case .null: return "null"
  case .bool: return "bool"
  case .number: return "number"
  case .string: return "string"
  case .array(let elements): return "[" + (elements.first.map(shape) ?? "") + "]"
  case .object(let fields):
    return "{" + fields.keys.sorted().map { "\($0):\(shape(fields[$0]!))" }.joined(separator: ",")
      + "}"
  }
}

func json(_ bytes: [UInt8]) throws -> ConsulJSONValue {
  try JSONDecoder().decode(ConsulJSONValue.self, from: Data(bytes))
}

@Suite("Embedded agent's router, without sockets", .timeLimit(.minutes(2)))
struct ConsulAgentRouterTests {
  let agent = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: 0))

  /// The service the fixtures of the read endpoints show.
  static let greeter = """
    {"ID": "greeter-1", "Name": "greeter", "Tags": ["grpc", "v1"], "Address": "10.0.1.11",
     "Port": 50051, "Meta": {"version": "1.4.2"}, "Weights": {"Passing": 10},
     "Check": {"TTL": "30s", "Status": "passing"}}
    """

  @Test(
    "Prometheus's Consul discovery (consul_sd_configs): its requests, as its Go client sends them, find the mesh's admin ports"
  )
  func prometheusConsulDiscovery() async throws {
    // A MeshServer with an admin endpoint registers its port as the meta mesh_admin_port.
    let greeter = """
      {"ID": "greeter-1", "Name": "greeter", "Tags": ["v1"], "Address": "10.0.0.5",
       "Port": 8443, "Meta": {"mesh_admin_port": "9901"}}
      """
    let register = await self.agent.call("PUT", "/v1/agent/service/register", body: greeter)
    #expect(register.status == 200, "\(register.text)")

    // 1. The datacenter, from the agent's configuration (discovery/consul: `Config.Datacenter`).
    let agentSelf = await self.agent.call("GET", "/v1/agent/self")
    #expect(agentSelf.status == 200)
    guard case .object(let top) = try json(agentSelf.body),
      case .object(let config)? = top["Config"],
      case .string(let datacenter)? = config["Datacenter"]
    else {
      Issue.record("no Config.Datacenter in \(agentSelf.text)")
      return
    }

    // 2. The service list, a blocking query: the Go client writes `dc`, `stale` (no value),
    //    `index` once it has one, and the wait in milliseconds (2 minutes by default).
    let services = await self.agent.call(
      "GET",
      "/v1/catalog/services?dc=\(datacenter)&stale=&wait=120000ms"
    )
    #expect(services.status == 200, "\(services.text)")
    let index = try #require(services.header("X-Consul-Index").flatMap(UInt64.init))
    #expect(index > 0)
    #expect(services.header("X-Consul-KnownLeader") == "true")
    guard case .object(let listed) = try json(services.body) else {
      Issue.record("not an object: \(services.text)")
      return
    }
    #expect(listed["greeter"] == .array([.string("v1")]))

    // 3. Each service's instances, all of them (Prometheus filters on health itself), blocking
    //    from the index it last saw; here past it, so it answers at once.
    let instances = await self.agent.call(
      "GET",
      "/v1/health/service/greeter?dc=\(datacenter)&index=\(index - 1)&stale=&wait=120000ms"
    )
    #expect(instances.status == 200, "\(instances.text)")
    #expect(instances.header("X-Consul-Index").flatMap(UInt64.init).map { $0 > 0 } == true)
    let entries = try JSONDecoder().decode([ConsulServiceEntry].self, from: Data(instances.body))
    let entry = try #require(entries.first)
    // What Prometheus's relabelling reads: the service's address and port, its ID and meta.
    #expect(entry.service.address == "10.0.0.5")
    #expect(entry.service.port == 8443)
    #expect(entry.service.id == "greeter-1")
    #expect(entry.service.meta?["mesh_admin_port"] == "9901")
    #expect(!entry.node.address.isEmpty)
  }

  @Test("The read endpoints answer in the shape of Consul's, as the fixtures show")
  func readEndpointsMatchFixtures() async throws {
    let register = await self.agent.call("PUT", "/v1/agent/service/register", body: Self.greeter)
    #expect(register.status == 200, "\(register.text)")
    let pass = await self.agent.call("PUT", "/v1/agent/check/pass/service:greeter-1?note=ok")
    #expect(pass.status == 200)

    for (path, fixture) in [
      ("/v1/agent/services", "agent_services.json"),
      ("/v1/agent/service/greeter-1", "agent_service_greeter.json"),
      ("/v1/agent/checks", "agent_checks.json"),
      ("/v1/agent/self", "agent_self.json"),
      ("/v1/agent/members", "agent_members.json"),
      ("/v1/status/leader", "status_leader.json"),
      ("/v1/status/peers", "status_peers.json"),
      ("/v1/catalog/nodes", "catalog_nodes.json"),
      ("/v1/catalog/node/mesh-agent", "catalog_node.json"),
      ("/v1/health/checks/greeter", "health_checks_greeter.json"),
      ("/v1/health/node/mesh-agent", "health_node.json"),
      ("/v1/health/state/passing", "health_state_passing.json"),
    ] {
      let response = await self.agent.call("GET", path)
      #expect(response.status == 200, "\(path): \(response.text)")
      #expect(response.header("Content-Type") == "application/json", "\(path)")
      let expected = try JSONDecoder().decode(ConsulJSONValue.self, from: Fixtures.data(fixture))
      #expect(shape(try json(response.body)) == shape(expected), "\(path) against \(fixture)")
    }

    // The values clients read, and the wire types that decode them.
    let services = try JSONDecoder().decode(
      [String: ConsulJSONValue].self,
      from: Data(await self.agent.call("GET", "/v1/agent/services").body)
    )
    #expect(
      services["greeter-1"]
        == (try JSONDecoder().decode(
          [String: ConsulJSONValue].self,
          from: Fixtures.data("agent_services.json")
        ))["greeter-1"],
      "only Passing registered: Warning is 1, as Consul fills it"
    )
    let one = await self.agent.call("GET", "/v1/agent/service/greeter-1")
    #expect(one.header("X-Consul-ContentHash")?.isEmpty == false)
    let checks = try JSONDecoder().decode(
      [ConsulHealthCheck].self,
      from: Data(await self.agent.call("GET", "/v1/health/checks/greeter").body)
    )
    #expect(checks.map(\.checkID) == ["service:greeter-1"])
    #expect(checks.first?.output == "ok")
    let node = try JSONDecoder().decode(
      [ConsulHealthCheck].self,
      from: Data(await self.agent.call("GET", "/v1/health/node/mesh-agent").body)
    )
    #expect(node.map(\.checkID) == ["serfHealth", "service:greeter-1"])
    let nodes = try JSONDecoder().decode(
      [ConsulNode].self,
      from: Data(await self.agent.call("GET", "/v1/catalog/nodes").body)
    )
    #expect(nodes.map(\.node) == ["mesh-agent"])
    #expect(
      try Fixtures.decode([ConsulNode].self, "catalog_nodes.json").map(\.node) == ["mesh-agent"]
    )
    let leader = await self.agent.call("GET", "/v1/status/leader")
    #expect(leader.text == "\"127.0.0.1:8300\"")
    let critical = await self.agent.call("GET", "/v1/health/state/critical")
    #expect(critical.text == "[]")
    #expect(critical.header("X-Consul-Index") != nil)

    // Unknown objects, as Consul answers them.
    #expect(await self.agent.call("GET", "/v1/catalog/node/elsewhere").text == "null")
    #expect(await self.agent.call("GET", "/v1/health/node/elsewhere").text == "[]")
    let unknown = await self.agent.call("GET", "/v1/agent/service/ghost")
    #expect(unknown.status == 404)
    #expect(unknown.text == "unknown service ID: ghost")
    for (path, message) in [
      ("/v1/health/checks/", "Missing service name"), ("/v1/health/node/", "Missing node name"),
      ("/v1/health/state/", "Missing check state"), ("/v1/catalog/node/", "Missing node name"),
    ] {
      let response = await self.agent.call("GET", path)
      #expect(response.status == 400, "\(path)")
      #expect(response.text == message, "\(path)")
    }
    #expect(await self.agent.call("GET", "/v1/health/state/bogus").status == 400)
    #expect(await self.agent.call("PUT", "/v1/agent/services").status == 405)
  }

  @Test(
    "Durations past 64 bits of nanoseconds are a 400, never a trap",
    arguments: ["TTL", "Interval", "Timeout", "DeregisterCriticalServiceAfter"]
  )
  func hugeDurations(field: String) async throws {
    for value in [
      "1e19", "-1e19", "9.223372036854775807e18", "1e308", "\"2562047h47m16.854775808s\"",
      "\"-2562047h47m16.854775809s\"", "\"9999999999999999999h\"",
    ] {
      let check =
        field == "TTL"
        ? #"{"TTL": \#(value)}"#
        : field == "Interval"
          ? #"{"GRPC": "127.0.0.1:1", "Interval": \#(value)}"#
          : #"{"GRPC": "127.0.0.1:1", "Interval": "10s", "\#(field)": \#(value)}"#
      let response = await self.agent.call(
        "PUT",
        "/v1/agent/service/register",
        body: #"{"Name": "a", "Check": \#(check)}"#
      )
      #expect(response.status == 400, "\(field) = \(value)")
      #expect(response.text.hasPrefix("Request decode failed: "), "\(field) = \(value)")
      #expect(response.body.count < 300, "\(field) = \(value): \(response.text)")
    }
    // The largest duration Go has is accepted.
    let check =
      field == "TTL"
      ? #"{"TTL": "2562047h47m16.854775807s"}"#
      : field == "Interval"
        ? #"{"GRPC": "127.0.0.1:1", "Interval": 9223372036854774784}"#
        : #"{"GRPC": "127.0.0.1:1", "Interval": "10s", "\#(field)": 9223372036854774784}"#
    let response = await self.agent.call(
      "PUT",
      "/v1/agent/service/register",
      body: #"{"Name": "a", "Check": \#(check)}"#
    )
    #expect(response.status == 200, "\(field): \(response.text)")
  }

  @Test("Weights are checked as Consul's ValidateWeights checks them, in its words")
  func weights() async {
    for (weights, message) in [
      (#"{"Passing": 0, "Warning": 1}"#, "Invalid Weights: Passing must be greater than 0"),
      (
        #"{"Passing": 1, "Warning": -1}"#,
        "Invalid Weights: Warning must be greater or equal than 0"
      ),
      (
        #"{"Passing": 65536, "Warning": 1}"#,
        "Invalid Weights: DNS Weight must be between 0 and 65535"
      ),
      (
        #"{"Passing": 1, "Warning": 65536}"#,
        "Invalid Weights: DNS Weight must be between 0 and 65535"
      ),
    ] {
      let response = await self.agent.call(
        "PUT",
        "/v1/agent/service/register",
        body: #"{"Name": "a", "Weights": \#(weights)}"#
      )
      #expect(response.status == 400, "\(weights)")
      #expect(response.text == message, "\(weights)")
    }
    let accepted = await self.agent.call(
      "PUT",
      "/v1/agent/service/register",
      body: #"{"Name": "a", "Weights": {"Passing": 65535, "Warning": 0}}"#
    )
    #expect(accepted.status == 200, "\(accepted.text)")
  }

  @Test("Two spellings of one field are refused, not read one way or the other at random")
  func duplicateFields() async {
    for body in [
      #"{"Name": "a", "name": "b"}"#,
      #"{"Name": "a", "Check": {"TTL": "10s", "ttl": "20s"}}"#,
      #"{"Name": "a", "TaggedAddresses": {"lan": {"Port": 1, "port": 2}}}"#,
    ] {
      let response = await self.agent.call("PUT", "/v1/agent/service/register", body: body)
      #expect(response.status == 400, "\(body)")
      #expect(response.text.hasPrefix("Request decode failed: json: duplicate field "), "\(body)")
    }
    #expect(self.agent.withState { $0.services.isEmpty })
  }

  @Test("A wait or an index out of range is a 400, as Consul's")
  func waitAndIndexOutOfRange() async {
    for wait in ["2562047h47m16.854775808s", "9999999999h", "soon", "1e19"] {
      let response = await self.agent.call("GET", "/v1/health/service/x?index=1&wait=\(wait)")
      #expect(response.status == 400, "\(wait)")
      #expect(response.text == "Invalid wait time", "\(wait)")
    }
    // The largest wait Go can express is clamped to the maximum, not refused (no index: no
    // blocking).
    let largest = await self.agent.call("GET", "/v1/health/service/x?wait=2562047h47m16.854775807s")
    #expect(largest.status == 200)
    for index in ["99999999999999999999", "+5", "-1", "1e3", "0x10"] {
      let response = await self.agent.call("GET", "/v1/health/service/x?index=\(index)")
      #expect(response.status == 400, "index=\(index)")
      #expect(response.text == "Invalid index", "index=\(index)")
    }
  }

  @Test("gRPC check targets that look like addresses but are not are refused")
  func badGRPCTargets() async {
    for target in [
      "zz:zz:1", "1.2.3.04:1", "+127.0.0.1:1", "127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:-1",
      "127.0.0.1", "::1:50051", "[zz]:1", "host name:1", "1.2.3.4.5:1",
    ] {
      let response = await self.agent.call(
        "PUT",
        "/v1/agent/service/register",
        body: #"{"Name": "a", "Check": {"GRPC": "\#(target)", "Interval": "10s"}}"#
      )
      #expect(response.status == 400, "\(target)")
      #expect(response.text.hasPrefix("Invalid check: GRPC must be host:port"), "\(target)")
    }
    for target in ["127.0.0.1:1", "[::1]:1", "localhost:50051/greeter", "greeter.service:1"] {
      let response = await self.agent.call(
        "PUT",
        "/v1/agent/service/register",
        body: #"{"Name": "a", "Check": {"GRPC": "\#(target)", "Interval": "10s"}}"#
      )
      #expect(response.status == 200, "\(target): \(response.text)")
    }
  }

  @Test("A large bad body gets a short error; one past the limit a 413")
  func largeBodies() async {
    let filler = String(repeating: "x", count: 4_000_000)
    for body in [
      #"{"Name": "a", "Tags": "\#(filler)"}"#, #"{"Name": "a", "\#(filler)": 1}"#,
      #"{"Name": "a", "Port": "\#(filler)"}"#, filler, "[" + filler,
    ] {
      let response = await self.agent.call("PUT", "/v1/agent/service/register", body: body)
      #expect(response.status == 400)
      #expect(response.text.hasPrefix("Request decode failed: "))
      #expect(response.body.count < 400, "\(response.body.count) bytes")
    }
    let tooLarge = await self.agent.call(
      "PUT",
      "/v1/agent/service/register",
      body: String(repeating: " ", count: 4 * 1024 * 1024 + 1)
    )
    #expect(tooLarge.status == 413)
    #expect(tooLarge.text == "Request body too large")
    #expect(tooLarge.header("Connection") == "close")
  }

  @Test("IDs and names compare byte for byte: café in NFC and in NFD are two services")
  func unicodeForms() async throws {
    let nfc = "caf\u{E9}"
    let nfd = "cafe\u{301}"
    #expect(nfc == nfd, "Swift's String == is canonical equivalence")
    for (id, name) in [(nfc, nfc), (nfd, nfd)] {
      let response = await self.agent.call(
        "PUT",
        "/v1/agent/service/register",
        body: #"{"ID": "\#(id)", "Name": "\#(name)", "Port": 1}"#
      )
      #expect(response.status == 200)
    }
    #expect(self.agent.withState { $0.services.count } == 2)
    // Decoding into a Swift dictionary would merge the two keys again: look at the bytes.
    let services = await self.agent.call("GET", "/v1/agent/services").body
    for form in [nfc, nfd] {
      #expect(services.firstRange(of: Array("\"\(form)\":{".utf8)) != nil, "\(form.unicodeScalars)")
    }
    let catalog = await self.agent.call("GET", "/v1/catalog/services").body
    for form in [nfc, nfd] {
      #expect(catalog.firstRange(of: Array("\"\(form)\":[".utf8)) != nil, "\(form.unicodeScalars)")
    }
    let encoded = nfd.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)!
    let health = try JSONDecoder().decode(
      [ConsulServiceEntry].self,
      from: Data(await self.agent.call("GET", "/v1/health/service/\(encoded)").body)
    )
    #expect(health.map { Array($0.service.id.utf8) } == [Array(nfd.utf8)])
    let deregister = await self.agent.call("PUT", "/v1/agent/service/deregister/\(encoded)")
    #expect(deregister.status == 200)
    let left = self.agent.withState { state in state.services.keys.map { Array($0.text.utf8) } }
    #expect(left == [Array(nfc.utf8)])
  }

  @Test("An ID with a slash is one path parameter, as in Consul")
  func slashInID() async {
    let response = await self.agent.call(
      "PUT",
      "/v1/agent/service/register",
      body: #"{"ID": "a/b", "Name": "s", "Port": 1}"#
    )
    #expect(response.status == 200)
    #expect(await self.agent.call("GET", "/v1/agent/service/a/b").status == 200)
    #expect(await self.agent.call("PUT", "/v1/agent/service/deregister/a%2Fb").status == 200)
    #expect(self.agent.withState { $0.services.isEmpty })
  }
}
