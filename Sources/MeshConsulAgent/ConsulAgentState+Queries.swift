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

package import MeshConsul
internal import MeshCore

extension ConsulAgentState {
  // MARK: - Health

  /// `GET /v1/health/service/:service`.
  package func healthService(
    _ name: ConsulAgentKey,
    passingOnly: Bool,
    tags: [String]
  ) -> [ConsulServiceEntry] {
    var entries: [ConsulServiceEntry] = []
    for service in self.instances(of: name, tags: tags) {
      let checks =
        [self.serfHealth] + self.checks(ofService: ConsulAgentKey(service.id)).map(\.health)
      if passingOnly && checks.contains(where: { $0.status != .passing }) { continue }
      entries.append(ConsulServiceEntry(node: self.node, service: service, checks: checks))
    }
    return entries
  }

  /// `GET /v1/health/checks/:service`: the checks of every instance of the service.
  package func healthChecks(ofService name: ConsulAgentKey) -> [ConsulHealthCheck] {
    self.serviceIDs(named: name).flatMap { self.checks(ofService: $0).map(\.health) }
  }

  /// `GET /v1/health/node/:node`: the node's checks, its own first.
  package func healthChecks(ofNode node: ConsulAgentKey) -> [ConsulHealthCheck] {
    guard node == ConsulAgentKey(self.node.node) else { return [] }
    return [self.serfHealth] + self.allChecks
  }

  /// `GET /v1/health/state/:state` (`any` for every check). Nil for an unknown state.
  package func healthChecks(inState state: String) -> [ConsulHealthCheck]? {
    let all = [self.serfHealth] + self.allChecks
    if state == "any" { return all }
    guard let status = ConsulCheckStatus(rawValue: state) else { return nil }
    return all.filter { $0.status == status }
  }

  /// Every check, in byte order of their IDs.
  private var allChecks: [ConsulHealthCheck] {
    self.checks.keys.sorted().compactMap { self.checks[$0]?.health }
  }

  /// The node's own health, always passing on a live agent.
  var serfHealth: ConsulHealthCheck {
    ConsulHealthCheck(
      node: self.node.node,
      checkID: "serfHealth",
      name: "Serf Health Status",
      status: .passing,
      output: "Agent alive and reachable",
      createIndex: self.node.createIndex,
      modifyIndex: self.node.createIndex
    )
  }

  // MARK: - Catalog

  /// `GET /v1/catalog/services`.
  package var catalogServices: ConsulAgentMap<[String]> {
    var services: [(key: ConsulAgentKey, value: [String])] = [(key: "consul", value: [])]
    for name in self.serviceNames {
      var tags: [String] = []
      var seen: Set<ConsulAgentKey> = []
      for service in self.instances(of: name, tags: []) {
        for tag in service.tags where seen.insert(ConsulAgentKey(tag)).inserted {
          tags.append(tag)
        }
      }
      services.append((key: name, value: tags))
    }
    return ConsulAgentMap(services)
  }

  /// `GET /v1/catalog/service/:service`.
  package func catalogService(_ name: ConsulAgentKey, tags: [String]) -> [ConsulCatalogServiceNode]
  {
    self.instances(of: name, tags: tags).map {
      ConsulCatalogServiceNode(node: self.node, service: $0)
    }
  }

  /// `GET /v1/catalog/nodes`.
  package var catalogNodes: [ConsulNode] { [self.node] }

  /// `GET /v1/catalog/node/:node`: the node and its services by ID; nil (JSON `null`, as
  /// Consul answers) for another node.
  package func catalogNode(_ node: ConsulAgentKey) -> ConsulAgentNodeServices? {
    guard node == ConsulAgentKey(self.node.node) else { return nil }
    let services = ConsulAgentMap(self.services.lazy.map { (key: $0.key, value: $0.value) })
    return ConsulAgentNodeServices(node: self.node, services: services)
  }

  // MARK: - Agent

  /// `GET /v1/agent/services`.
  package func agentServices(datacenter: String) -> ConsulAgentMap<ConsulAgentService> {
    ConsulAgentMap(
      self.services.lazy.map {
        (key: $0.key, value: ConsulAgentService($0.value, datacenter: datacenter))
      }
    )
  }

  /// `GET /v1/agent/checks`: the agent's own checks (its node's serfHealth is the catalog's).
  package var agentChecks: ConsulAgentMap<ConsulHealthCheck> {
    var checks: [(key: ConsulAgentKey, value: ConsulHealthCheck)] = []
    for (id, check) in self.checks {
      var health = check.health
      // The agent's local state has no raft indexes.
      health.createIndex = 0
      health.modifyIndex = 0
      checks.append((key: id, value: health))
    }
    return ConsulAgentMap(checks)
  }

  // MARK: - Helpers

  /// The names with instances, in byte order.
  private var serviceNames: [ConsulAgentKey] {
    var names: Set<ConsulAgentKey> = []
    for service in self.services.values { names.insert(ConsulAgentKey(service.service)) }
    return names.sorted()
  }

  /// The instances of `name` that have every tag in `tags` (case-insensitively, as Consul's
  /// `serviceTagFilter`), in byte order of their IDs.
  private func instances(of name: ConsulAgentKey, tags: [String]) -> [ConsulNodeService] {
    let wanted = tags.map { ConsulAgentKey($0.lowercased()) }
    return self.serviceIDs(named: name).compactMap { self.services[$0] }.filter { service in
      let lowered = Set(service.tags.map { ConsulAgentKey($0.lowercased()) })
      return wanted.allSatisfy(lowered.contains)
    }
  }

  // MARK: - Validation

  static func validate(meta: [String: String]) throws(ConsulAgentError) {
    guard meta.count <= 64 else {
      throw ConsulAgentError(
        400,
        "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs"
      )
    }
    for (key, value) in meta {
      guard !key.isEmpty, key.utf8.count <= 128,
        key.unicodeScalars.allSatisfy({
          ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
            || $0 == "_" || $0 == "-"
        })
      else {
        throw ConsulAgentError(400, "Invalid Service Meta: Key contains invalid characters")
      }
      guard !key.hasPrefix("consul-") else {
        throw ConsulAgentError(
          400,
          "Invalid Service Meta: Key prefix 'consul-' is reserved for internal use"
        )
      }
      guard value.utf8.count <= 512 else {
        throw ConsulAgentError(
          400,
          "Invalid Service Meta: Value is too long (limit: 512 characters)"
        )
      }
    }
  }

  static func taggedAddresses(
    _ registration: ConsulServiceRegistration
  ) -> [String: ConsulServiceAddress]? {
    var tagged = registration.taggedAddresses ?? [:]
    // The agent adds lan/wan addresses of the family of an IP literal, unless set.
    if let address = registration.address, !address.isEmpty, let port = registration.port {
      let family: String?
      switch try? MeshHost(address) {
      case .ipv4: family = "ipv4"
      case .ipv6: family = "ipv6"
      case .dns, nil: family = nil
      }
      if let family {
        for key in ["lan_\(family)", "wan_\(family)"] where tagged[key] == nil {
          tagged[key] = ConsulServiceAddress(address: address, port: port)
        }
      }
    }
    return tagged.isEmpty ? nil : tagged
  }
}
