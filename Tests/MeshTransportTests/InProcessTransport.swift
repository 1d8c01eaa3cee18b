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

import CoreMetrics
import GRPCCore
import MeshDiscovery
import MeshProto
import MeshTestKit
import MeshTransport

/// Runs `body` with a health client over a balancing transport to the in-process `fleet`
/// (service `greeter`), on `clock`, its metrics going to `metrics`.
func withInProcessTransport<Clock: _Concurrency.Clock>(
  to fleet: MeshInProcessFleet,
  discovery: (any MeshDiscovery)? = nil,
  clock: Clock,
  configuration: MeshBalancingConfiguration,
  metrics: (any MetricsFactory)? = nil,
  _ body: (
    Grpc_Health_V1_Health.Client<MeshBalancingTransport<MeshInProcessSubchannelFactory, Clock>>,
    MeshBalancingTransport<MeshInProcessSubchannelFactory, Clock>
  ) async throws -> Void
) async throws where Clock.Duration == Duration {
  let transport = try MeshBalancingTransport(
    service: "greeter",
    discovery: discovery ?? MeshStaticDiscovery(["greeter": fleet.endpoints]),
    factory: fleet.factory,
    configuration: configuration,
    clock: clock,
    metrics: metrics
  )
  try await withGRPCClient(transport: transport) { client in
    try await body(Grpc_Health_V1_Health.Client(wrapping: client), transport)
  }
}
