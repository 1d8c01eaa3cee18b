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

import GRPCCore
import MeshClient
import MeshHealth
import MeshProto
import MeshTestKit
import MeshTransport
import Testing

@Suite("MeshTestKit's loopback mesh", .timeLimit(.minutes(2)))
struct LoopbackMeshTests {
  /// RPCs from the mesh client carry this, to tell them from the agent's health checks.
  static let marker: Metadata = ["x-mesh-test": "client"]

  static func clientCalls(_ instance: MeshLoopbackMesh.Instance) -> Int {
    instance.faults.metadata.filter { $0["x-mesh-test"].contains { $0 == .string("client") } }
      .count
  }

  @Test("Through the agent: every instance serves; one that stops serving leaves and gets no more")
  func throughTheAgent() async throws {
    try await withLoopbackMesh(["greeter": 3, "billing": 1]) { mesh in
      #expect(mesh.instances["greeter"]?.count == 3)
      #expect(mesh.instances["billing"]?.count == 1)
      let instances = try #require(mesh.instances["greeter"])
      var configuration = mesh.clientConfiguration
      configuration.policy = .roundRobin
      // Counts per instance: no retry may add a second attempt (a sanitizer run once made a
      // call outlive its 5 s per-try timeout, and its retry was counted on another instance).
      configuration.resilience.defaults.retry = nil
      try await withMeshClient(configuration) { client in
        let health = Grpc_Health_V1_Health.Client(wrapping: try client.client(for: "greeter"))
        let transport = try #require(client.transport(for: "greeter"))
        await transport.waitForPickableEndpoints(3)
        for _ in 0..<30 { _ = try await health.check(.init(), metadata: Self.marker) }
        #expect(instances.map(Self.clientCalls) == [10, 10, 10])

        // The agent's gRPC check sees NOT_SERVING; Consul discovery drops the instance.
        instances[0].health.setNotServing()
        try await mesh.waitUntilPassing("greeter", count: 2)
        await transport.waitForStats { $0.endpoints == 2 }
        let before = Self.clientCalls(instances[0])
        for _ in 0..<20 { _ = try await health.check(.init(), metadata: Self.marker) }
        #expect(Self.clientCalls(instances[0]) == before)
        #expect(instances[1...].map(Self.clientCalls).reduce(0, +) == 40)
      }
    }
  }
}
