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
import Testing

typealias AgentState = ConsulAgentState<ContinuousClock.Instant>

extension AgentState {
  static func make() -> Self {
    Self(
      node: ConsulNode(id: "node-id", node: "mesh-agent", address: "127.0.0.1", datacenter: "dc1")
    )
  }
}

@Suite("Embedded agent state")
struct ConsulAgentStateTests {
  let now = ContinuousClock.now

  func error(_ body: () throws(ConsulAgentError) -> Void) -> ConsulAgentError? {
    do {
      try body()
      return nil
    } catch {
      return error
    }
  }

  @Test("Registration validates as Consul does, with Consul's messages")
  func registrationValidation() {
    var state = AgentState.make()
    func register(_ registration: ConsulServiceRegistration) -> ConsulAgentError? {
      self.error { () throws(ConsulAgentError) in
        try state.register(registration, replaceExistingChecks: true, now: self.now)
      }
    }
    #expect(
      register(ConsulServiceRegistration(name: "")) == ConsulAgentError(400, "Missing service name")
    )
    #expect(
      register(ConsulServiceRegistration(name: "a", address: "0.0.0.0"))
        == ConsulAgentError(400, "Invalid service address")
    )
    #expect(
      register(ConsulServiceRegistration(name: "a", weights: ConsulWeights(passing: 0)))?.status
        == 400
    )
    #expect(register(ConsulServiceRegistration(name: "a", meta: ["consul-x": "1"]))?.status == 400)
    #expect(register(ConsulServiceRegistration(name: "a", meta: ["bad key": "1"]))?.status == 400)

    var both = ConsulCheckDefinition.ttl(.seconds(10))
    both.interval = "10s"
    #expect(
      register(ConsulServiceRegistration(name: "a", check: both))
        == ConsulAgentError(400, "Invalid check: Interval and TTL cannot both be specified")
    )
    var noInterval = ConsulCheckDefinition.grpc("127.0.0.1:1", interval: .seconds(1))
    noInterval.interval = nil
    #expect(
      register(ConsulServiceRegistration(name: "a", check: noInterval))?.message.hasPrefix(
        "Invalid check: Interval must be > 0"
      ) == true
    )
    #expect(
      register(ConsulServiceRegistration(name: "a", check: .grpc("nohost", interval: .seconds(1))))?
        .status == 400
    )
    var badDuration = ConsulCheckDefinition.ttl(.seconds(1))
    badDuration.ttl = "soon"
    #expect(register(ConsulServiceRegistration(name: "a", check: badDuration))?.status == 400)
    #expect(state.services.isEmpty, "nothing was registered by a refused request")
  }

  @Test("Check IDs, names and initial statuses follow Consul's defaults")
  func checkDefaults() throws {
    var state = AgentState.make()
    let registration = try Fixtures.decode(
      ConsulServiceRegistration.self,
      "agent_service_register_checks_array.json"
    )
    try state.register(registration, replaceExistingChecks: true, now: self.now)
    let checks = state.checks.values.map(\.health).sorted { $0.checkID < $1.checkID }
    #expect(checks.map(\.checkID) == ["service:greeter-4:1", "service:greeter-4:2"])
    #expect(checks[0].name == "Service 'greeter' check")
    #expect(checks[0].type == "grpc")
    #expect(checks[0].interval == "10s")
    #expect(checks[1].name == "greeter-4 heartbeat")
    #expect(checks[1].type == "ttl")
    #expect(checks.allSatisfy { $0.status == .critical }, "checks start critical")

    let ttl = try Fixtures.decode(ConsulServiceRegistration.self, "agent_service_register_ttl.json")
    try state.register(ttl, replaceExistingChecks: true, now: self.now)
    #expect(state.checks["greeter-2-ttl"]?.health.status == .passing)
    // The agent adds lan/wan tagged addresses for an IP literal.
    #expect(state.services["greeter-2"]?.taggedAddresses?["lan_ipv4"]?.port == 50051)
  }

  @Test(
    "Health queries: passing drops warning and critical instances; tags match all, ignoring case"
  )
  func healthQueries() throws {
    var state = AgentState.make()
    for (id, tags) in [("a", ["grpc", "Canary"]), ("b", ["grpc"]), ("c", ["grpc"])] {
      try state.register(
        ConsulServiceRegistration(
          id: id,
          name: "svc",
          tags: tags,
          port: 1,
          check: .ttl(.seconds(30), status: .passing)
        ),
        replaceExistingChecks: true,
        now: self.now
      )
    }
    try state.reportTTL(checkID: "service:b", status: .warning, output: "slow", now: self.now)
    try state.reportTTL(checkID: "service:c", status: .critical, output: "down", now: self.now)

    #expect(
      state.healthService("svc", passingOnly: false, tags: []).map(\.service.id) == ["a", "b", "c"]
    )
    #expect(state.healthService("svc", passingOnly: true, tags: []).map(\.service.id) == ["a"])
    #expect(
      state.healthService("svc", passingOnly: false, tags: ["canary", "GRPC"]).map(\.service.id)
        == ["a"]
    )
    #expect(state.healthService("other", passingOnly: false, tags: []).isEmpty)
    let entry = try #require(state.healthService("svc", passingOnly: false, tags: []).first)
    #expect(entry.checks.first?.checkID == "serfHealth")
    #expect(state.catalogServices == ["consul": [], "svc": ["grpc", "Canary"]])
  }

  @Test("Indexes: every change moves the index of the services it touched, never 0")
  func indexes() throws {
    var state = AgentState.make()
    let unknown = state.index(ofService: "a")
    #expect(unknown >= 1)
    try state.register(
      ConsulServiceRegistration(id: "a1", name: "a", check: .ttl(.seconds(30))),
      replaceExistingChecks: true,
      now: self.now
    )
    let afterA = state.index(ofService: "a")
    #expect(afterA > unknown)
    try state.register(
      ConsulServiceRegistration(id: "b1", name: "b"),
      replaceExistingChecks: true,
      now: self.now
    )
    #expect(state.index(ofService: "a") == afterA, "b's change does not wake a's watchers")

    try state.reportTTL(checkID: "service:a1", status: .passing, output: "ok", now: self.now)
    let afterPass = state.index(ofService: "a")
    #expect(afterPass > afterA)
    try state.reportTTL(checkID: "service:a1", status: .passing, output: "ok", now: self.now)
    #expect(
      state.index(ofService: "a") == afterPass,
      "a report that changes nothing is not a change"
    )

    try state.deregister(serviceID: "a1")
    #expect(state.index(ofService: "a") > afterPass, "a deletion moves the index too")
  }

  @Test("TTL checks expire, and long-critical services are removed")
  func ttlExpiryAndReaping() throws {
    var state = AgentState.make()
    try state.register(
      ConsulServiceRegistration(
        id: "w1",
        name: "worker",
        check: .ttl(.seconds(15), status: .passing, deregisterCriticalServiceAfter: .seconds(60))
      ),
      replaceExistingChecks: true,
      now: self.now
    )
    #expect(state.nextDeadline == self.now.advanced(by: .seconds(15)))
    try state.reportTTL(
      checkID: "service:w1",
      status: .passing,
      output: "beat",
      now: self.now.advanced(by: .seconds(10))
    )
    #expect(state.tick(now: self.now.advanced(by: .seconds(20))).isEmpty)
    #expect(state.checks["service:w1"]?.health.status == .passing, "the heartbeat reset the TTL")

    #expect(state.tick(now: self.now.advanced(by: .seconds(26))).isEmpty)
    let expired = try #require(state.checks["service:w1"]?.health)
    #expect(expired.status == .critical)
    #expect(expired.output.hasPrefix("TTL expired (last output before timeout follows): beat"))

    #expect(state.tick(now: self.now.advanced(by: .seconds(80))).isEmpty)
    #expect(state.tick(now: self.now.advanced(by: .seconds(87))) == ["w1"])
    #expect(state.services.isEmpty && state.checks.isEmpty)
  }

  @Test("Maintenance adds a critical check and removes it; unknown IDs are 404s")
  func maintenance() throws {
    var state = AgentState.make()
    try state.register(
      ConsulServiceRegistration(id: "m1", name: "svc", check: .ttl(.seconds(30), status: .passing)),
      replaceExistingChecks: true,
      now: self.now
    )
    try state.setMaintenance(serviceID: "m1", enabled: true, reason: "deploying")
    let check = try #require(state.checks["_service_maintenance:m1"]?.health)
    #expect(check.status == .critical)
    #expect(check.name == "Service Maintenance Mode")
    #expect(check.notes == "deploying")
    #expect(state.healthService("svc", passingOnly: true, tags: []).isEmpty)
    try state.setMaintenance(serviceID: "m1", enabled: false, reason: nil)
    #expect(state.healthService("svc", passingOnly: true, tags: []).count == 1)

    #expect(
      self.error { () throws(ConsulAgentError) in
        try state.setMaintenance(serviceID: "nope", enabled: true, reason: nil)
      }
        == ConsulAgentError(404, "No service registered with ID \"nope\"")
    )
    #expect(
      self.error { () throws(ConsulAgentError) in try state.deregister(serviceID: "nope") }?.message
        == "Unknown service ID \"nope\". Ensure that the service ID is passed, not the service name."
    )
    #expect(
      self.error { () throws(ConsulAgentError) in
        try state.reportTTL(checkID: "nope", status: .passing, output: "", now: self.now)
      }?.status == 404
    )
  }
}
