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
import MeshServer
import Testing

/// One line from `Tests/Interop/health_peer.py`.
struct HealthWatchReply: Decodable {
  var op: String
  var id: String?
  var status: String?
  var code: String?
  var details: String?
}

@Suite("Keepalive enforcement with grpcio clients (gRFC A8)", .timeLimit(.minutes(2)))
struct KeepaliveInteropTests {
  @Test(
    "A grpcio client pinging every 100 ms loses its connection; a polite one keeps its stream",
    arguments: TestTransport.matrix
  )
  func pingFlood(kind: TestTransport) async throws {
    var configuration = MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0)
    configuration.transportKind = kind.server
    configuration.drain = .init(delay: .zero, gracePeriod: .seconds(5))
    try await withMeshServer(configuration, services: [EchoService()]) { server in
      let port = try await server.listeningPort
      func peer(_ arguments: [String]) throws -> PythonPeer<HealthWatchReply> {
        try PythonPeer<HealthWatchReply>(
          script: "health_peer.py",
          arguments: ["--target", "127.0.0.1:\(port)"] + arguments
        )
      }
      let abusive = try peer(["--keepalive-ms", "100"])
      let polite = try peer([])
      for client in [abusive, polite] {
        _ = try await client.next { $0.op == "ready" }
        try client.send(["op": "watch", "id": "w", "service": "test.Echo"])
        let first = try await client.next { $0.op == "watch" }
        #expect(first.status == "SERVING")
      }

      // Pings far more often than the server allows (5 minutes apart while calls are open): a
      // few strikes, then GOAWAY with ENHANCE_YOUR_CALM ("too_many_pings") and the connection
      // closes, ending the stream.
      let ended = try await abusive.next { $0.op == "watch_end" }
      #expect(ended.code == "UNAVAILABLE", "\(ended)")
      // grpcio: "Stream removed (Socket closed (GOAWAY received; Error code: 11; Debug Text:
      // too_many_pings))"; 11 is ENHANCE_YOUR_CALM.
      #expect(ended.details?.contains("Error code: 11") == true, "\(ended)")
      #expect(ended.details?.contains("too_many_pings") == true, "\(ended)")

      // The polite client's stream on its own connection is untouched: it sees the next change.
      server.health.setNotServing(service: "test.Echo")
      let change = try await polite.next { $0.op == "watch" }
      #expect(change.status == "NOT_SERVING")
      server.health.setServing(service: "test.Echo")
      try polite.send(["op": "quit"])
      try abusive.send(["op": "quit"])
      #expect(try await polite.finish() == 0)
      #expect(try await abusive.finish() == 0)
    }
  }
}
