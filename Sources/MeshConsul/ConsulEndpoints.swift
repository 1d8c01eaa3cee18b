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

public import MeshDiscovery

/// How entries of a health query become endpoints.
public enum ConsulEndpoints {
  /// The endpoint set of `service` in `entries`.
  ///
  /// The address is the service's, else its node's; with `taggedAddress`, the service's tagged
  /// address of that name (then the node's) wins when present. Critical instances are left out
  /// (they are only present when the query did not ask for `?passing`); warning instances are
  /// kept with ``MeshEndpoint/Health/warning``. The zone is the `zone` of the service's metadata,
  /// else of the node's.
  public static func endpointSet(
    service: String,
    entries: [ConsulServiceEntry],
    taggedAddress: String? = nil
  ) -> MeshEndpointSet {
    var endpoints: [MeshEndpoint] = []
    for entry in entries {
      let health: MeshEndpoint.Health
      switch entry.aggregatedStatus {
      case .passing: health = .passing
      case .warning: health = .warning
      case .critical: continue
      }
      var host = entry.service.address.isEmpty ? entry.node.address : entry.service.address
      var port = entry.service.port
      if let key = taggedAddress {
        if let tagged = entry.service.taggedAddresses?[key] {
          host = tagged.address
          port = tagged.port
        } else if let nodeAddress = entry.node.taggedAddresses?[key] {
          host = nodeAddress
        }
      }
      endpoints.append(
        MeshEndpoint(
          id: entry.service.id,
          host: host,
          port: port,
          tags: entry.service.tags,
          meta: entry.service.meta ?? [:],
          health: health,
          weights: MeshEndpoint.Weights(
            passing: entry.service.weights.passing,
            warning: entry.service.weights.warning
          ),
          node: entry.node.node,
          datacenter: entry.node.datacenter.isEmpty ? nil : entry.node.datacenter,
          zone: entry.service.meta?["zone"] ?? entry.node.meta?["zone"]
        )
      )
    }
    return MeshEndpointSet(service: service, endpoints: endpoints)
  }
}
