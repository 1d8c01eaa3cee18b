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

import MeshCore
import MeshDiscovery
import Testing

@Suite("Static and DNS discovery", .timeLimit(.minutes(1)))
struct DiscoveryTests {
  @Test("Static discovery yields the list, then every update, to every watcher")
  func staticDiscovery() async throws {
    let a = MeshEndpoint(host: "10.0.0.1", port: 80)
    let b = MeshEndpoint(host: "10.0.0.2", port: 80)
    let discovery = MeshStaticDiscovery(["svc": [a]])
    var first = discovery.watch("svc").makeAsyncIterator()
    var second = discovery.watch("svc").makeAsyncIterator()
    var unknown = discovery.watch("other").makeAsyncIterator()
    #expect(try await first.next()?.endpoints == [a])
    #expect(try await second.next()?.endpoints == [a])
    #expect(try await unknown.next()?.endpoints == [])

    discovery.update("svc", endpoints: [a])  // no change: not yielded
    discovery.update("svc", endpoints: [a, b])
    #expect(try await first.next()?.endpoints == [a, b])
    #expect(try await second.next()?.endpoints == [a, b])
    discovery.update("other", endpoints: [b])
    #expect(try await unknown.next()?.endpoints == [b])
  }

  @Test("Endpoint IDs, weights and health")
  func endpoints() {
    let endpoint = MeshEndpoint(
      host: "10.0.0.1",
      port: 80,
      health: .warning,
      weights: .init(passing: 10, warning: 2)
    )
    #expect(endpoint.id == "10.0.0.1:80")
    #expect(endpoint.weight == 2)
    var passing = endpoint
    passing.health = .passing
    #expect(passing.weight == 10)
  }

  @Test("DNS discovery re-resolves every interval, yields changes, keeps the last set on failure")
  func dnsDiscovery() async throws {
    let answers = MeshMutex<[Result<[String], any Error>]>([
      .success(["10.0.0.2", "10.0.0.1"]),
      .success(["10.0.0.2", "10.0.0.1"]),  // unchanged: not yielded
      .failure(MeshDiscoveryError(code: .resolutionFailed, message: "SERVFAIL")),  // kept
      .success(["10.0.0.3"]),
    ])
    let lookups = MeshMutex<[String]>([])
    let clock = RecordingClock()
    let discovery = MeshDNSDiscovery(
      defaultPort: 443,
      refreshInterval: .seconds(30),
      clock: clock,
      resolve: { host in
        lookups.withLock { $0.append(host) }
        return try answers.withLock { $0.removeFirst() }.get().sorted()
      }
    )
    var updates = discovery.watch("orders.internal:8443").makeAsyncIterator()
    let first = try #require(try await updates.next())
    #expect(first.endpoints.map(\.host) == ["10.0.0.1", "10.0.0.2"])
    #expect(first.endpoints.allSatisfy { $0.port == 8443 })
    #expect(try await updates.next()?.endpoints.map(\.host) == ["10.0.0.3"])
    #expect(lookups.withLock { $0 } == Array(repeating: "orders.internal", count: 4))
    #expect(clock.sleeps == Array(repeating: .seconds(30), count: 3))
  }

  @Test("DNS targets: host, host:port, [v6]:port; bad ones are typed errors")
  func dnsTargets() async throws {
    let discovery = MeshDNSDiscovery(defaultPort: 50051, refreshInterval: .seconds(30))
    var localhost = discovery.watch("localhost").makeAsyncIterator()
    let set = try #require(try await localhost.next())
    #expect(set.endpoints.contains { $0.host == "127.0.0.1" || $0.host == "::1" })
    #expect(set.endpoints.allSatisfy { $0.port == 50051 })

    var v6 = MeshDNSDiscovery(clock: RecordingClock(), resolve: { [$0] }).watch("[::1]:8080")
      .makeAsyncIterator()
    #expect(try await v6.next()?.endpoints.first.map { "\($0.host) \($0.port)" } == "::1 8080")

    for bad in ["", "host:notaport", "host:70000", "[::1", "host:", "bad host!:80", "1.2.3.04"] {
      var iterator = MeshDNSDiscovery(clock: RecordingClock(), resolve: { [$0] }).watch(bad)
        .makeAsyncIterator()
      await #expect(throws: MeshDiscoveryError.self, "\(bad)") { try await iterator.next() }
    }
    #expect(try await MeshDNSLookup.addresses(of: "127.0.0.1") == ["127.0.0.1"])
  }
}

@Suite("Endpoint identity")
struct EndpointIdentityTests {
  @Test("An instance is its node and its ID: no two pairs share a key")
  func instanceKeys() {
    let pairs: [(node: String?, id: String)] = [
      ("a/b", "c"), ("a", "b/c"), ("a%2Fb", "c"), ("a", "c"), (nil, "a/c"), ("", "a/c/"),
      (nil, "c"),
    ]
    let keys = pairs.map { MeshEndpoint(id: $0.id, host: "127.0.0.1", port: 1, node: $0.node) }
      .map(\.instanceKey)
    #expect(Set(keys).count == pairs.count, "\(keys)")
    #expect(MeshEndpoint(id: "web-1", host: "h", port: 1, node: "n1").instanceKey == "n1/web-1")
  }
}
