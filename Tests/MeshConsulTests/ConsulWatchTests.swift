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

/// A health result with one passing instance per ID.
func healthBody(_ ids: [String]) -> String {
  let entries = ids.map { id in
    ConsulServiceEntry(
      node: ConsulNode(id: "n", node: "node", address: "10.0.0.1", datacenter: "dc1"),
      service: ConsulNodeService(id: id, service: "svc", address: "10.0.0.1", port: 80),
      checks: []
    )
  }
  return String(decoding: try! JSONEncoder().encode(entries), as: UTF8.self)
}

@Suite("Consul watch loop under faults", .timeLimit(.minutes(2)))
struct ConsulWatchTests {
  @Test("500, 429, garbage, a hung request and an agent restart: the last good set is kept")
  func faults() async throws {
    let consul = ScriptedConsul([
      .respond(status: 200, index: 5, body: healthBody(["a"])),
      .respond(status: 500, index: nil, body: "No cluster leader"),
      .respond(status: 429, index: nil, body: ""),
      .respond(status: 200, index: 6, body: "{\"not\": \"a list\""),
      .hang,
      // The agent restarted: its index went backwards.
      .respond(status: 200, index: 3, body: healthBody(["a", "b"])),
      .respond(status: 200, index: 0, body: healthBody(["b"])),
      .respond(status: 200, index: 7, body: healthBody(["b"])),
      .respond(status: 200, index: 8, body: healthBody(["c"])),
    ])
    let clock = RecordingClock()
    try await consul.run { port in
      let client = try ConsulClient(
        ConsulClientConfiguration(
          address: URL(string: "http://127.0.0.1:\(port)")!,
          // Generous: each scripted step is consumed by the request that reached the server, so a
          // client-side timeout on a loaded machine would shift the script. Only the hung step
          // waits for it.
          requestTimeout: .seconds(2)
        )
      )
      let discovery = ConsulDiscovery(
        client: client,
        configuration: .init(wait: .milliseconds(100), burst: 100, refillInterval: .zero),
        clock: clock,
        random: { 0.5 }  // no jitter: backoffs are exactly 1, 2, 4, 8 s
      )
      var updates = discovery.watch("svc").makeAsyncIterator()
      #expect(try await updates.next()?.endpoints.map(\.id) == ["a"])
      #expect(try await updates.next()?.endpoints.map(\.id) == ["a", "b"])
      #expect(try await updates.next()?.endpoints.map(\.id) == ["b"])
      #expect(
        try await updates.next()?.endpoints.map(\.id) == ["c"],
        "index 7's unchanged set was skipped"
      )
    }

    // Backoff after each of the four failures, doubling; reset by the success that followed.
    #expect(clock.sleeps == [.seconds(1), .seconds(2), .seconds(4), .seconds(8)])

    let indexes = consul.requested.map { uri in
      URLComponents(string: uri)?.queryItems?.first { $0.name == "index" }?.value
    }
    #expect(
      indexes == [nil, "5", "5", "5", "5", "5", nil, "1", "7"],
      "blocks on the last index; a backwards index restarts with a non-blocking read; 0 becomes 1"
    )
    #expect(consul.requested.allSatisfy { $0.contains("passing=1") })
    // Blocking requests carry the configured wait less at most 1/16 of jitter, in milliseconds.
    let waits = consul.requested.compactMap { uri in
      URLComponents(string: uri)?.queryItems?.first { $0.name == "wait" }?.value
    }
    #expect(waits.allSatisfy { $0 == "96ms" }, "\(waits)")
    #expect(
      consul.requested.dropFirst().allSatisfy { !$0.contains("index=") || $0.contains("wait=") }
    )
  }

  @Test("A query Consul refuses (403 ACL, 400) ends the watch with Consul's words, not a retry")
  func refusedQueryEndsTheWatch() async throws {
    for (status, body) in [(403, "ACL not found"), (400, "Invalid wait time")] {
      let consul = ScriptedConsul([
        .respond(status: 200, index: 5, body: healthBody(["a"])),
        .respond(status: status, index: nil, body: body),
      ])
      let clock = RecordingClock()
      try await consul.run { port in
        let client = try ConsulClient(
          ConsulClientConfiguration(address: URL(string: "http://127.0.0.1:\(port)")!)
        )
        let discovery = ConsulDiscovery(
          client: client,
          configuration: .init(wait: .milliseconds(100), burst: 100, refillInterval: .zero),
          clock: clock
        )
        var updates = discovery.watch("svc").makeAsyncIterator()
        #expect(try await updates.next()?.endpoints.map(\.id) == ["a"])
        let error = await #expect(throws: MeshConsulError.self) { try await updates.next() }
        #expect(error?.status == status)
        #expect(error?.description.contains(body) == true)
      }
      #expect(clock.sleeps.isEmpty, "a refused query is not retried with backoff")
      #expect(consul.requested.count == 2)
    }
  }

  @Test("Cancelling the consumer is reported as cancellation, not as the end of the watch")
  func cancellationIsCancellation() async throws {
    let consul = ScriptedConsul([.respond(status: 200, index: 5, body: healthBody(["a"])), .hang])
    try await consul.run { port in
      let client = try ConsulClient(
        ConsulClientConfiguration(address: URL(string: "http://127.0.0.1:\(port)")!)
      )
      let discovery = ConsulDiscovery(client: client, configuration: .init(wait: .seconds(60)))
      let outcome = await withTaskGroup(of: String.self) { group in
        group.addTask {
          var updates = discovery.watch("svc").makeAsyncIterator()
          _ = try? await updates.next()
          do {
            return try await updates.next() == nil ? "ended" : "updated"
          } catch is CancellationError {
            return "cancelled"
          } catch {
            return "\(error)"
          }
        }
        await consul.waitForRequests(2)
        group.cancelAll()
        return await group.next() ?? "none"
      }
      #expect(outcome == "cancelled")
    }
  }

  @Test("Query options and the ACL token reach Consul as its Go client sends them")
  func queryOptions() async throws {
    let consul = ScriptedConsul([.respond(status: 200, index: 4, body: healthBody(["a"]))])
    try await consul.run { port in
      let client = try ConsulClient(
        ConsulClientConfiguration(
          address: URL(string: "http://127.0.0.1:\(port)")!,
          token: "3f9c2a4e-secret",
          datacenter: "dc2"
        )
      )
      _ = try await client.healthService(
        "svc",
        query: ConsulHealthQuery(
          passingOnly: true,
          tags: ["grpc", "v1"],
          near: "_agent",
          filter: "Service.Meta.version == \"1.4+\"",
          consistency: .stale
        )
      )
    }
    let uri = try #require(consul.requested.first)
    let items = try #require(URLComponents(string: uri)?.queryItems)
    #expect(items.filter { $0.name == "tag" }.map(\.value) == ["grpc", "v1"])
    #expect(items.contains(URLQueryItem(name: "passing", value: "1")))
    #expect(items.contains(URLQueryItem(name: "near", value: "_agent")))
    #expect(items.contains(URLQueryItem(name: "stale", value: "")))
    #expect(items.contains(URLQueryItem(name: "dc", value: "dc2")))
    #expect(items.first { $0.name == "filter" }?.value == "Service.Meta.version == \"1.4+\"")
    #expect(consul.requestTokens == ["3f9c2a4e-secret"])
  }

  @Test("Backoff grows to its cap, with jitter inside ±20 %")
  func backoffCap() {
    var state = ConsulWatchState<RecordingClock.Instant>(
      configuration: .init(
        burst: 1,
        refillInterval: .seconds(1),
        initialBackoff: .seconds(1),
        maximumBackoff: .seconds(60),
        jitter: 0.2
      ),
      now: RecordingClock.Instant(offset: .zero)
    )
    let delays = (0..<10).map { _ in state.failed(random: 0.5) }
    #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60].map { Duration.seconds($0) })
    #expect(state.failed(random: 0) == .seconds(48))
    #expect(state.failed(random: 1) == .seconds(72))
    state.succeeded(responseIndex: 9)
    #expect(state.failures == 0)
    #expect(state.failed(random: 0.5) == .seconds(1))
  }

  @Test("The rate limit lets a burst through, then one request per refill interval")
  func rateLimit() {
    let start = RecordingClock.Instant(offset: .zero)
    var state = ConsulWatchState<RecordingClock.Instant>(
      configuration: .init(
        burst: 2,
        refillInterval: .seconds(15),
        initialBackoff: .seconds(1),
        maximumBackoff: .seconds(60),
        jitter: 0.2
      ),
      now: start
    )
    #expect(state.takeToken(now: start) == nil)
    #expect(state.takeToken(now: start) == nil)
    #expect(state.takeToken(now: start) == .seconds(15))
    #expect(state.takeToken(now: start.advanced(by: .seconds(5))) == .seconds(10))
    #expect(state.takeToken(now: start.advanced(by: .seconds(15))) == nil)
    #expect(state.takeToken(now: start.advanced(by: .seconds(15))) == .seconds(15))
    // A quiet spell refills the burst, no more.
    #expect(state.takeToken(now: start.advanced(by: .seconds(600))) == nil)
    #expect(state.takeToken(now: start.advanced(by: .seconds(600))) == nil)
    #expect(state.takeToken(now: start.advanced(by: .seconds(600))) != nil)
  }

  @Test("A watch loop throttled by its rate limit sleeps on its clock, never in a busy loop")
  func throttledLoop() async throws {
    // Every answer changes the set: the loop runs as fast as the bucket allows.
    let consul = ScriptedConsul(
      (1...6).map { .respond(status: 200, index: UInt64($0), body: healthBody(["s\($0)"])) }
    )
    let clock = RecordingClock()
    try await consul.run { port in
      let client = try ConsulClient(
        ConsulClientConfiguration(address: URL(string: "http://127.0.0.1:\(port)")!)
      )
      let discovery = ConsulDiscovery(
        client: client,
        configuration: .init(wait: .milliseconds(100), burst: 2, refillInterval: .seconds(15)),
        clock: clock,
        random: { 0.5 }
      )
      var updates = discovery.watch("svc").makeAsyncIterator()
      for expected in 1...6 {
        #expect(try await updates.next()?.endpoints.map(\.id) == ["s\(expected)"])
      }
    }
    #expect(clock.sleeps == Array(repeating: .seconds(15), count: 4))
  }

  @Test("A client of an unreachable agent fails typed; configuration errors are typed")
  func clientErrors() async throws {
    let unreachable = try ConsulClient(
      ConsulClientConfiguration(
        address: URL(string: "http://127.0.0.1:1")!,
        requestTimeout: .milliseconds(300)
      )
    )
    let failure: MeshConsulError?
    do {
      _ = try await unreachable.healthService("svc")
      failure = nil
    } catch {
      failure = error
    }
    #expect(failure?.code == .connectionFailed || failure?.code == .timeout)
    #expect(failure?.isRetryable == true)
    #expect(throws: MeshConsulError.self) {
      try ConsulClient(ConsulClientConfiguration(address: URL(string: "ftp://consul")!))
    }
    #expect(throws: MeshConsulError.self) {
      try ConsulClient(ConsulClientConfiguration(caBundlePath: "/nonexistent/ca.pem"))
    }
  }

  @Test("The environment configures the client as Consul's tools read it")
  func environment() throws {
    let plain = try ConsulClientConfiguration.fromEnvironment([
      "CONSUL_HTTP_ADDR": "consul.internal:8500", "CONSUL_HTTP_TOKEN": "secret",
    ])
    #expect(plain.address.absoluteString == "http://consul.internal:8500")
    #expect(plain.token == "secret")
    let tls = try ConsulClientConfiguration.fromEnvironment([
      "CONSUL_HTTP_ADDR": "consul.internal:8501", "CONSUL_HTTP_SSL": "true",
      "CONSUL_CACERT": "/etc/ca.pem",
    ])
    #expect(tls.address.absoluteString == "https://consul.internal:8501")
    #expect(tls.caBundlePath == "/etc/ca.pem")
    #expect(
      try ConsulClientConfiguration.fromEnvironment([:]).address.absoluteString
        == "http://127.0.0.1:8500"
    )
    #expect(throws: MeshConsulError.self) {
      try ConsulClientConfiguration.fromEnvironment(["CONSUL_HTTP_ADDR": "ftp://x:1"])
    }
    // Ports past 65535 and hosts that only look like IPs are refused here, before NIO (which
    // traps on such a port) sees them; so is the same address given in code.
    for address in [
      "127.0.0.1:99999", "127.0.0.1:0", "1.2.3.04:8500", "[zz::1]:8500", "http://:8500",
    ] {
      let error = #expect(throws: MeshConsulError.self, "\(address)") {
        try ConsulClientConfiguration.fromEnvironment(["CONSUL_HTTP_ADDR": address])
      }
      #expect(error?.code == .invalidConfiguration, "\(address)")
      #expect(error?.message.contains("CONSUL_HTTP_ADDR") == true, "\(String(describing: error))")
    }
    var configuration = ConsulClientConfiguration()
    configuration.address = URL(string: "http://127.0.0.1:70000")!
    #expect(throws: MeshConsulError.self) { try ConsulClient(configuration) }
  }
}
