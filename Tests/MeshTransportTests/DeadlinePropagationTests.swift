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
import GRPCNIOTransportHTTP2Posix
import MeshClient
import MeshDiscovery
import MeshProto
import MeshTestKit
import MeshTransport
import Testing

/// Service B of A → B → C: answers Check by calling C through the mesh, with no deadline or
/// cancellation code of its own.
struct RelayHealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
  let downstream: Grpc_Health_V1_Health.Client<MeshClientBalancingTransport>

  func check(
    request: Grpc_Health_V1_HealthCheckRequest,
    context: ServerContext
  ) async throws -> Grpc_Health_V1_HealthCheckResponse {
    try await self.downstream.check(request)
  }

  func list(
    request: Grpc_Health_V1_HealthListRequest,
    context: ServerContext
  ) async throws -> Grpc_Health_V1_HealthListResponse {
    throw RPCError(code: .unimplemented, message: "")
  }

  func watch(
    request: Grpc_Health_V1_HealthCheckRequest,
    response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
    context: ServerContext
  ) async throws {
    throw RPCError(code: .unimplemented, message: "")
  }
}

@Suite("Deadline propagation across hops", .timeLimit(.minutes(2)))
struct DeadlinePropagationTests {
  @Test(
    "A → B → C: C sees A's deadline less B's margin; A's cancellation and deadline reach C",
    arguments: TestTransport.matrix
  )
  func threeHops(kind: TestTransport) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      var fleetC = LoopbackFleet(transport: kind)
      try await fleetC.add(in: &group)
      let c = fleetC.faults[0]
      let margin = Duration.milliseconds(50)
      let toC = try MeshBalancingTransport(
        service: "c",
        discovery: MeshStaticDiscovery(["c": fleetC.endpoints]),
        factory: kind.plaintextFactory,
        configuration: .testing(
          policy: .roundRobin,
          resilience: .testing(MeshMethodPolicy(), propagationMargin: margin)
        )
      )
      try await withGRPCClient(transport: toC) { clientC in
        let (portB, stopB) = try await kind.startServer(
          services: [RelayHealthService(downstream: .init(wrapping: clientC))],
          interceptors: [MeshDeadlinePropagationInterceptor()],
          in: &group
        )
        let b = MeshEndpoint(id: "b", host: "127.0.0.1", port: portB)

        try await withBalancedClient(
          discovery: MeshStaticDiscovery(["greeter": [b]]),
          policy: .roundRobin,
          resilience: .testing(MeshMethodPolicy()),
          waitForPickable: 1,
          on: kind
        ) { a, toB in
          // The deadline: A gives 2 s; C is told what B had left, less B's margin.
          var options = CallOptions.defaults
          options.timeout = .seconds(2)
          _ = try await a.check(.init(), options: options)
          let header = try #require(c.metadata.first?.first("grpc-timeout"))
          let seen = try #require(MeshGRPCTimeout.decode(header))
          #expect(seen <= .seconds(2) - margin)
          #expect(seen > .seconds(1))  // the hops take far less than the second left over

          // Cancellation: A's RPC (no deadline) is cancelled while C holds B's call.
          c.set(.hang)
          await withThrowingTaskGroup(of: Void.self) { calls in
            calls.addTask { _ = try await a.check(.init()) }
            await c.waitForCalls(2)
            calls.cancelAll()
            await c.waitForCancellations(1)
          }

          // A's deadline passes while C holds B's call: A fails, and C's call is cancelled. C has
          // the call within milliseconds; A's call ends at its deadline. (Twice in many runs, with
          // 300 ms and with 2 s, on either transport, C never saw that call: it was held somewhere
          // until A's deadline. Not found yet; the check below says where things stood.)
          options.timeout = .seconds(2)
          let code: RPCError.Code?
          do {
            _ = try await a.check(.init(), options: options)
            code = nil
          } catch let error as RPCError {
            code = error.code
          }
          guard c.calls >= 3 else {
            Issue.record(
              """
              The call never reached C within A's 2 s (A's call ended \(String(describing: code))); \
              A → B: \(toB.stats); B → C: \(toC.stats)
              """
            )
            return
          }
          await c.waitForCancellations(2)
          #expect(code == .deadlineExceeded)
          #expect(c.calls == 3)
        }
        stopB()
      }
      fleetC.stop()
    }
  }
}
