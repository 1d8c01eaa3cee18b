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

/// A service's `Weights`.
public struct ConsulWeights: Codable, Hashable, Sendable {
  /// The weight while every check passes (`Passing`).
  public var passing: Int
  /// The weight while some check warns (`Warning`).
  public var warning: Int

  /// Weights of `passing` and `warning`, both 1 by default, as in Consul.
  public init(passing: Int = 1, warning: Int = 1) {
    self.passing = passing
    self.warning = warning
  }

  enum CodingKeys: String, CodingKey {
    case passing = "Passing"
    case warning = "Warning"
  }
}

/// A tagged service address: `{"Address": …, "Port": …}`.
public struct ConsulServiceAddress: Codable, Hashable, Sendable {
  /// The address (`Address`).
  public var address: String
  /// The port (`Port`).
  public var port: Int

  /// A tagged address at `address` and `port`.
  public init(address: String, port: Int) {
    self.address = address
    self.port = port
  }

  enum CodingKeys: String, CodingKey {
    case address = "Address"
    case port = "Port"
  }

  private enum LowercaseKeys: String, CodingKey {
    case address
    case port
  }

  /// Decodes `Address` and `Port`, as Consul writes them, or `address` and `port`, as its
  /// documentation's samples do; an absent address is empty and an absent port 0.
  public init(from decoder: any Decoder) throws {
    // Consul writes Address/Port; its documentation samples show address/port.
    let container = try decoder.container(keyedBy: CodingKeys.self)
    let lowercase = try decoder.container(keyedBy: LowercaseKeys.self)
    self.address =
      try container.decodeIfPresent(String.self, forKey: .address)
      ?? lowercase.decodeIfPresent(String.self, forKey: .address) ?? ""
    self.port =
      try container.decodeIfPresent(Int.self, forKey: .port)
      ?? lowercase.decodeIfPresent(Int.self, forKey: .port) ?? 0
  }
}

/// A node (`structs.Node`).
public struct ConsulNode: Codable, Hashable, Sendable {
  /// The node's ID (`ID`).
  public var id: String
  /// The node's name (`Node`).
  public var node: String
  /// The node's address (`Address`): where its services are, unless they name their own.
  public var address: String
  /// The node's datacenter (`Datacenter`).
  public var datacenter: String
  /// The node's tagged addresses (`TaggedAddresses`: `lan`, `wan`…).
  public var taggedAddresses: [String: String]?
  /// The node's metadata (`Meta`); the mesh reads `zone` here when the service has none.
  public var meta: [String: String]?
  /// The index at which the node was created (`CreateIndex`).
  public var createIndex: UInt64
  /// The index at which the node last changed (`ModifyIndex`).
  public var modifyIndex: UInt64

  /// A node named `node`, with ID `id`, at `address` in `datacenter`.
  public init(
    id: String,
    node: String,
    address: String,
    datacenter: String,
    taggedAddresses: [String: String]? = nil,
    meta: [String: String]? = nil,
    createIndex: UInt64 = 0,
    modifyIndex: UInt64 = 0
  ) {
    self.id = id
    self.node = node
    self.address = address
    self.datacenter = datacenter
    self.taggedAddresses = taggedAddresses
    self.meta = meta
    self.createIndex = createIndex
    self.modifyIndex = modifyIndex
  }

  enum CodingKeys: String, CodingKey {
    case id = "ID"
    case node = "Node"
    case address = "Address"
    case datacenter = "Datacenter"
    case taggedAddresses = "TaggedAddresses"
    case meta = "Meta"
    case createIndex = "CreateIndex"
    case modifyIndex = "ModifyIndex"
  }

  /// Decodes a node; every field but `Node` may be absent.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
    self.node = try c.decode(String.self, forKey: .node)
    self.address = try c.decodeIfPresent(String.self, forKey: .address) ?? ""
    self.datacenter = try c.decodeIfPresent(String.self, forKey: .datacenter) ?? ""
    self.taggedAddresses = try c.decodeIfPresent([String: String].self, forKey: .taggedAddresses)
    self.meta = try c.decodeIfPresent([String: String].self, forKey: .meta)
    self.createIndex = try c.decodeIfPresent(UInt64.self, forKey: .createIndex) ?? 0
    self.modifyIndex = try c.decodeIfPresent(UInt64.self, forKey: .modifyIndex) ?? 0
  }

  /// Encodes in Consul's shape: every field is written, unset maps as `null`, as Go does.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(self.id, forKey: .id)
    try c.encode(self.node, forKey: .node)
    try c.encode(self.address, forKey: .address)
    try c.encode(self.datacenter, forKey: .datacenter)
    try c.encode(self.taggedAddresses, forKey: .taggedAddresses)  // null when nil, as Go does
    try c.encode(self.meta, forKey: .meta)
    try c.encode(self.createIndex, forKey: .createIndex)
    try c.encode(self.modifyIndex, forKey: .modifyIndex)
  }
}

/// A service instance on a node (`structs.NodeService`), as in health results.
public struct ConsulNodeService: Codable, Hashable, Sendable {
  /// The instance's kind (`Kind`); nil or empty for a typical service (not a proxy or gateway).
  public var kind: String?
  /// The instance's ID (`ID`), unique on its node.
  public var id: String
  /// The service's name (`Service`).
  public var service: String
  /// The instance's tags (`Tags`).
  public var tags: [String]
  /// The instance's own address (`Address`); empty for the node's.
  public var address: String
  /// The instance's tagged addresses (`TaggedAddresses`).
  public var taggedAddresses: [String: ConsulServiceAddress]?
  /// The instance's metadata (`Meta`); the mesh reads its zone from `zone`.
  public var meta: [String: String]?
  /// Absent on the wire when 0.
  public var port: Int
  /// The instance's weights (`Weights`).
  public var weights: ConsulWeights
  /// Whether the catalog may change the instance's tags (`EnableTagOverride`).
  public var enableTagOverride: Bool
  /// Proxy settings (`Proxy`), passed through unread.
  public var proxy: ConsulJSONValue
  /// Connect settings (`Connect`), passed through unread.
  public var connect: ConsulJSONValue
  /// The cluster peer the instance was imported from (`PeerName`); empty for a local one.
  public var peerName: String
  /// Enterprise only; absent in CE.
  public var namespace: String?
  /// The index at which the instance was registered (`CreateIndex`).
  public var createIndex: UInt64
  /// The index at which the instance last changed (`ModifyIndex`).
  public var modifyIndex: UInt64

  /// The proxy block Consul writes for a typical (non-proxy) service.
  public static let typicalProxy = ConsulJSONValue.object([
    "Mode": .string(""), "MeshGateway": .emptyObject, "Expose": .emptyObject,
  ])

  /// Instance `id` of `service`, a typical (non-proxy) service, with Consul's defaults for what
  /// is not given.
  public init(
    id: String,
    service: String,
    tags: [String] = [],
    address: String = "",
    taggedAddresses: [String: ConsulServiceAddress]? = nil,
    meta: [String: String]? = nil,
    port: Int = 0,
    weights: ConsulWeights = ConsulWeights(),
    enableTagOverride: Bool = false,
    createIndex: UInt64 = 0,
    modifyIndex: UInt64 = 0
  ) {
    self.kind = nil
    self.id = id
    self.service = service
    self.tags = tags
    self.address = address
    self.taggedAddresses = taggedAddresses
    self.meta = meta
    self.port = port
    self.weights = weights
    self.enableTagOverride = enableTagOverride
    self.proxy = Self.typicalProxy
    self.connect = .emptyObject
    self.peerName = ""
    self.namespace = nil
    self.createIndex = createIndex
    self.modifyIndex = modifyIndex
  }

  enum CodingKeys: String, CodingKey {
    case kind = "Kind"
    case id = "ID"
    case service = "Service"
    case tags = "Tags"
    case address = "Address"
    case taggedAddresses = "TaggedAddresses"
    case meta = "Meta"
    case port = "Port"
    case weights = "Weights"
    case enableTagOverride = "EnableTagOverride"
    case proxy = "Proxy"
    case connect = "Connect"
    case peerName = "PeerName"
    case namespace = "Namespace"
    case createIndex = "CreateIndex"
    case modifyIndex = "ModifyIndex"
  }

  /// Decodes an instance; every field but `ID` and `Service` may be absent.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.kind = try c.decodeIfPresent(String.self, forKey: .kind)
    self.id = try c.decode(String.self, forKey: .id)
    self.service = try c.decode(String.self, forKey: .service)
    self.tags = try c.decodeIfPresent([String].self, forKey: .tags) ?? []
    self.address = try c.decodeIfPresent(String.self, forKey: .address) ?? ""
    self.taggedAddresses = try c.decodeIfPresent(
      [String: ConsulServiceAddress].self,
      forKey: .taggedAddresses
    )
    self.meta = try c.decodeIfPresent([String: String].self, forKey: .meta)
    self.port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 0
    self.weights = try c.decodeIfPresent(ConsulWeights.self, forKey: .weights) ?? ConsulWeights()
    self.enableTagOverride =
      try c.decodeIfPresent(Bool.self, forKey: .enableTagOverride) ?? false
    self.proxy = try c.decodeIfPresent(ConsulJSONValue.self, forKey: .proxy) ?? Self.typicalProxy
    self.connect = try c.decodeIfPresent(ConsulJSONValue.self, forKey: .connect) ?? .emptyObject
    self.peerName = try c.decodeIfPresent(String.self, forKey: .peerName) ?? ""
    self.namespace = try c.decodeIfPresent(String.self, forKey: .namespace)
    self.createIndex = try c.decodeIfPresent(UInt64.self, forKey: .createIndex) ?? 0
    self.modifyIndex = try c.decodeIfPresent(UInt64.self, forKey: .modifyIndex) ?? 0
  }

  /// Encodes in Consul's shape, leaving out what Go's `omitempty` leaves out: an empty `Kind`,
  /// empty `TaggedAddresses` and a zero `Port`.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(self.kind.flatMap { $0.isEmpty ? nil : $0 }, forKey: .kind)
    try c.encode(self.id, forKey: .id)
    try c.encode(self.service, forKey: .service)
    try c.encode(self.tags, forKey: .tags)
    try c.encode(self.address, forKey: .address)
    if let tagged = self.taggedAddresses, !tagged.isEmpty {  // omitempty
      try c.encode(tagged, forKey: .taggedAddresses)
    }
    try c.encode(self.meta, forKey: .meta)
    if self.port != 0 {  // omitempty
      try c.encode(self.port, forKey: .port)
    }
    try c.encode(self.weights, forKey: .weights)
    try c.encode(self.enableTagOverride, forKey: .enableTagOverride)
    try c.encode(self.proxy, forKey: .proxy)
    try c.encode(self.connect, forKey: .connect)
    try c.encode(self.peerName, forKey: .peerName)
    try c.encodeIfPresent(self.namespace, forKey: .namespace)
    try c.encode(self.createIndex, forKey: .createIndex)
    try c.encode(self.modifyIndex, forKey: .modifyIndex)
  }
}
