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
internal import MeshCore
internal import MeshDiscovery
internal import MeshTransport

/// Consul's answers as the mesh's Consul client reads them (`JSONDecoder` into the wire types),
/// and the endpoints discovery makes of a health answer. A hostile agent or registration must
/// not trap the client, what it decodes re-encodes stably, and nothing invalid may reach NIO:
/// an endpoint the balancing transport's gate (`MeshEndpoint.validationError`) lets through has
/// a port in 1...65535 and a host that is an IPv4 or IPv6 address or a DNS name. (Consul may
/// list port 0 or any host text; the gate, not the decoder, refuses them.)
///
/// The first byte picks the document the rest is: 0 `/v1/health/service/:service`, 1
/// `/v1/catalog/service/:service`, 2 `/v1/catalog/services`, 3 `/v1/agent/connect/ca/roots`,
/// 4 `/v1/agent/connect/ca/leaf/:service`, 5 `/v1/agent/connect/authorize`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
  let bytes = UnsafeRawBufferPointer(start: start, count: count)
  guard let selector = bytes.first else { return 0 }
  let body = Data(bytes.dropFirst())

  switch selector % 6 {
  case 0:
    guard let entries = roundTrip([ConsulServiceEntry].self, body) else { break }
    for taggedAddress in [nil, "lan", "wan", "lan_ipv4"] {
      let set = ConsulEndpoints.endpointSet(
        service: "fuzz",
        entries: entries,
        taggedAddress: taggedAddress
      )
      var usable: [MeshPickerEndpoint] = []
      for endpoint in set.endpoints where endpoint.validationError == nil {
        check(MeshInput.ports.contains(endpoint.port), "port \(endpoint.port) in 1...65535")
        check((try? MeshHost(endpoint.host)) != nil, "host \(String(reflecting: endpoint.host))")
        _ = endpoint.description
        usable.append(
          MeshPickerEndpoint(
            id: endpoint.instanceKey,
            weight: endpoint.weight,
            zone: endpoint.zone,
            tags: endpoint.tags
          )
        )
      }
      // The registry's weights, zones and tags reach the picker as the transport hands them
      // over: whatever they are, a non-empty set gives a pick.
      for policy in [MeshBalancingPolicy.weighted, .roundRobin] {
        var picker = MeshPickerState<ContinuousClock.Instant>(policy: policy)
        picker.update(usable)
        var random = SystemRandomNumberGenerator()
        let picked = picker.pick(now: .now, using: &random)
        check((picked != nil) == !usable.isEmpty, "a pick whenever there are endpoints")
      }
    }
  case 1: _ = roundTrip([ConsulCatalogServiceNode].self, body)
  case 2: _ = roundTrip([String: [String]].self, body)
  case 3: _ = roundTrip(ConsulCARoots.self, body)
  case 4: _ = roundTrip(ConsulIssuedCertificate.self, body)
  default: _ = roundTrip(ConsulAuthorizeResponse.self, body)
  }
  return 0
}

/// Decodes `body` as `type` as the client does. What decodes must encode, and its encoding must be
/// a fixed point: decoded and encoded again, the same bytes. (Not `decode(encode(x)) == x`: like
/// Consul, the encoders leave out empty fields, so `{}` and an absent field become one.)
private func roundTrip<Value: Codable>(_ type: Value.Type, _ body: Data) -> Value? {
  guard let value = try? JSONDecoder().decode(type, from: body) else { return nil }
  let encoder = JSONEncoder()
  encoder.outputFormatting = .sortedKeys
  do {
    let once = try encoder.encode(value)
    let twice = try encoder.encode(try JSONDecoder().decode(type, from: once))
    check(once == twice, "\(type) encodes to a fixed point")
  } catch {
    check(false, "\(type) re-encodes and decodes (\(error))")
  }
  return value
}

private func check(_ condition: @autoclosure () -> Bool, _ invariant: String) {
  if !condition() {
    fatalError("FuzzConsulResponse: broke '\(invariant)'")
  }
}
