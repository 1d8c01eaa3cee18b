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
import MeshConsulAgent
import MeshDiscovery
import NIOHTTP1
import Testing

@Suite("Embedded agent over HTTP", .timeLimit(.minutes(2)))
struct ConsulAgentHTTPTests {
  @Test("The fixtures' register bodies are accepted as sent; health reads return them")
  func registerFixtureBodies() async throws {
    try await withAgent { _, client in
      for fixture in [
        "agent_service_register_grpc.json", "agent_service_register_ttl.json",
        "agent_service_register_checks_array.json",
      ] {
        let body = String(decoding: try Fixtures.data(fixture), as: UTF8.self)
        let response = try await raw(.PUT, client, "/v1/agent/service/register", body: body)
        #expect(response.status == 200, "\(fixture): \(response.body)")
        #expect(response.body.isEmpty)
      }
      let all = try await client.healthService(
        "greeter",
        query: ConsulHealthQuery(passingOnly: false)
      )
      #expect(all.value.map(\.service.id) == ["greeter-1", "greeter-2", "greeter-4"])
      #expect(all.index >= 1)
      let passing = try await client.healthService("greeter")
      #expect(passing.value.map(\.service.id) == ["greeter-2"], "gRPC checks start critical")
      let canary = try await client.healthService(
        "greeter",
        query: ConsulHealthQuery(passingOnly: false, tags: ["CANARY"])
      )
      #expect(canary.value.map(\.service.id) == ["greeter-2"])
      #expect(try await client.catalogServices().value["greeter"]?.contains("canary") == true)
      #expect(try await client.catalogService("greeter").value.count == 3)
    }
  }

  @Test("Bad requests get Consul's status codes and plain-text messages")
  func errors() async throws {
    try await withAgent { _, client in
      func expect(
        _ method: HTTPMethod,
        _ path: String,
        body: String? = nil,
        _ status: Int,
        _ message: String
      ) async throws {
        let response = try await raw(method, client, path, body: body)
        #expect(response.status == status, "\(method) \(path)")
        #expect(response.body == message, "\(method) \(path)")
        #expect(response.headers.first(name: "Content-Type")?.hasPrefix("text/plain") == true)
      }
      try await expect(
        .PUT,
        "/v1/agent/service/register",
        body: #"{"Name":"a","Bogus":1}"#,
        400,
        #"Request decode failed: json: unknown field "Bogus""#
      )
      try await expect(
        .PUT,
        "/v1/agent/service/register",
        body: #"{"Tags":[]}"#,
        400,
        "Missing service name"
      )
      let malformed = try await raw(.PUT, client, "/v1/agent/service/register", body: "{")
      #expect(malformed.status == 400)
      #expect(malformed.body.hasPrefix("Request decode failed: "))
      try await expect(
        .PUT,
        "/v1/agent/service/deregister/ghost",
        404,
        #"Unknown service ID "ghost". Ensure that the service ID is passed, not the service name."#
      )
      try await expect(
        .PUT,
        "/v1/agent/service/maintenance/ghost?enable=true",
        404,
        #"No service registered with ID "ghost""#
      )
      try await expect(
        .GET,
        "/v1/health/service/x?passing=maybe",
        400,
        "Invalid value for ?passing"
      )
      try await expect(.GET, "/v1/health/service/x?index=abc", 400, "Invalid index")
      try await expect(.GET, "/v1/health/service/x?index=1&wait=soon", 400, "Invalid wait time")
      try await expect(
        .GET,
        "/v1/health/service/x?stale&consistent",
        400,
        "Cannot specify ?stale with ?consistent, conflicting semantics."
      )
      try await expect(.GET, "/v1/health/service/x?dc=elsewhere", 500, "No path to datacenter")
      try await expect(.GET, "/v1/health/service/", 400, "Missing service name")
      try await expect(
        .GET,
        "/v1/nope",
        404,
        "Invalid URL path: not a recognized HTTP API endpoint\n"
      )
      try await expect(
        .PUT,
        "/v1/agent/check/update/ghost",
        body: #"{"Status":"passing"}"#,
        404,
        #"Unknown check ID "ghost". Ensure that the check ID is passed, not the check name."#
      )

      let wrongMethod = try await raw(.GET, client, "/v1/agent/service/register")
      #expect(wrongMethod.status == 405)
      #expect(wrongMethod.body == "method GET not allowed")
      #expect(wrongMethod.headers.first(name: "Allow") == "OPTIONS,PUT")

      // Through the typed client: the status and Consul's message, as its Go client words it.
      let failure: MeshConsulError?
      do {
        try await client.deregister(serviceID: "ghost")
        failure = nil
      } catch {
        failure = error as? MeshConsulError
      }
      #expect(failure?.code == .unexpectedStatus)
      #expect(failure?.status == 404)
      #expect(
        failure?.description.hasPrefix("Unexpected response code: 404 (Unknown service ID") == true
      )
    }
  }

  @Test("Read responses carry Consul's headers, spelled as on the wire")
  func headers() async throws {
    let captured = String(decoding: try Fixtures.data("headers.txt"), as: UTF8.self)
    let consulHeaderNames = Set(
      captured.split(separator: "\n").compactMap { line -> String? in
        guard line.hasPrefix("X-Consul-"), let colon = line.firstIndex(of: ":") else { return nil }
        let name = String(line[..<colon])
        return name == "X-Consul-Token" ? nil : name  // a request header
      }
    )
    #expect(consulHeaderNames.contains("X-Consul-Knownleader"))

    try await withAgent { _, client in
      let response = try await raw(.GET, client, "/v1/health/service/greeter?passing=1")
      #expect(response.status == 200)
      #expect(response.body == "[]")
      let names = Set(response.headers.map(\.name))
      for name in consulHeaderNames {
        #expect(names.contains(name), "\(name) is missing or spelled otherwise")
      }
      #expect(response.headers.first(name: "Content-Type") == "application/json")
      #expect(UInt64(response.headers.first(name: "X-Consul-Index") ?? "") ?? 0 >= 1)
    }
  }

  @Test("A blocking query returns when its service changes, not when another one does")
  func blockingQueryWakesOnChange() async throws {
    try await withAgent { agent, client in
      try await client.register(
        ConsulServiceRegistration(
          id: "s0",
          name: "svc",
          port: 1,
          check: .ttl(.seconds(60), status: .passing)
        )
      )
      let first = try await client.healthService("svc")
      try await withThrowingTaskGroup(of: ConsulResponse<[ConsulServiceEntry]>.self) { group in
        group.addTask {
          try await client.healthService("svc", index: first.index, wait: .seconds(60))
        }
        await agent.waitForBlockedQueries(1)
        // A change to another service leaves it parked...
        try await client.register(ConsulServiceRegistration(id: "o1", name: "other", port: 1))
        #expect(agent.withState { $0.index(ofService: "svc") } == first.index)
        // ...a change to its own service wakes it.
        try await client.register(
          ConsulServiceRegistration(
            id: "s1",
            name: "svc",
            port: 1,
            check: .ttl(.seconds(60), status: .passing)
          )
        )
        let answer = try #require(try await group.next())
        #expect(answer.index > first.index)
        #expect(answer.value.map(\.service.id) == ["s0", "s1"])
      }
    }
  }

  @Test("A query on a service with no instances follows the services table, as in Consul")
  func missingServiceFollowsCatalog() async throws {
    try await withAgent { agent, client in
      let first = try await client.healthService("ghost")
      #expect(first.value.isEmpty)
      try await withThrowingTaskGroup(of: ConsulResponse<[ConsulServiceEntry]>.self) { group in
        group.addTask {
          try await client.healthService("ghost", index: first.index, wait: .seconds(60))
        }
        await agent.waitForBlockedQueries(1)
        try await client.register(ConsulServiceRegistration(id: "o1", name: "other", port: 1))
        let answer = try #require(try await group.next())
        #expect(answer.index > first.index)
        #expect(answer.value.isEmpty)
      }
    }
  }

  @Test("A blocking query with nothing to report returns at its wait with the same index")
  func blockingQueryTimesOut() async throws {
    try await withAgent { _, client in
      let first = try await client.healthService("svc")
      let second = try await client.healthService(
        "svc",
        index: first.index,
        wait: .milliseconds(50)
      )
      #expect(second.index == first.index)
      #expect(second.value.isEmpty)
    }
  }

  @Test("The watch follows TTL check changes, maintenance and deregistration")
  func watchAgainstAgent() async throws {
    try await withAgent { _, client in
      for id in ["w1", "w2"] {
        try await client.register(
          ConsulServiceRegistration(
            id: id,
            name: "worker",
            address: "127.0.0.1",
            port: id == "w1" ? 7001 : 7002,
            meta: ["zone": "z-\(id)"],
            check: .ttl(.seconds(300), status: .passing)
          )
        )
      }
      let discovery = ConsulDiscovery(
        client: client,
        configuration: .init(refillInterval: .milliseconds(20))
      )
      var updates = discovery.watch("worker").makeAsyncIterator()
      #expect(try await updates.next()?.endpoints.map(\.id) == ["w1", "w2"])

      try await client.updateTTL(checkID: "service:w1", status: .critical, output: "disk full")
      let afterFailure = try #require(try await updates.next())
      #expect(afterFailure.endpoints.map(\.id) == ["w2"])
      #expect(afterFailure.endpoints.first?.port == 7002)
      #expect(afterFailure.endpoints.first?.zone == "z-w2")

      try await client.setMaintenance(serviceID: "w2", enabled: true, reason: "deploy")
      #expect(try await updates.next()?.endpoints.isEmpty == true)

      try await client.updateTTL(checkID: "service:w1", status: .passing)
      try await client.setMaintenance(serviceID: "w2", enabled: false)
      var set = try #require(try await updates.next())
      if set.endpoints.count == 1 { set = try #require(try await updates.next()) }
      #expect(set.endpoints.map(\.id) == ["w1", "w2"])

      try await client.deregister(serviceID: "w1")
      #expect(try await updates.next()?.endpoints.map(\.id) == ["w2"])
    }
  }

  @Test("One watch follows the agent through a restart (its index goes backwards)")
  func agentRestart() async throws {
    func passing(_ id: String) -> ConsulServiceRegistration {
      ConsulServiceRegistration(
        id: id,
        name: "svc",
        port: 1,
        check: .ttl(.seconds(300), status: .passing)
      )
    }
    let first = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: 0))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await first.run() }
      let port = try await first.listeningPort
      let client = try ConsulClient(
        ConsulClientConfiguration(address: URL(string: "http://127.0.0.1:\(port)")!)
      )
      for id in ["r1", "r2", "r3"] {
        try await client.register(passing(id))
      }
      let discovery = ConsulDiscovery(
        client: client,
        // A short wait: after a restart, Consul (and this agent) hold a query whose index is
        // ahead of theirs until the wait ends, then answer with their lower index.
        configuration: .init(wait: .milliseconds(200), refillInterval: .zero),
        clock: RecordingClock(),
        random: { 0.5 }
      )
      var updates = discovery.watch("svc").makeAsyncIterator()
      #expect(try await updates.next()?.endpoints.map(\.id) == ["r1", "r2", "r3"])
      let indexBefore = first.withState { $0.index(ofService: "svc") }

      first.beginGracefulShutdown()
      try await group.waitForAll()

      // A new agent on the same port: empty, with a lower index.
      let second = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: port))
      group.addTask { try await second.run() }
      _ = try await second.listeningPort
      try await client.register(passing("r9"))
      #expect(second.withState { $0.index(ofService: "svc") } < indexBefore)

      #expect(try await updates.next()?.endpoints.map(\.id) == ["r9"])
      try await client.register(passing("r8"))
      #expect(try await updates.next()?.endpoints.map(\.id) == ["r8", "r9"])
      second.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("Self-registration: TTL heartbeats, maintenance, deregistration on graceful shutdown")
  func selfRegistration() async throws {
    try await withAgent { _, client in
      let registration = MeshConsulRegistration(
        client: client,
        registration: ConsulServiceRegistration(
          id: "api-1",
          name: "api",
          address: "127.0.0.1",
          port: 9000,
          check: .ttl(.seconds(30))  // starts critical; the first heartbeat makes it pass
        )
      )
      #expect(registration.ttlCheckIDs == ["service:api-1"])
      #expect(registration.heartbeatInterval == .seconds(10))
      var updates = ConsulDiscovery(
        client: client,
        configuration: .init(refillInterval: .milliseconds(20))
      )
      .watch("api").makeAsyncIterator()

      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await registration.run() }
        var set = try #require(try await updates.next())
        if set.endpoints.isEmpty { set = try #require(try await updates.next()) }
        #expect(set.endpoints.map(\.id) == ["api-1"])

        try await registration.setMaintenance(true, reason: "draining")
        #expect(try await updates.next()?.endpoints.isEmpty == true)
        try await registration.setMaintenance(false)
        #expect(try await updates.next()?.endpoints.map(\.id) == ["api-1"])

        registration.beginGracefulShutdown()
        try await group.waitForAll()
      }
      #expect(try await client.catalogService("api").value.isEmpty)
    }
  }
}
