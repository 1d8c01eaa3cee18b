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
  public var checkID: String?
  public var name: String?
  public var status: ConsulCheckStatus?
  public var notes: String?
  /// `host:port` or `host:port/<grpc.health.v1 service name>`.
  public var grpc: String?
  public var grpcUseTLS: Bool?
  public var tlsServerName: String?
  public var tlsSkipVerify: Bool?
  public var ttl: String?
  public var interval: String?
  public var timeout: String?
  public var deregisterCriticalServiceAfter: String?
  public var http: String?
  public var tcp: String?
  public var successBeforePassing: Int?
  public var failuresBeforeWarning: Int?
  public var failuresBeforeCritical: Int?
  public var outputMaxSize: Int?

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
  public var id: String?
  public var name: String
  public var tags: [String]?
  public var address: String?
  public var port: Int?
  public var taggedAddresses: [String: ConsulServiceAddress]?
  public var meta: [String: String]?
  public var weights: ConsulWeights?
  public var enableTagOverride: Bool?
  public var check: ConsulCheckDefinition?
  public var checks: [ConsulCheckDefinition]?

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
  public var status: ConsulCheckStatus
  public var output: String

  public init(status: ConsulCheckStatus, output: String = "") {
    self.status = status
    self.output = output
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case status = "Status"
    case output = "Output"
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.status = try c.decode(ConsulCheckStatus.self, forKey: .status)
    self.output = try c.decodeIfPresent(String.self, forKey: .output) ?? ""
  }
}

/// One entry of `GET /v1/catalog/service/:service` (`structs.ServiceNode`).
public struct ConsulCatalogServiceNode: Codable, Hashable, Sendable {
  public var id: String
  public var node: String
  public var address: String
  public var datacenter: String
  public var taggedAddresses: [String: String]?
  public var nodeMeta: [String: String]?
  public var serviceKind: String
  public var serviceID: String
  public var serviceName: String
  public var serviceTags: [String]
  public var serviceAddress: String
  public var serviceTaggedAddresses: [String: ConsulServiceAddress]?
  public var serviceWeights: ConsulWeights
  public var serviceMeta: [String: String]?
  public var servicePort: Int
  public var serviceSocketPath: String
  public var serviceEnableTagOverride: Bool
  public var serviceProxy: ConsulJSONValue
  public var serviceConnect: ConsulJSONValue
  public var serviceLocality: ConsulJSONValue
  public var createIndex: UInt64
  public var modifyIndex: UInt64

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
