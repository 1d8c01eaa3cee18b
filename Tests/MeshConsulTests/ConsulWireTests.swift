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
import MeshDiscovery
import Testing

/// The fixtures from real Consul 1.16–1.17 (vendored from ../shared/consul/fixtures).
enum Fixtures {
  static let directory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().appendingPathComponent("Fixtures")

  static func data(_ name: String) throws -> Data {
    try Data(contentsOf: self.directory.appendingPathComponent(name))
  }

  static func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
    try JSONDecoder().decode(T.self, from: self.data(name))
  }

  /// A JSON document as plain values, with null-valued object keys dropped (Go sends some keys
  /// as null where a fixture leaves them out).
  static func plain(_ data: Data) throws -> NSObject {
    func strip(_ value: Any) -> Any {
      if let object = value as? [String: Any] {
        return object.filter { !($0.value is NSNull) }.mapValues(strip)
      }
      if let array = value as? [Any] { return array.map(strip) }
      return value
    }
    return strip(try JSONSerialization.jsonObject(with: data)) as! NSObject
  }
}

@Suite("Consul wire format")
struct ConsulWireTests {
  @Test("Health results decode: three instances, passing / warning / critical")
  func healthService() throws {
    let entries = try Fixtures.decode([ConsulServiceEntry].self, "health_service_greeter.json")
    #expect(entries.count == 3)
    #expect(entries.map(\.aggregatedStatus) == [.passing, .warning, .critical])
    let first = entries[0]
    #expect(first.node.node == "node-a")
    #expect(first.node.meta?["consul-version"] == "1.17.0")
    #expect(first.service.id == "greeter-1")
    #expect(first.service.port == 50051)
    #expect(first.service.weights == ConsulWeights(passing: 10, warning: 1))
    #expect(
      first.service.taggedAddresses?["wan"]
        == ConsulServiceAddress(address: "203.0.113.10", port: 443)
    )
    #expect(first.service.meta?["zone"] == "us-east-1a")
    #expect(first.checks.map(\.checkID) == ["serfHealth", "service:greeter-1"])
    #expect(first.checks[1].type == "grpc")
    #expect(first.checks[1].interval == "10s")

    let passing = try Fixtures.decode(
      [ConsulServiceEntry].self,
      "health_service_greeter_passing.json"
    )
    #expect(passing.allSatisfy { $0.aggregatedStatus == .passing })
    #expect(try Fixtures.decode([ConsulServiceEntry].self, "health_service_empty.json").isEmpty)
  }

  @Test("Endpoints: service or node address, tagged addresses, weights, zones, no critical")
  func endpoints() throws {
    let entries = try Fixtures.decode([ConsulServiceEntry].self, "health_service_greeter.json")
    let set = ConsulEndpoints.endpointSet(service: "greeter", entries: entries)
    #expect(
      set.endpoints.map(\.id)
        == entries.filter { $0.aggregatedStatus != .critical }.map(\.service.id)
    )
    let first = try #require(set.endpoints.first)
    #expect(first.host == "10.0.1.11")
    #expect(first.port == 50051)
    #expect(first.health == .passing)
    #expect(first.weight == 10)
    #expect(first.zone == "us-east-1a")
    #expect(first.node == "node-a")
    #expect(first.datacenter == "dc1")
    #expect(set.endpoints.dropFirst().allSatisfy { $0.health == .warning })

    let wan = ConsulEndpoints.endpointSet(
      service: "greeter",
      entries: entries,
      taggedAddress: "wan"
    )
    #expect(wan.endpoints.first?.host == "203.0.113.10")
    #expect(wan.endpoints.first?.port == 443)

    // An instance without its own address uses its node's.
    var bare = entries[0]
    bare.service.address = ""
    bare.node.address = "10.9.9.9"
    #expect(
      ConsulEndpoints.endpointSet(service: "greeter", entries: [bare]).endpoints.first?.host
        == "10.9.9.9"
    )
  }

  @Test("The docs sample decodes (Enterprise fields, lowercase tagged-address keys)")
  func docsSample() throws {
    let entries = try Fixtures.decode([ConsulServiceEntry].self, "docs_sample_health_service.json")
    let first = try #require(entries.first)
    #expect(first.service.namespace == "default")
    #expect(
      first.service.taggedAddresses?["wan"] == ConsulServiceAddress(address: "198.18.1.2", port: 80)
    )
    #expect(first.checks.count == 2)
  }

  @Test("Catalog results decode")
  func catalog() throws {
    let services = try Fixtures.decode([String: [String]].self, "catalog_services.json")
    #expect(services["consul"] == [])
    #expect(services["greeter"] == ["grpc", "v1", "canary"])
    let nodes = try Fixtures.decode([ConsulCatalogServiceNode].self, "catalog_service_greeter.json")
    #expect(nodes.first?.serviceID == "greeter-1")
    #expect(nodes.first?.servicePort == 50051)
    #expect(nodes.first?.serviceLocality == .null)
  }

  @Test(
    "Register bodies decode and encode to the fixtures' shapes",
    arguments: [
      "agent_service_register_grpc.json", "agent_service_register_ttl.json",
      "agent_service_register_checks_array.json",
    ]
  )
  func registration(_ fixture: String) throws {
    let registration = try Fixtures.decode(ConsulServiceRegistration.self, fixture)
    let encoded = try JSONEncoder().encode(registration)
    #expect(try Fixtures.plain(encoded) == Fixtures.plain(Fixtures.data(fixture)))
    // The Go client's convention: Check and Checks are always sent, null when unset.
    let object = try JSONSerialization.jsonObject(with: encoded) as! [String: Any]
    #expect(object.keys.contains("Check") && object.keys.contains("Checks"))
  }

  @Test("A registration built in code matches the gRPC fixture")
  func registrationFromCode() throws {
    let registration = ConsulServiceRegistration(
      id: "greeter-1",
      name: "greeter",
      tags: ["grpc", "v1"],
      address: "10.0.1.11",
      port: 50051,
      taggedAddresses: ["wan": ConsulServiceAddress(address: "203.0.113.10", port: 443)],
      meta: ["version": "1.4.2", "zone": "us-east-1a"],
      weights: ConsulWeights(passing: 10, warning: 1),
      check: .grpc(
        "10.0.1.11:50051/greeter.v1.Greeter",
        interval: .seconds(10),
        timeout: .seconds(5),
        useTLS: true,
        tlsServerName: "greeter.internal",
        tlsSkipVerify: false,
        deregisterCriticalServiceAfter: .seconds(90 * 60),
        name: "Service 'greeter' check"
      )
    )
    // Durations compare by value: the fixture writes "90m" where Go would write "1h30m0s".
    func normalised(_ registration: ConsulServiceRegistration) -> ConsulServiceRegistration {
      var registration = registration
      let after = registration.check?.deregisterCriticalServiceAfter
      registration.check?.deregisterCriticalServiceAfter = after.flatMap(ConsulDuration.parse)
        .map(ConsulDuration.format)
      return registration
    }
    let fixture = try Fixtures.decode(
      ConsulServiceRegistration.self,
      "agent_service_register_grpc.json"
    )
    #expect(normalised(registration) == normalised(fixture))
    #expect(registration.check?.deregisterCriticalServiceAfter == "1h30m0s")
  }

  @Test("The TTL update body, Connect documents and the test PKI decode")
  func otherDocuments() throws {
    let update = try Fixtures.decode(ConsulCheckUpdate.self, "agent_check_update_request.json")
    #expect(update == ConsulCheckUpdate(status: .warning, output: "queue depth above threshold"))
    #expect(
      try Fixtures.plain(JSONEncoder().encode(update))
        == Fixtures.plain(Fixtures.data("agent_check_update_request.json"))
    )

    let roots = try Fixtures.decode(ConsulCARoots.self, "agent_connect_ca_roots.json")
    #expect(roots.roots.first?.id == roots.activeRootID)
    #expect(roots.roots.first?.intermediateCerts == nil)
    #expect(roots.roots.first?.rootCert.hasPrefix("-----BEGIN CERTIFICATE-----") == true)
    for leaf in ["agent_connect_ca_leaf_greeter.json", "agent_connect_ca_leaf_frontend.json"] {
      let issued = try Fixtures.decode(ConsulIssuedCertificate.self, leaf)
      #expect(issued.serviceURI.hasPrefix("spiffe://\(roots.trustDomain)/"))
    }
    let request = try Fixtures.decode(
      ConsulAuthorizeRequest.self,
      "agent_connect_authorize_request.json"
    )
    #expect(!request.target.isEmpty)
    #expect(
      try Fixtures.decode(ConsulAuthorizeResponse.self, "agent_connect_authorize_response.json")
        .authorized
    )
    #expect(
      try !Fixtures.decode(
        ConsulAuthorizeResponse.self,
        "agent_connect_authorize_response_denied.json"
      ).authorized
    )
    let pki =
      try JSONSerialization.jsonObject(with: Fixtures.data("connect_test_pki.json"))
      as? [String: Any]
    #expect(pki?["TrustDomain"] as? String == roots.trustDomain)
  }

  @Test("Go durations parse and format as Go writes them")
  func durations() {
    #expect(ConsulDuration.parse("10s") == .seconds(10))
    #expect(ConsulDuration.parse("1m30s") == .seconds(90))
    #expect(ConsulDuration.parse("90m") == .seconds(5400))
    #expect(ConsulDuration.parse("300000ms") == .seconds(300))
    #expect(ConsulDuration.parse("1.5h") == .seconds(5400))
    #expect(ConsulDuration.parse("250us") == .microseconds(250))
    #expect(ConsulDuration.parse("0") == .zero)
    for bad in ["", "10", "s", "10x", "1m30", "--1s"] {
      #expect(ConsulDuration.parse(bad) == nil, "\(bad)")
    }
    #expect(ConsulDuration.format(.seconds(10)) == "10s")
    #expect(ConsulDuration.format(.seconds(90)) == "1m30s")
    #expect(ConsulDuration.format(.seconds(5400)) == "1h30m0s")
    #expect(ConsulDuration.format(.milliseconds(1500)) == "1.5s")
    #expect(ConsulDuration.format(.milliseconds(300)) == "300ms")
    #expect(ConsulDuration.format(.zero) == "")
  }

  @Test("The vendored fixtures are those of ../shared/consul/fixtures (when it is there)")
  func vendoredFixturesMatchShared() throws {
    let shared = Fixtures.directory
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("shared/consul/fixtures")
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: shared.path) else {
      return  // a checkout without ../shared; the vendored copy is what the tests use
    }
    for name in names {
      let ours = try? Fixtures.data(name)
      #expect(
        ours == (try Data(contentsOf: shared.appendingPathComponent(name))),
        "\(name) drifted"
      )
    }
  }
}
