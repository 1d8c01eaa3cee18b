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

internal import Foundation
internal import MeshConsul

@testable internal import MeshConsulAgent

/// The embedded agent's request bodies, decoded as the agent decodes them (Consul's strict JSON:
/// unknown fields refused, case-insensitive names, snake_case aliases), then applied to an agent
/// state. Nothing may trap; a refusal is a `ConsulAgentError` with a short message.
///
/// The first byte picks the endpoint the rest is the body of: even, `PUT
/// /v1/agent/service/register`; odd, `PUT /v1/agent/check/update/:id`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
  let bytes = UnsafeRawBufferPointer(start: start, count: count)
  guard let selector = bytes.first else { return 0 }
  let body = Data(bytes.dropFirst())

  let now = ContinuousClock.now
  var state = ConsulAgentState<ContinuousClock.Instant>(
    node: ConsulNode(id: "fuzz", node: "fuzz-node", address: "127.0.0.1", datacenter: "dc1")
  )
  do throws(ConsulAgentError) {
    if selector % 2 == 0 {
      let registration = try ConsulStrictJSON.decode(
        ConsulServiceRegistration.self,
        from: body,
        schema: ConsulStrictJSON.registration
      )
      try state.register(registration, replaceExistingChecks: true, now: now)
      // What a registration becomes must be servable: the timers and the reads run on it.
      _ = state.tick(now: now.advanced(by: .seconds(3_600)))
      _ = state.nextDeadline
      let name = ConsulAgentKey(registration.name)
      let id = registration.id.flatMap { $0.isEmpty ? nil : $0 } ?? registration.name
      let serviceID = ConsulAgentKey(id)
      for check in state.checks(ofService: serviceID) {
        _ = state.grpcCheck(ConsulAgentKey(check.health.checkID))
      }
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      _ = try? encoder.encode(state.healthService(name, passingOnly: false, tags: []))
      _ = try? encoder.encode(state.catalogService(name, tags: []))
      _ = try? encoder.encode(state.catalogServices)
      _ = try? encoder.encode(state.agentServices(datacenter: "dc1"))
      _ = try? encoder.encode(state.agentChecks)
      try state.deregister(serviceID: serviceID)
    } else {
      let update = try ConsulStrictJSON.decode(
        ConsulCheckUpdate.self,
        from: body,
        schema: ConsulStrictJSON.checkUpdate
      )
      _ = update
    }
  } catch {
    // Consul answers a bad body with a short plain-text message, never a dump of the input.
    if error.message.utf8.count > maxMessageBytes {
      fatalError(
        "FuzzAgentRequestBody: a \(error.status) message of \(error.message.utf8.count) bytes: "
          + String(error.message.prefix(200))
      )
    }
  }
  return 0
}

/// The longest error message the agent may answer with.
private let maxMessageBytes = 4_096
