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

/// A health check's status.
public enum ConsulCheckStatus: String, Codable, Hashable, Sendable, CaseIterable {
  /// Every check passes.
  case passing
  /// Some check warns and none is critical: the instance is used, at its warning weight.
  case warning
  /// Some check fails: the instance leaves `?passing` results and the mesh's endpoint sets.
  case critical
}

/// A health check (`structs.HealthCheck`).
public struct ConsulHealthCheck: Codable, Hashable, Sendable {
  /// The node the check belongs to (`Node`).
  public var node: String
  /// The check's ID (`CheckID`).
  public var checkID: String
  /// The check's name (`Name`).
  public var name: String
  /// The check's status (`Status`).
  public var status: ConsulCheckStatus
  /// Free text for people (`Notes`).
  public var notes: String
  /// The last probe's or update's output (`Output`).
  public var output: String
  /// The instance the check belongs to (`ServiceID`); empty for a node check.
  public var serviceID: String
  /// The name of that instance's service (`ServiceName`).
  public var serviceName: String
  /// That instance's tags (`ServiceTags`).
  public var serviceTags: [String]
  /// The check's type (`Type`: `grpc`, `ttl`, `http`…).
  public var type: String
  /// How often the check runs (`Interval`), as Go duration text; empty for TTL checks.
  public var interval: String
  /// How long one probe may take (`Timeout`), as Go duration text.
  public var timeout: String
  /// The port a Connect proxy exposes the check on (`ExposedPort`); 0 for none.
  public var exposedPort: Int
  /// The check's definition (`Definition`), passed through unread.
  public var definition: ConsulJSONValue
  /// The Enterprise namespace (`Namespace`); absent in Consul CE.
  public var namespace: String?
  /// The index at which the check was registered (`CreateIndex`).
  public var createIndex: UInt64
  /// The index at which the check last changed (`ModifyIndex`).
  public var modifyIndex: UInt64

  /// Check `checkID`, named `name`, of `node`, in `status`; the other fields default to empty.
  public init(
    node: String,
    checkID: String,
    name: String,
    status: ConsulCheckStatus,
    notes: String = "",
    output: String = "",
    serviceID: String = "",
    serviceName: String = "",
    serviceTags: [String] = [],
    type: String = "",
    interval: String = "",
    timeout: String = "",
    createIndex: UInt64 = 0,
    modifyIndex: UInt64 = 0
  ) {
    self.node = node
    self.checkID = checkID
    self.name = name
    self.status = status
    self.notes = notes
    self.output = output
    self.serviceID = serviceID
    self.serviceName = serviceName
    self.serviceTags = serviceTags
    self.type = type
    self.interval = interval
    self.timeout = timeout
    self.exposedPort = 0
    self.definition = .emptyObject
    self.namespace = nil
    self.createIndex = createIndex
    self.modifyIndex = modifyIndex
  }

  enum CodingKeys: String, CodingKey {
    case node = "Node"
    case checkID = "CheckID"
    case name = "Name"
    case status = "Status"
    case notes = "Notes"
    case output = "Output"
    case serviceID = "ServiceID"
    case serviceName = "ServiceName"
    case serviceTags = "ServiceTags"
    case type = "Type"
    case interval = "Interval"
    case timeout = "Timeout"
    case exposedPort = "ExposedPort"
    case definition = "Definition"
    case namespace = "Namespace"
    case createIndex = "CreateIndex"
    case modifyIndex = "ModifyIndex"
  }

  /// Decodes a check; every field but `CheckID` and `Status` may be absent.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.node = try c.decodeIfPresent(String.self, forKey: .node) ?? ""
    self.checkID = try c.decode(String.self, forKey: .checkID)
    self.name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
    self.status = try c.decode(ConsulCheckStatus.self, forKey: .status)
    self.notes = try c.decodeIfPresent(String.self, forKey: .notes) ?? ""
    self.output = try c.decodeIfPresent(String.self, forKey: .output) ?? ""
    self.serviceID = try c.decodeIfPresent(String.self, forKey: .serviceID) ?? ""
    self.serviceName = try c.decodeIfPresent(String.self, forKey: .serviceName) ?? ""
    self.serviceTags = try c.decodeIfPresent([String].self, forKey: .serviceTags) ?? []
    self.type = try c.decodeIfPresent(String.self, forKey: .type) ?? ""
    self.interval = try c.decodeIfPresent(String.self, forKey: .interval) ?? ""
    self.timeout = try c.decodeIfPresent(String.self, forKey: .timeout) ?? ""
    self.exposedPort = try c.decodeIfPresent(Int.self, forKey: .exposedPort) ?? 0
    self.definition =
      try c.decodeIfPresent(ConsulJSONValue.self, forKey: .definition) ?? .emptyObject
    self.namespace = try c.decodeIfPresent(String.self, forKey: .namespace)
    self.createIndex = try c.decodeIfPresent(UInt64.self, forKey: .createIndex) ?? 0
    self.modifyIndex = try c.decodeIfPresent(UInt64.self, forKey: .modifyIndex) ?? 0
  }

  /// Encodes in Consul's shape: every field is written, `Namespace` only when set.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(self.node, forKey: .node)
    try c.encode(self.checkID, forKey: .checkID)
    try c.encode(self.name, forKey: .name)
    try c.encode(self.status, forKey: .status)
    try c.encode(self.notes, forKey: .notes)
    try c.encode(self.output, forKey: .output)
    try c.encode(self.serviceID, forKey: .serviceID)
    try c.encode(self.serviceName, forKey: .serviceName)
    try c.encode(self.serviceTags, forKey: .serviceTags)
    try c.encode(self.type, forKey: .type)
    try c.encode(self.interval, forKey: .interval)
    try c.encode(self.timeout, forKey: .timeout)
    try c.encode(self.exposedPort, forKey: .exposedPort)
    try c.encode(self.definition, forKey: .definition)
    try c.encodeIfPresent(self.namespace, forKey: .namespace)
    try c.encode(self.createIndex, forKey: .createIndex)
    try c.encode(self.modifyIndex, forKey: .modifyIndex)
  }
}

/// One entry of `GET /v1/health/service/:service`.
public struct ConsulServiceEntry: Codable, Hashable, Sendable {
  /// The node the instance runs on (`Node`).
  public var node: ConsulNode
  /// The instance (`Service`).
  public var service: ConsulNodeService
  /// The instance's checks and its node's (`Checks`).
  public var checks: [ConsulHealthCheck]

  /// The entry of `service` on `node`, with `checks`.
  public init(node: ConsulNode, service: ConsulNodeService, checks: [ConsulHealthCheck]) {
    self.node = node
    self.service = service
    self.checks = checks
  }

  enum CodingKeys: String, CodingKey {
    case node = "Node"
    case service = "Service"
    case checks = "Checks"
  }

  /// Decodes an entry; absent `Checks` are none.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.node = try c.decode(ConsulNode.self, forKey: .node)
    self.service = try c.decode(ConsulNodeService.self, forKey: .service)
    self.checks = try c.decodeIfPresent([ConsulHealthCheck].self, forKey: .checks) ?? []
  }

  /// The instance's aggregated status: critical if any check is critical, else warning if any
  /// warns, else passing (node-level checks count).
  public var aggregatedStatus: ConsulCheckStatus {
    if self.checks.contains(where: { $0.status == .critical }) { return .critical }
    if self.checks.contains(where: { $0.status == .warning }) { return .warning }
    return .passing
  }
}
