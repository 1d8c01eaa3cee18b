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

import InteropSupport
import MeshHealth
import Testing

/// One line from `Tests/Interop/health_peer.py`.
struct HealthPeerReply: Decodable, Equatable {
  var op: String
  var id: String?
  var service: String?
  var status: String?
  var code: String?
  var statuses: [String: String]?
}

extension PythonPeer<HealthPeerReply> {
  func check(_ service: String) async throws -> HealthPeerReply {
    try self.send(["op": "check", "service": service])
    return try await self.next { $0.op == "check" && $0.service == service }
  }

  func list() async throws -> HealthPeerReply {
    try self.send(["op": "list"])
    return try await self.next { $0.op == "list" }
  }

  func watchEvent(_ id: String) async throws -> HealthPeerReply {
    try await self.next { ($0.op == "watch" || $0.op == "watch_end") && $0.id == id }
  }
}

/// Our servicer on a real HTTP/2 server, driven by grpcio 1.85.1 and grpcio-health-checking's own
/// generated `HealthStub` (what any gRPC health client, Consul and Kubernetes probes included,
/// speaks).
@Suite("Health interop with Python grpcio", .timeLimit(.minutes(2)))
struct HealthInteropTests {
  @Test("grpcio's health client: Check, Watch and List")
  func grpcioHealthClient() async throws {
    let health = MeshHealthService()
    health.setServing(service: "known")
    health.setNotServing(service: "down")

    try await withLoopbackHealthServer(health) { port in
      let peer = try PythonPeer<HealthPeerReply>(
        script: "health_peer.py",
        arguments: ["--target", "127.0.0.1:\(port)"]
      )
      _ = try await peer.next { $0.op == "ready" }

      // Check: the whole server, known services, and NOT_FOUND for an unknown one.
      #expect(try await peer.check("").status == "SERVING")
      #expect(try await peer.check("known").status == "SERVING")
      #expect(try await peer.check("down").status == "NOT_SERVING")
      #expect(try await peer.check("missing").code == "NOT_FOUND")

      // Watch: the current status at once, then two changes in order.
      try peer.send(["op": "watch", "id": "w1", "service": "known"])
      #expect(try await peer.watchEvent("w1").status == "SERVING")
      health.setNotServing(service: "known")
      #expect(try await peer.watchEvent("w1").status == "NOT_SERVING")
      health.setServing(service: "known")
      #expect(try await peer.watchEvent("w1").status == "SERVING")

      // Watch of an unknown service: SERVICE_UNKNOWN, the service stays unknown, the stream stays
      // open and delivers the status once one is set.
      try peer.send(["op": "watch", "id": "w2", "service": "later"])
      #expect(try await peer.watchEvent("w2").status == "SERVICE_UNKNOWN")
      #expect(try await peer.check("later").code == "NOT_FOUND")
      #expect(try await peer.list().statuses?["later"] == nil)
      health.setServing(service: "later")
      #expect(try await peer.watchEvent("w2").status == "SERVING")

      // List: every known service and its status.
      #expect(
        try await peer.list().statuses
          == ["": "SERVING", "known": "SERVING", "down": "NOT_SERVING", "later": "SERVING"]
      )

      // A client that cancels its Watch leaves no watcher behind on our side.
      await health.waitForWatcherCount(2)
      try peer.send(["op": "cancel", "id": "w1"])
      #expect(try await peer.watchEvent("w1").code == "CANCELLED")
      await health.waitForWatcherCount(1)

      // Draining reaches the remaining watcher.
      health.enterTerminalState()
      #expect(try await peer.watchEvent("w2").status == "NOT_SERVING")
      #expect(try await peer.check("").status == "NOT_SERVING")

      #expect(try await peer.finish() == 0)
    }
  }

  @Test("grpcio's health client sees RESOURCE_EXHAUSTED from List past 100 services")
  func grpcioListLimit() async throws {
    let health = MeshHealthService()
    for index in 0..<100 {
      health.setServing(service: "svc-\(index)")
    }

    try await withLoopbackHealthServer(health) { port in
      let peer = try PythonPeer<HealthPeerReply>(
        script: "health_peer.py",
        arguments: ["--target", "127.0.0.1:\(port)"]
      )
      #expect(try await peer.list().code == "RESOURCE_EXHAUSTED")
      health.clearStatus(for: "svc-0")
      #expect(try await peer.list().statuses?.count == 100)
      #expect(try await peer.finish() == 0)
    }
  }
}
