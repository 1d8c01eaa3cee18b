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

/// One service of `GET /v1/agent/services` and `GET /v1/agent/service/:id` (`api.AgentService`,
/// as Consul's `buildAgentService` fills it).
package struct ConsulAgentService: Encodable, Sendable {
  var kind: String?
  var id: String
  var service: String
  var tags: [String]
  var meta: [String: String]
  var port: Int
  var address: String
  var taggedAddresses: [String: ConsulServiceAddress]?
  var weights: ConsulWeights
  var enableTagOverride: Bool
  /// Only on `/v1/agent/service/:id`.
  var contentHash: String?
  var datacenter: String

  package init(_ service: ConsulNodeService, datacenter: String) {
    self.kind = service.kind.flatMap { $0.isEmpty ? nil : $0 }
    self.id = service.id
    self.service = service.service
    self.tags = service.tags
    self.meta = service.meta ?? [:]
    self.port = service.port
    self.address = service.address
    self.taggedAddresses = service.taggedAddresses.flatMap { $0.isEmpty ? nil : $0 }
    self.weights = service.weights
    self.enableTagOverride = service.enableTagOverride
    self.contentHash = nil
    self.datacenter = datacenter
  }

  enum CodingKeys: String, CodingKey {
    case kind = "Kind"
    case id = "ID"
    case service = "Service"
    case tags = "Tags"
    case meta = "Meta"
    case port = "Port"
    case address = "Address"
    case taggedAddresses = "TaggedAddresses"
    case weights = "Weights"
    case enableTagOverride = "EnableTagOverride"
    case contentHash = "ContentHash"
    case datacenter = "Datacenter"
  }

  package func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(self.kind, forKey: .kind)
    try c.encode(self.id, forKey: .id)
    try c.encode(self.service, forKey: .service)
    try c.encode(self.tags, forKey: .tags)
    try c.encode(self.meta, forKey: .meta)
    try c.encode(self.port, forKey: .port)
    try c.encode(self.address, forKey: .address)
    try c.encodeIfPresent(self.taggedAddresses, forKey: .taggedAddresses)
    try c.encode(self.weights, forKey: .weights)
    try c.encode(self.enableTagOverride, forKey: .enableTagOverride)
    try c.encodeIfPresent(self.contentHash, forKey: .contentHash)
    try c.encode(self.datacenter, forKey: .datacenter)
  }

  /// The service with its `ContentHash`: a hash of everything else, as Consul's hash-based
  /// blocking uses it (opaque, stable while the service is unchanged).
  package func withContentHash() -> Self {
    var copy = self
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a: stable across processes, unlike Hasher.
    let fields =
      [self.kind ?? "", self.id, self.service, self.address, String(self.port), self.datacenter]
      + self.tags + self.meta.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
      + [
        String(self.weights.passing), String(self.weights.warning), String(self.enableTagOverride),
      ]
      + (self.taggedAddresses ?? [:]).sorted { $0.key < $1.key }
      .flatMap { [$0.key, $0.value.address, String($0.value.port)] }
    for field in fields {
      for byte in Array(field.utf8) + [0] {
        hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
      }
    }
    copy.contentHash = String(hash, radix: 16)
    return copy
  }
}

/// `GET /v1/catalog/node/:node` (`structs.NodeServices`).
package struct ConsulAgentNodeServices: Encodable, Sendable {
  var node: ConsulNode
  var services: ConsulAgentMap<ConsulNodeService>

  enum CodingKeys: String, CodingKey {
    case node = "Node"
    case services = "Services"
  }
}

/// A member of the LAN gossip pool (`serf.Member`), for `GET /v1/agent/members` and
/// `/v1/agent/self`.
package struct ConsulAgentMember: Encodable, Sendable {
  var name: String
  var addr: String
  var port: Int
  var tags: [String: String]
  /// serf's MemberStatus: 1 is alive.
  var status: Int = 1
  var protocolMin = 1
  var protocolMax = 5
  var protocolCur = 2
  var delegateMin = 2
  var delegateMax = 5
  var delegateCur = 4

  enum CodingKeys: String, CodingKey {
    case name = "Name"
    case addr = "Addr"
    case port = "Port"
    case tags = "Tags"
    case status = "Status"
    case protocolMin = "ProtocolMin"
    case protocolMax = "ProtocolMax"
    case protocolCur = "ProtocolCur"
    case delegateMin = "DelegateMin"
    case delegateMax = "DelegateMax"
    case delegateCur = "DelegateCur"
  }
}

/// `GET /v1/agent/self`: the parts clients read (`Config`, `Member`, `Meta`, `Coord`, `Stats`).
package struct ConsulAgentSelf: Encodable, Sendable {
  struct Config: Encodable, Sendable {
    var datacenter: String
    var primaryDatacenter: String
    var nodeName: String
    var nodeID: String
    var revision: String
    var server: Bool
    var version: String
    var buildDate: String

    enum CodingKeys: String, CodingKey {
      case datacenter = "Datacenter"
      case primaryDatacenter = "PrimaryDatacenter"
      case nodeName = "NodeName"
      case nodeID = "NodeID"
      case revision = "Revision"
      case server = "Server"
      case version = "Version"
      case buildDate = "BuildDate"
    }
  }

  struct Coordinate: Encodable, Sendable {
    var vec: [Double] = Array(repeating: 0, count: 8)
    var error: Double = 1.5
    var adjustment: Double = 0
    var height: Double = 1e-05

    enum CodingKeys: String, CodingKey {
      case vec = "Vec"
      case error = "Error"
      case adjustment = "Adjustment"
      case height = "Height"
    }
  }

  var config: Config
  var debugConfig: [String: String]
  var coord: Coordinate
  var member: ConsulAgentMember
  var stats: [String: [String: String]]
  var meta: [String: String]

  enum CodingKeys: String, CodingKey {
    case config = "Config"
    case debugConfig = "DebugConfig"
    case coord = "Coord"
    case member = "Member"
    case stats = "Stats"
    case meta = "Meta"
  }
}

extension ConsulAgentState {
  /// The version the agent reports, as its node's `consul-version` meta.
  var version: String { self.node.meta?["consul-version"] ?? "1.17.0" }

  /// This agent as a gossip member: a single dev server.
  func member(datacenter: String) -> ConsulAgentMember {
    ConsulAgentMember(
      name: self.node.node,
      addr: self.node.address,
      port: 8301,
      tags: [
        "acls": "0", "bootstrap": "1", "build": "\(self.version):mesh", "dc": datacenter,
        "ft_fs": "1", "ft_si": "1", "grpc_port": "8502", "id": self.node.id, "port": "8300",
        "raft_vsn": "3", "role": "consul", "segment": "", "vsn": "2", "vsn_max": "3",
        "vsn_min": "2", "wan_join_port": "8302",
      ]
    )
  }

  /// `GET /v1/agent/self`.
  func agentSelf(datacenter: String) -> ConsulAgentSelf {
    ConsulAgentSelf(
      config: .init(
        datacenter: datacenter,
        primaryDatacenter: datacenter,
        nodeName: self.node.node,
        nodeID: self.node.id,
        revision: "mesh",
        server: true,
        version: self.version,
        buildDate: "2026-01-01T00:00:00Z"
      ),
      debugConfig: [:],
      coord: .init(),
      member: self.member(datacenter: datacenter),
      stats: [
        "agent": [
          "check_monitors": "0", "check_ttls": "\(self.ttlCheckCount)",
          "checks": "\(self.checks.count)", "services": "\(self.services.count)",
        ],
        "consul": ["server": "true", "leader": "true", "bootstrap": "true"],
      ],
      meta: self.node.meta ?? [:]
    )
  }

  private var ttlCheckCount: Int {
    self.checks.values.reduce(0) { count, check in
      if case .ttl = check.kind { return count + 1 }
      return count
    }
  }
}
