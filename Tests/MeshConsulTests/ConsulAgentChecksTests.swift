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

@Suite("Embedded agent: check settings as Consul treats them")
struct ConsulAgentChecksTests {
  let now = ContinuousClock.now

  func grpc(
    _ target: String = "127.0.0.1:1",
    interval: String = "10s",
    timeout: String? = nil,
    deregisterAfter: String? = nil,
    id: String = "g1"
  ) -> ConsulServiceRegistration {
    var check = ConsulCheckDefinition.grpc(target, interval: .seconds(10))
    check.interval = interval
    check.timeout = timeout
    check.deregisterCriticalServiceAfter = deregisterAfter
    return ConsulServiceRegistration(id: id, name: "svc", port: 1, check: check)
  }

  @Test("Intervals below 1 s are raised to 1 s")
  func intervalFloor() throws {
    var state = AgentState.make()
    for interval in ["1ns", "1ms", "999ms"] {
      try state.register(self.grpc(interval: interval), replaceExistingChecks: true, now: self.now)
      #expect(state.grpcCheck("service:g1")?.interval == .seconds(1), "\(interval)")
      #expect(state.checks["service:g1"]?.health.interval == "1s", "\(interval)")
    }
    try state.register(self.grpc(interval: "90s"), replaceExistingChecks: true, now: self.now)
    #expect(state.grpcCheck("service:g1")?.interval == .seconds(90))
  }

  @Test("A non-positive timeout is Consul's default, 10 s")
  func timeoutDefault() throws {
    var state = AgentState.make()
    for (timeout, expected) in [
      (nil, Duration.seconds(10)), ("0s", .seconds(10)), ("-5s", .seconds(10)), ("3s", .seconds(3)),
    ] {
      try state.register(self.grpc(timeout: timeout), replaceExistingChecks: true, now: self.now)
      #expect(state.grpcCheck("service:g1")?.timeout == expected, "\(timeout ?? "nil")")
    }
  }

  @Test("DeregisterCriticalServiceAfter below 1 minute is raised to it; non-positive is off")
  func deregisterFloor() throws {
    var state = AgentState.make()
    for (after, expected) in [
      ("1ns", Duration?.some(.seconds(60))), ("30s", .seconds(60)), ("90s", .seconds(90)),
      ("0s", nil), ("-1m", nil),
    ] {
      try state.register(
        self.grpc(deregisterAfter: after),
        replaceExistingChecks: true,
        now: self.now
      )
      #expect(state.checks["service:g1"]?.deregisterCriticalAfter == expected, "\(after)")
    }
    // Raised, so a 1 s setting does not remove the service after 1 s of being critical.
    var ttl = ConsulCheckDefinition.ttl(.seconds(5))
    ttl.deregisterCriticalServiceAfter = "1s"
    try state.register(
      ConsulServiceRegistration(id: "t1", name: "ttl", check: ttl),
      replaceExistingChecks: true,
      now: self.now
    )
    #expect(state.tick(now: self.now.advanced(by: .seconds(10))).isEmpty)
    #expect(state.tick(now: self.now.advanced(by: .seconds(61))) == ["t1"])
  }

  @Test("Check output is cut to 4 KiB at a character boundary")
  func outputCut() throws {
    var state = AgentState.make()
    try state.register(
      ConsulServiceRegistration(id: "o1", name: "out", check: .ttl(.seconds(30))),
      replaceExistingChecks: true,
      now: self.now
    )
    for (piece, characters) in [("é", 2048), ("a", 4096), ("\u{1F600}", 1024), ("ab\u{E9}", 1024)] {
      let output = String(repeating: piece, count: 5000)
      try state.reportTTL(checkID: "service:o1", status: .passing, output: output, now: self.now)
      let stored = try #require(state.checks["service:o1"]?.health.output)
      #expect(stored.utf8.count <= 4096, "\(piece)")
      #expect(output.hasPrefix(stored), "\(piece)")
      #expect(stored.count == characters * piece.count, "\(piece)")
    }
    #expect(
      ConsulAgentCheckLimits.truncated("e\u{301}", maxBytes: 2) == "",
      "never half a character"
    )
  }

  @Test("A re-registered check with new settings starts over; with the same, keeps its result")
  func reregistration() throws {
    var state = AgentState.make()
    try state.register(self.grpc("127.0.0.1:1"), replaceExistingChecks: true, now: self.now)
    #expect(state.takeChange().probes == ["service:g1"])
    let first = try #require(state.grpcCheck("service:g1"))
    state.recordProbe(
      checkID: "service:g1",
      generation: first.generation,
      status: .passing,
      output: "gRPC check 127.0.0.1:1: success",
      now: self.now
    )
    #expect(state.checks["service:g1"]?.health.status == .passing)

    // The same settings: the result stays, no new probe.
    try state.register(self.grpc("127.0.0.1:1"), replaceExistingChecks: true, now: self.now)
    #expect(state.checks["service:g1"]?.health.status == .passing)
    #expect(state.takeChange().probes.isEmpty)

    // A new target: the old result does not linger; the probe restarts with the new settings.
    try state.register(self.grpc("127.0.0.1:2"), replaceExistingChecks: true, now: self.now)
    let check = try #require(state.checks["service:g1"])
    #expect(check.health.status == .critical)
    #expect(check.health.output == "")
    #expect(state.takeChange().probes == ["service:g1"])
    let second = try #require(state.grpcCheck("service:g1"))
    #expect(second.generation != first.generation)
    #expect(second.target.port == 2)
    // A probe of the old settings that finishes late records nothing.
    state.recordProbe(
      checkID: "service:g1",
      generation: first.generation,
      status: .passing,
      output: "late",
      now: self.now
    )
    #expect(state.checks["service:g1"]?.health.status == .critical)

    // A new interval restarts it too.
    try state.register(
      self.grpc("127.0.0.1:2", interval: "30s"),
      replaceExistingChecks: true,
      now: self.now
    )
    #expect(state.takeChange().probes == ["service:g1"])
  }

  @Test("Registration storms: names and timers of removed services are forgotten")
  func storms() throws {
    var state = AgentState.make()
    let count = 20_000
    for index in 0..<count {
      try state.register(
        ConsulServiceRegistration(
          id: "s\(index)",
          name: "name-\(index)",
          port: 1,
          check: .ttl(.seconds(30), status: .passing)
        ),
        replaceExistingChecks: true,
        now: self.now
      )
    }
    #expect(state.indexedServiceNames == count)
    #expect(state.queuedTimers == count)
    let catalogBefore = state.indexOfCatalog
    for index in 0..<count {
      try state.deregister(serviceID: ConsulAgentKey("s\(index)"))
    }
    #expect(state.services.isEmpty && state.checks.isEmpty)
    #expect(state.indexedServiceNames == 0, "names no longer registered keep no index entry")
    #expect(state.queuedTimers <= 64, "timers of removed checks are dropped")
    // A forgotten name's index follows the catalog, so it never goes backwards.
    #expect(state.index(ofService: "name-0") == state.indexOfCatalog)
    #expect(state.indexOfCatalog > catalogBefore)

    // Heartbeats move a TTL's deadline without growing the timer heap.
    try state.register(
      ConsulServiceRegistration(id: "hb", name: "hb", check: .ttl(.seconds(30))),
      replaceExistingChecks: true,
      now: self.now
    )
    for beat in 0..<10_000 {
      try state.reportTTL(
        checkID: "service:hb",
        status: .passing,
        output: "",
        now: self.now.advanced(by: .milliseconds(beat))
      )
    }
    #expect(state.queuedTimers <= 70)
    #expect(state.nextDeadline == self.now.advanced(by: .milliseconds(9_999) + .seconds(30)))
  }
}
