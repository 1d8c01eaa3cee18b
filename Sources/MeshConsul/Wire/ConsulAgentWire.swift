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

/// A check in a service registration (`CheckType`).
///
/// Durations are Go duration strings; build them with ``ConsulDuration/format(_:)``.
public struct ConsulCheckDefinition: Codable, Hashable, Sendable {
  /// The check's ID (`CheckID`); nil lets Consul derive one from the service ID.
  public var checkID: String?
  /// The check's name (`Name`).
  public var name: String?
  /// The check's status when registered (`Status`); Consul starts a check critical by default.
  public var status: ConsulCheckStatus?
  /// Free text for people (`Notes`).
  public var notes: String?
  /// `host:port` or `host:port/<grpc.health.v1 service name>`.
  public var grpc: String?
  /// Whether the gRPC check connects with TLS (`GRPCUseTLS`).
  public var grpcUseTLS: Bool?
  /// The server name a TLS check sends and verifies (`TLSServerName`).
  public var tlsServerName: String?
  /// Whether a TLS check skips verifying the server's certificate (`TLSSkipVerify`).
  public var tlsSkipVerify: Bool?
  /// A TTL check's time to live (`TTL`): the check turns critical when no update comes in time.
  public var ttl: String?
  /// How often the check runs (`Interval`).
  public var interval: String?
  /// How long one probe may take (`Timeout`).
  public var timeout: String?
  /// How long the check may stay critical before Consul deregisters the service
  /// (`DeregisterCriticalServiceAfter`).
  public var deregisterCriticalServiceAfter: String?
  /// The URL of an HTTP check (`HTTP`); the embedded agent runs gRPC and TTL checks only.
  public var http: String?
  /// The `host:port` of a TCP check (`TCP`); the embedded agent runs gRPC and TTL checks only.
  public var tcp: String?
  /// Passing probes in a row before the check turns passing (`SuccessBeforePassing`).
  public var successBeforePassing: Int?
  /// Failed probes in a row before the check turns warning (`FailuresBeforeWarning`).
  public var failuresBeforeWarning: Int?
  /// Failed probes in a row before the check turns critical (`FailuresBeforeCritical`).
  public var failuresBeforeCritical: Int?
  /// The most bytes of output Consul keeps for the check (`OutputMaxSize`).
  public var outputMaxSize: Int?

  /// A check definition with the fields given; the `grpc(_:interval:…)` and `ttl(_:…)` factories
  /// build the usual ones.
  public init(
    checkID: String? = nil,
    name: String? = nil,
    status: ConsulCheckStatus? = nil,
    notes: String? = nil,
    grpc: String? = nil,
    grpcUseTLS: Bool? = nil,
    tlsServerName: String? = nil,
    tlsSkipVerify: Bool? = nil,
    ttl: String? = nil,
    interval: String? = nil,
    timeout: String? = nil,
    deregisterCriticalServiceAfter: String? = nil
  ) {
    self.checkID = checkID
    self.name = name
    self.status = status
    self.notes = notes
    self.grpc = grpc
    self.grpcUseTLS = grpcUseTLS
    self.tlsServerName = tlsServerName
    self.tlsSkipVerify = tlsSkipVerify
    self.ttl = ttl
    self.interval = interval
    self.timeout = timeout
    self.deregisterCriticalServiceAfter = deregisterCriticalServiceAfter
  }

  /// A gRPC health check of `target` (`host:port[/service]`) every `interval`.
  public static func grpc(
    _ target: String,
    interval: Duration,
    timeout: Duration? = nil,
    useTLS: Bool = false,
    tlsServerName: String? = nil,
    tlsSkipVerify: Bool? = nil,
    deregisterCriticalServiceAfter: Duration? = nil,
    name: String? = nil,
    checkID: String? = nil
  ) -> Self {
    Self(
      checkID: checkID,
      name: name,
      grpc: target,
      grpcUseTLS: useTLS ? true : nil,
      tlsServerName: tlsServerName,
      tlsSkipVerify: tlsSkipVerify,
      interval: ConsulDuration.format(interval),
      timeout: timeout.map(ConsulDuration.format),
      deregisterCriticalServiceAfter: deregisterCriticalServiceAfter.map(ConsulDuration.format)
    )
  }

  /// A TTL check the service keeps passing with heartbeats.
  public static func ttl(
    _ ttl: Duration,
    status: ConsulCheckStatus? = nil,
    deregisterCriticalServiceAfter: Duration? = nil,
    name: String? = nil,
    checkID: String? = nil,
    notes: String? = nil
  ) -> Self {
    Self(
      checkID: checkID,
      name: name,
      status: status,
      notes: notes,
      ttl: ConsulDuration.format(ttl),
      deregisterCriticalServiceAfter: deregisterCriticalServiceAfter.map(ConsulDuration.format)
    )
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case checkID = "CheckID"
    case name = "Name"
    case status = "Status"
    case notes = "Notes"
    case grpc = "GRPC"
    case grpcUseTLS = "GRPCUseTLS"
    case tlsServerName = "TLSServerName"
    case tlsSkipVerify = "TLSSkipVerify"
    case ttl = "TTL"
    case interval = "Interval"
    case timeout = "Timeout"
    case deregisterCriticalServiceAfter = "DeregisterCriticalServiceAfter"
    case http = "HTTP"
    case tcp = "TCP"
    case successBeforePassing = "SuccessBeforePassing"
    case failuresBeforeWarning = "FailuresBeforeWarning"
    case failuresBeforeCritical = "FailuresBeforeCritical"
    case outputMaxSize = "OutputMaxSize"
  }
}

/// The body of `PUT /v1/agent/service/register` (`ServiceDefinition`).
public struct ConsulServiceRegistration: Codable, Hashable, Sendable {
  /// The instance's ID (`ID`), unique on its node; nil registers it under ``name``.
  public var id: String?
  /// The service's name (`Name`), which clients discover it by.
  public var name: String
  /// Tags (`Tags`), which health queries can filter on.
  public var tags: [String]?
  /// The address clients reach the instance at (`Address`); nil or empty for the node's.
  public var address: String?
  /// The port (`Port`).
  public var port: Int?
  /// More addresses, by name (`TaggedAddresses`: `lan_ipv4`, `wan`…).
  public var taggedAddresses: [String: ConsulServiceAddress]?
  /// Metadata (`Meta`); the mesh reads the instance's zone from `zone`.
  public var meta: [String: String]?
  /// Weights for weighted balancing (`Weights`); nil for Consul's, 1 and 1.
  public var weights: ConsulWeights?
  /// Whether the catalog may change the instance's tags (`EnableTagOverride`); sent only when
  /// set.
  public var enableTagOverride: Bool?
  /// A check (`Check`); sent as `null` when nil, as Consul's Go client does.
  public var check: ConsulCheckDefinition?
  /// More checks (`Checks`); sent as `null` when nil.
  public var checks: [ConsulCheckDefinition]?

  /// A registration of `name`; the fields not given are left out of the request.
  public init(
    id: String? = nil,
    name: String,
    tags: [String]? = nil,
    address: String? = nil,
    port: Int? = nil,
    taggedAddresses: [String: ConsulServiceAddress]? = nil,
    meta: [String: String]? = nil,
    weights: ConsulWeights? = nil,
    check: ConsulCheckDefinition? = nil,
    checks: [ConsulCheckDefinition]? = nil
  ) {
    self.id = id
    self.name = name
    self.tags = tags
    self.address = address
    self.port = port
    self.taggedAddresses = taggedAddresses
    self.meta = meta
    self.weights = weights
    self.enableTagOverride = nil
    self.check = check
    self.checks = checks
  }

  /// Every check of the registration, `Check` first, then `Checks`.
  public var allChecks: [ConsulCheckDefinition] {
    (self.check.map { [$0] } ?? []) + (self.checks ?? [])
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case id = "ID"
    case name = "Name"
    case tags = "Tags"
    case address = "Address"
    case port = "Port"
    case taggedAddresses = "TaggedAddresses"
    case meta = "Meta"
    case weights = "Weights"
    case enableTagOverride = "EnableTagOverride"
    case check = "Check"
    case checks = "Checks"
  }

  /// Encodes as Consul's Go client does: unset fields are left out, except `Check` and
  /// `Checks`, which are written as `null`.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(self.id, forKey: .id)
    try c.encode(self.name, forKey: .name)
    try c.encodeIfPresent(self.tags, forKey: .tags)
    try c.encodeIfPresent(self.address, forKey: .address)
    try c.encodeIfPresent(self.port, forKey: .port)
    try c.encodeIfPresent(self.taggedAddresses, forKey: .taggedAddresses)
    try c.encodeIfPresent(self.meta, forKey: .meta)
    try c.encodeIfPresent(self.weights, forKey: .weights)
    try c.encodeIfPresent(self.enableTagOverride, forKey: .enableTagOverride)
    // Consul's Go client always sends these two keys, as null when unset.
    try c.encode(self.check, forKey: .check)
    try c.encode(self.checks, forKey: .checks)
  }
}

/// The body of `PUT /v1/agent/check/update/:check_id`.
public struct ConsulCheckUpdate: Codable, Hashable, Sendable {
  /// The check's new status (`Status`).
  public var status: ConsulCheckStatus
  /// The check's new output (`Output`), shown in health results.
  public var output: String

  /// An update to `status`, with `output`.
  public init(status: ConsulCheckStatus, output: String = "") {
    self.status = status
    self.output = output
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case status = "Status"
    case output = "Output"
  }

  /// Decodes an update; a missing `Output` is empty.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.status = try c.decode(ConsulCheckStatus.self, forKey: .status)
    self.output = try c.decodeIfPresent(String.self, forKey: .output) ?? ""
  }
}

/// One entry of `GET /v1/catalog/service/:service` (`structs.ServiceNode`).
public struct ConsulCatalogServiceNode: Codable, Hashable, Sendable {
  /// The node's ID (`ID`).
  public var id: String
  /// The node's name (`Node`).
  public var node: String
  /// The node's address (`Address`).
  public var address: String
  /// The node's datacenter (`Datacenter`).
  public var datacenter: String
  /// The node's tagged addresses (`TaggedAddresses`).
  public var taggedAddresses: [String: String]?
  /// The node's metadata (`NodeMeta`).
  public var nodeMeta: [String: String]?
  /// The instance's kind (`ServiceKind`); empty for a typical service.
  public var serviceKind: String
  /// The instance's ID (`ServiceID`).
  public var serviceID: String
  /// The service's name (`ServiceName`).
  public var serviceName: String
  /// The instance's tags (`ServiceTags`).
  public var serviceTags: [String]
  /// The instance's own address (`ServiceAddress`); empty for the node's.
  public var serviceAddress: String
  /// The instance's tagged addresses (`ServiceTaggedAddresses`).
  public var serviceTaggedAddresses: [String: ConsulServiceAddress]?
  /// The instance's weights (`ServiceWeights`).
  public var serviceWeights: ConsulWeights
  /// The instance's metadata (`ServiceMeta`).
  public var serviceMeta: [String: String]?
  /// The instance's port (`ServicePort`).
  public var servicePort: Int
  /// The instance's Unix socket (`ServiceSocketPath`); empty when it listens on a port.
  public var serviceSocketPath: String
  /// Whether the catalog may change the instance's tags (`ServiceEnableTagOverride`).
  public var serviceEnableTagOverride: Bool
  /// Proxy settings (`ServiceProxy`), passed through unread.
  public var serviceProxy: ConsulJSONValue
  /// Connect settings (`ServiceConnect`), passed through unread.
  public var serviceConnect: ConsulJSONValue
  /// Locality (`ServiceLocality`), passed through unread.
  public var serviceLocality: ConsulJSONValue
  /// The index at which the entry was created (`CreateIndex`).
  public var createIndex: UInt64
  /// The index at which the entry last changed (`ModifyIndex`).
  public var modifyIndex: UInt64

  /// The catalog entry of `service` on `node`.
  public init(node: ConsulNode, service: ConsulNodeService) {
    self.id = node.id
    self.node = node.node
    self.address = node.address
    self.datacenter = node.datacenter
    self.taggedAddresses = node.taggedAddresses
    self.nodeMeta = node.meta
    self.serviceKind = service.kind ?? ""
    self.serviceID = service.id
    self.serviceName = service.service
    self.serviceTags = service.tags
    self.serviceAddress = service.address
    self.serviceTaggedAddresses = service.taggedAddresses
    self.serviceWeights = service.weights
    self.serviceMeta = service.meta
    self.servicePort = service.port
    self.serviceSocketPath = ""
    self.serviceEnableTagOverride = service.enableTagOverride
    self.serviceProxy = service.proxy
    self.serviceConnect = service.connect
    self.serviceLocality = .null
    self.createIndex = service.createIndex
    self.modifyIndex = service.modifyIndex
  }

  enum CodingKeys: String, CodingKey {
    case id = "ID"
    case node = "Node"
    case address = "Address"
    case datacenter = "Datacenter"
    case taggedAddresses = "TaggedAddresses"
    case nodeMeta = "NodeMeta"
    case serviceKind = "ServiceKind"
    case serviceID = "ServiceID"
    case serviceName = "ServiceName"
    case serviceTags = "ServiceTags"
    case serviceAddress = "ServiceAddress"
    case serviceTaggedAddresses = "ServiceTaggedAddresses"
    case serviceWeights = "ServiceWeights"
    case serviceMeta = "ServiceMeta"
    case servicePort = "ServicePort"
    case serviceSocketPath = "ServiceSocketPath"
    case serviceEnableTagOverride = "ServiceEnableTagOverride"
    case serviceProxy = "ServiceProxy"
    case serviceConnect = "ServiceConnect"
    case serviceLocality = "ServiceLocality"
    case createIndex = "CreateIndex"
    case modifyIndex = "ModifyIndex"
  }

  /// Decodes an entry; fields other than `Node`, `ServiceID` and `ServiceName` may be absent.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
    self.node = try c.decode(String.self, forKey: .node)
    self.address = try c.decodeIfPresent(String.self, forKey: .address) ?? ""
    self.datacenter = try c.decodeIfPresent(String.self, forKey: .datacenter) ?? ""
    self.taggedAddresses = try c.decodeIfPresent([String: String].self, forKey: .taggedAddresses)
    self.nodeMeta = try c.decodeIfPresent([String: String].self, forKey: .nodeMeta)
    self.serviceKind = try c.decodeIfPresent(String.self, forKey: .serviceKind) ?? ""
    self.serviceID = try c.decode(String.self, forKey: .serviceID)
    self.serviceName = try c.decode(String.self, forKey: .serviceName)
    self.serviceTags = try c.decodeIfPresent([String].self, forKey: .serviceTags) ?? []
    self.serviceAddress = try c.decodeIfPresent(String.self, forKey: .serviceAddress) ?? ""
    self.serviceTaggedAddresses = try c.decodeIfPresent(
      [String: ConsulServiceAddress].self,
      forKey: .serviceTaggedAddresses
    )
    self.serviceWeights =
      try c.decodeIfPresent(ConsulWeights.self, forKey: .serviceWeights) ?? ConsulWeights()
    self.serviceMeta = try c.decodeIfPresent([String: String].self, forKey: .serviceMeta)
    self.servicePort = try c.decodeIfPresent(Int.self, forKey: .servicePort) ?? 0
    self.serviceSocketPath = try c.decodeIfPresent(String.self, forKey: .serviceSocketPath) ?? ""
    self.serviceEnableTagOverride =
      try c.decodeIfPresent(Bool.self, forKey: .serviceEnableTagOverride) ?? false
    self.serviceProxy =
      try c.decodeIfPresent(ConsulJSONValue.self, forKey: .serviceProxy)
      ?? ConsulNodeService.typicalProxy
    self.serviceConnect =
      try c.decodeIfPresent(ConsulJSONValue.self, forKey: .serviceConnect) ?? .emptyObject
    self.serviceLocality =
      try c.decodeIfPresent(ConsulJSONValue.self, forKey: .serviceLocality) ?? .null
    self.createIndex = try c.decodeIfPresent(UInt64.self, forKey: .createIndex) ?? 0
    self.modifyIndex = try c.decodeIfPresent(UInt64.self, forKey: .modifyIndex) ?? 0
  }

  /// Encodes in Consul's shape: every field is written (`null` where Consul writes it), and
  /// `ServiceTaggedAddresses` only when it has an entry.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(self.id, forKey: .id)
    try c.encode(self.node, forKey: .node)
    try c.encode(self.address, forKey: .address)
    try c.encode(self.datacenter, forKey: .datacenter)
    try c.encode(self.taggedAddresses, forKey: .taggedAddresses)
    try c.encode(self.nodeMeta, forKey: .nodeMeta)
    try c.encode(self.serviceKind, forKey: .serviceKind)
    try c.encode(self.serviceID, forKey: .serviceID)
    try c.encode(self.serviceName, forKey: .serviceName)
    try c.encode(self.serviceTags, forKey: .serviceTags)
    try c.encode(self.serviceAddress, forKey: .serviceAddress)
    if let tagged = self.serviceTaggedAddresses, !tagged.isEmpty {
      try c.encode(tagged, forKey: .serviceTaggedAddresses)
    }
    try c.encode(self.serviceWeights, forKey: .serviceWeights)
    try c.encode(self.serviceMeta, forKey: .serviceMeta)
    try c.encode(self.servicePort, forKey: .servicePort)
    try c.encode(self.serviceSocketPath, forKey: .serviceSocketPath)
    try c.encode(self.serviceEnableTagOverride, forKey: .serviceEnableTagOverride)
    try c.encode(self.serviceProxy, forKey: .serviceProxy)
    try c.encode(self.serviceConnect, forKey: .serviceConnect)
    try c.encode(self.serviceLocality, forKey: .serviceLocality)
    try c.encode(self.createIndex, forKey: .createIndex)
    try c.encode(self.modifyIndex, forKey: .modifyIndex)
  }
}
