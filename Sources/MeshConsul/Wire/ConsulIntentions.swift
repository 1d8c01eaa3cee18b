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

// Consul's intentions (1.9 and later: views of `service-intentions` config entries), as its
// HTTP API reads and writes them (`agent/structs/intention.go`,
// `agent/structs/config_entry_intentions.go`; Consul CE, one namespace). Optional fields are
// omitted when nil, as Go's `omitempty`; fields in Go's declaration order.

/// One intention (`structs.Intention`): whether `sourceName` may call `destinationName`.
public struct ConsulIntention: Codable, Hashable, Sendable {
  /// Legacy intentions only (made with `POST /v1/connect/intentions`).
  public var id: String?
  public var description: String?
  /// `default` in Consul CE.
  public var sourceNS: String
  /// A service name, or `*`.
  public var sourceName: String
  /// A cluster peer the source is in (Consul 1.13+); nil: this cluster.
  public var sourcePeer: String?
  /// The source's admin partition (Enterprise); nil: the default.
  public var sourcePartition: String?
  /// A sameness group the source is (Consul 1.16+); nil: none.
  public var sourceSamenessGroup: String?
  public var destinationNS: String
  /// A service name, or `*`.
  public var destinationName: String
  /// `consul`.
  public var sourceType: String
  /// `allow` or `deny`; nil for an L7 intention (it has ``permissions``).
  public var action: String?
  /// An L7 intention's permissions, in order: the first that matches decides.
  public var permissions: [ConsulIntentionPermission]?
  /// JWT requirements of every request from the source (Consul 1.16+), kept as sent.
  public var jwt: ConsulJSONValue?
  public var meta: [String: String]?
  /// 9 (exact source and destination), 8 (`*` source), 6 (`*` destination), 5 (both `*`).
  public var precedence: Int
  public var createIndex: UInt64
  public var modifyIndex: UInt64

  public init(
    sourceName: String,
    destinationName: String,
    action: String?,
    permissions: [ConsulIntentionPermission]? = nil,
    description: String? = nil,
    meta: [String: String]? = nil,
    precedence: Int? = nil,
    createIndex: UInt64 = 0,
    modifyIndex: UInt64 = 0
  ) {
    self.id = nil
    self.description = description
    self.sourceNS = "default"
    self.sourceName = sourceName
    self.sourcePeer = nil
    self.sourcePartition = nil
    self.sourceSamenessGroup = nil
    self.destinationNS = "default"
    self.destinationName = destinationName
    self.sourceType = "consul"
    self.action = action
    self.permissions = permissions
    self.jwt = nil
    self.meta = meta
    self.precedence =
      precedence ?? Self.precedence(source: sourceName, destination: destinationName)
    self.createIndex = createIndex
    self.modifyIndex = modifyIndex
  }

  /// Consul CE's precedence of an intention from `source` to `destination`.
  public static func precedence(source: String, destination: String) -> Int {
    switch (source == "*", destination == "*") {
    case (false, false): return 9
    case (true, false): return 8
    case (false, true): return 6
    case (true, true): return 5
    }
  }

  enum CodingKeys: String, CodingKey {
    case id = "ID"
    case description = "Description"
    case sourceNS = "SourceNS"
    case sourceName = "SourceName"
    case sourcePeer = "SourcePeer"
    case sourcePartition = "SourcePartition"
    case sourceSamenessGroup = "SourceSamenessGroup"
    case destinationNS = "DestinationNS"
    case destinationName = "DestinationName"
    case sourceType = "SourceType"
    case action = "Action"
    case permissions = "Permissions"
    case jwt = "JWT"
    case meta = "Meta"
    case precedence = "Precedence"
    case createIndex = "CreateIndex"
    case modifyIndex = "ModifyIndex"
  }

  // Consul's JSON may carry more (CreatedAt, SourcePeer, Hash, JWT, ...); unknown keys are
  // ignored, and a field left out takes Consul's empty value.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.id = try container.decodeIfPresent(String.self, forKey: .id)
    self.description = try container.decodeIfPresent(String.self, forKey: .description)
    self.sourceNS = try container.decodeIfPresent(String.self, forKey: .sourceNS) ?? "default"
    self.sourceName = try container.decodeIfPresent(String.self, forKey: .sourceName) ?? ""
    self.sourcePeer = try container.decodeIfPresent(String.self, forKey: .sourcePeer)
    self.sourcePartition = try container.decodeIfPresent(String.self, forKey: .sourcePartition)
    self.sourceSamenessGroup = try container.decodeIfPresent(
      String.self,
      forKey: .sourceSamenessGroup
    )
    self.destinationNS =
      try container.decodeIfPresent(String.self, forKey: .destinationNS) ?? "default"
    self.destinationName =
      try container.decodeIfPresent(String.self, forKey: .destinationName) ?? ""
    self.sourceType = try container.decodeIfPresent(String.self, forKey: .sourceType) ?? "consul"
    self.action = try container.decodeIfPresent(String.self, forKey: .action)
    self.permissions = try container.decodeIfPresent(
      [ConsulIntentionPermission].self,
      forKey: .permissions
    )
    self.jwt = try container.decodeIfPresent(ConsulJSONValue.self, forKey: .jwt)
    self.meta = try container.decodeIfPresent([String: String].self, forKey: .meta)
    self.precedence = try container.decodeIfPresent(Int.self, forKey: .precedence) ?? 0
    self.createIndex = try container.decodeIfPresent(UInt64.self, forKey: .createIndex) ?? 0
    self.modifyIndex = try container.decodeIfPresent(UInt64.self, forKey: .modifyIndex) ?? 0
  }
}

/// One permission of an L7 intention (`IntentionPermission`).
public struct ConsulIntentionPermission: Codable, Hashable, Sendable {
  /// `allow` or `deny`.
  public var action: String
  /// What requests it concerns; gRPC methods are HTTP/2 paths (`/package.Service/Method`).
  public var http: ConsulIntentionHTTPPermission?
  /// JWT requirements (Consul 1.16+), kept as sent.
  public var jwt: ConsulJSONValue?

  public init(action: String, http: ConsulIntentionHTTPPermission?, jwt: ConsulJSONValue? = nil) {
    self.action = action
    self.http = http
    self.jwt = jwt
  }

  enum CodingKeys: String, CodingKey {
    case action = "Action"
    case http = "HTTP"
    case jwt = "JWT"
  }
}

/// The HTTP conditions of a permission (`IntentionHTTPPermission`): at most one path condition.
public struct ConsulIntentionHTTPPermission: Codable, Hashable, Sendable {
  public var pathExact: String?
  public var pathPrefix: String?
  public var pathRegex: String?
  public var header: [ConsulIntentionHeaderPermission]?
  /// Upper-case HTTP methods (gRPC calls are `POST`).
  public var methods: [String]?

  public init(
    pathExact: String? = nil,
    pathPrefix: String? = nil,
    pathRegex: String? = nil,
    header: [ConsulIntentionHeaderPermission]? = nil,
    methods: [String]? = nil
  ) {
    self.pathExact = pathExact
    self.pathPrefix = pathPrefix
    self.pathRegex = pathRegex
    self.header = header
    self.methods = methods
  }

  enum CodingKeys: String, CodingKey {
    case pathExact = "PathExact"
    case pathPrefix = "PathPrefix"
    case pathRegex = "PathRegex"
    case header = "Header"
    case methods = "Methods"
  }
}

/// A header condition of a permission (`IntentionHTTPHeaderPermission`).
public struct ConsulIntentionHeaderPermission: Codable, Hashable, Sendable {
  public var name: String
  public var present: Bool?
  public var exact: String?
  public var prefix: String?
  public var suffix: String?
  public var contains: String?
  public var regex: String?
  public var invert: Bool?
  public var ignoreCase: Bool?

  public init(name: String, present: Bool? = nil, exact: String? = nil, invert: Bool? = nil) {
    self.name = name
    self.present = present
    self.exact = exact
    self.invert = invert
  }

  enum CodingKeys: String, CodingKey {
    case name = "Name"
    case present = "Present"
    case exact = "Exact"
    case prefix = "Prefix"
    case suffix = "Suffix"
    case contains = "Contains"
    case regex = "Regex"
    case invert = "Invert"
    case ignoreCase = "IgnoreCase"
  }
}

/// A `service-intentions` config entry (`ServiceIntentionsConfigEntry`): every intention whose
/// destination is ``name``.
public struct ConsulServiceIntentions: Codable, Hashable, Sendable {
  /// `service-intentions`.
  public var kind: String
  /// The destination: a service name, or `*`.
  public var name: String
  /// One per source, most specific first.
  public var sources: [ConsulSourceIntention]
  public var meta: [String: String]?
  public var createIndex: UInt64
  public var modifyIndex: UInt64

  public init(name: String, sources: [ConsulSourceIntention], meta: [String: String]? = nil) {
    self.kind = "service-intentions"
    self.name = name
    self.sources = sources
    self.meta = meta
    self.createIndex = 0
    self.modifyIndex = 0
  }

  enum CodingKeys: String, CodingKey {
    case kind = "Kind"
    case name = "Name"
    case sources = "Sources"
    case meta = "Meta"
    case createIndex = "CreateIndex"
    case modifyIndex = "ModifyIndex"
  }

  // A body being written has no indexes yet.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.kind = try container.decodeIfPresent(String.self, forKey: .kind) ?? "service-intentions"
    self.name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
    self.sources =
      try container.decodeIfPresent([ConsulSourceIntention].self, forKey: .sources) ?? []
    self.meta = try container.decodeIfPresent([String: String].self, forKey: .meta)
    self.createIndex = try container.decodeIfPresent(UInt64.self, forKey: .createIndex) ?? 0
    self.modifyIndex = try container.decodeIfPresent(UInt64.self, forKey: .modifyIndex) ?? 0
  }
}

/// One source of a `service-intentions` entry (`SourceIntention`).
public struct ConsulSourceIntention: Codable, Hashable, Sendable {
  /// A service name, or `*`.
  public var name: String
  /// `allow` or `deny`; nil with ``permissions``.
  public var action: String?
  public var permissions: [ConsulIntentionPermission]?
  /// Computed by Consul on write.
  public var precedence: Int
  /// `consul`.
  public var type: String
  public var description: String?
  /// A cluster peer the source is in; nil: this cluster.
  public var peer: String?
  /// A sameness group the source is; nil: none.
  public var samenessGroup: String?
  /// The source's namespace and admin partition (Enterprise); nil: the defaults.
  public var namespace: String?
  public var partition: String?
  /// JWT requirements of every request from the source, kept as sent.
  public var jwt: ConsulJSONValue?

  public init(
    name: String,
    action: String? = nil,
    permissions: [ConsulIntentionPermission]? = nil,
    description: String? = nil
  ) {
    self.name = name
    self.action = action
    self.permissions = permissions
    self.precedence = 0
    self.type = "consul"
    self.description = description
  }

  enum CodingKeys: String, CodingKey {
    case name = "Name"
    case action = "Action"
    case permissions = "Permissions"
    case precedence = "Precedence"
    case type = "Type"
    case description = "Description"
    case peer = "Peer"
    case samenessGroup = "SamenessGroup"
    case namespace = "Namespace"
    case partition = "Partition"
    case jwt = "JWT"
  }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
    self.action = try container.decodeIfPresent(String.self, forKey: .action)
    self.permissions = try container.decodeIfPresent(
      [ConsulIntentionPermission].self,
      forKey: .permissions
    )
    self.precedence = try container.decodeIfPresent(Int.self, forKey: .precedence) ?? 0
    self.type = try container.decodeIfPresent(String.self, forKey: .type) ?? "consul"
    self.description = try container.decodeIfPresent(String.self, forKey: .description)
    self.peer = try container.decodeIfPresent(String.self, forKey: .peer)
    self.samenessGroup = try container.decodeIfPresent(String.self, forKey: .samenessGroup)
    self.namespace = try container.decodeIfPresent(String.self, forKey: .namespace)
    self.partition = try container.decodeIfPresent(String.self, forKey: .partition)
    self.jwt = try container.decodeIfPresent(ConsulJSONValue.self, forKey: .jwt)
  }
}
