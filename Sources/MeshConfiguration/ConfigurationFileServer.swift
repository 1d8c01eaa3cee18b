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
internal import MeshCore

// The `server` section: what a MeshServer's configuration holds, by field. Types, units and
// enumerations are checked here (an error names the field); ranges and the forms of rule sources
// are checked by MeshServerConfiguration when it applies the section, with the same field names.

extension MeshConfigurationFile {
  /// The `server` section: how a mesh server listens, secures its connections, registers itself,
  /// authorizes callers and drains. Every field is optional: an unset one keeps the server's
  /// default (or what the code set).
  ///
  /// ```yaml
  /// server:
  ///   service_name: orders
  ///   host: 0.0.0.0
  ///   port: 8443
  ///   tls: { certs_dir: /etc/mesh/certs, trust_domain: mesh.local }
  ///   registration: { address: 10.0.0.5, tags: [v2], meta: { zone: a }, check_interval: 10s }
  ///   drain: { delay: 5s, grace_period: 30s }
  ///   connections: { max_concurrent_streams: 10000, max_connection_age: 30m }
  ///   authorization:
  ///     default_action: deny
  ///     rules:
  ///       - { source: "service:checkout", destination: orders.Orders, action: allow }
  /// ```
  public struct Server: Sendable, Hashable, Decodable {
    /// `service_name`: this service's name.
    public var serviceName: String?
    /// `host`, `port`: the address to bind.
    public var host: String?
    public var port: Int?
    /// `tls`: mTLS from a certificates folder.
    public var tls: TLS?
    /// `registration`: self-registration in Consul (the agent from `CONSUL_HTTP_ADDR`).
    public var registration: Registration?
    /// `drain`: the graceful drain.
    public var drain: Drain?
    /// `connections`: stream, idle, age and message limits.
    public var connections: Connections?
    /// `authorization`: rules of who may call what.
    public var authorization: Authorization?
    /// `intentions`: follow the service's Consul intentions instead of rules.
    public var intentions: Intentions?

    public init() {}

    /// `tls`.
    public struct TLS: Sendable, Hashable, Decodable {
      /// `certs_dir` (required): the certificates folder, in `mesh certs`' layout.
      public var certificatesDirectory: String
      /// `trust_domain`: callers must have a SPIFFE ID in it; unset: any identity the mesh CA
      /// issued.
      public var trustDomain: String?

      public init(certificatesDirectory: String, trustDomain: String? = nil) {
        self.certificatesDirectory = certificatesDirectory
        self.trustDomain = trustDomain
      }

      private enum CodingKeys: String, CodingKey, CaseIterable {
        case certificatesDirectory = "certs_dir"
        case trustDomain = "trust_domain"
      }

      public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.certificatesDirectory = try nonEmpty(
          container.decode(String.self, forKey: .certificatesDirectory),
          at: decoder.codingPath + [CodingKeys.certificatesDirectory]
        )
        self.trustDomain = try container.decodeIfPresent(String.self, forKey: .trustDomain)
      }
    }

    /// `registration`.
    public struct Registration: Sendable, Hashable, Decodable {
      /// `id`: the service ID; unset: `<service>-<host name>-<port>`.
      public var id: String?
      /// `address`, `port`: what clients reach the instance at; unset: the bind address (or
      /// Consul's node address for a wildcard) and the bound port.
      public var address: String?
      public var port: Int?
      /// `tags`, `meta`.
      public var tags: [String]?
      public var meta: [String: String]?
      /// `check_interval`, `check_timeout`: the agent's gRPC check.
      public var checkInterval: Duration?
      public var checkTimeout: Duration?
      /// `deregister_critical_service_after`: `0s` never.
      public var deregisterCriticalServiceAfter: Duration?

      public init() {}

      private enum CodingKeys: String, CodingKey, CaseIterable {
        case id, address, port, tags, meta
        case checkInterval = "check_interval"
        case checkTimeout = "check_timeout"
        case deregisterCriticalServiceAfter = "deregister_critical_service_after"
      }

      public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try container.decodeIfPresent(String.self, forKey: .id)
        self.address = try container.decodeIfPresent(String.self, forKey: .address)
        self.port = try container.decodeIfPresent(FileInteger.self, forKey: .port)?.value
        self.tags = try container.decodeIfPresent([String].self, forKey: .tags)
        self.meta = try container.decodeIfPresent([String: String].self, forKey: .meta)
        self.checkInterval = try container.decodeIfPresent(
          FileDuration.self,
          forKey: .checkInterval
        )?.value
        self.checkTimeout = try container.decodeIfPresent(
          FileDuration.self,
          forKey: .checkTimeout
        )?.value
        self.deregisterCriticalServiceAfter = try container.decodeIfPresent(
          FileDuration.self,
          forKey: .deregisterCriticalServiceAfter
        )?.value
      }
    }

    /// `drain`.
    public struct Drain: Sendable, Hashable, Decodable {
      /// `delay`: between deregistering and GOAWAY.
      public var delay: Duration?
      /// `grace_period`: after GOAWAY, for RPCs in flight.
      public var gracePeriod: Duration?

      public init() {}

      private enum CodingKeys: String, CodingKey, CaseIterable {
        case delay
        case gracePeriod = "grace_period"
      }

      public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.delay = try container.decodeIfPresent(FileDuration.self, forKey: .delay)?.value
        self.gracePeriod = try container.decodeIfPresent(
          FileDuration.self,
          forKey: .gracePeriod
        )?.value
      }
    }

    /// `connections` (gRFC A9's names).
    public struct Connections: Sendable, Hashable, Decodable {
      /// `max_concurrent_streams`: streams one client connection may have open.
      public var maxConcurrentStreams: Int?
      /// `max_connection_idle`, `max_connection_age`, `max_connection_age_grace`: `0s` is no
      /// limit (as gRPC Go's zero).
      public var maxConnectionIdle: Duration?
      public var maxConnectionAge: Duration?
      public var maxConnectionAgeGrace: Duration?
      /// `max_request_message_bytes`.
      public var maxRequestMessageBytes: Int?

      public init() {}

      private enum CodingKeys: String, CodingKey, CaseIterable {
        case maxConcurrentStreams = "max_concurrent_streams"
        case maxConnectionIdle = "max_connection_idle"
        case maxConnectionAge = "max_connection_age"
        case maxConnectionAgeGrace = "max_connection_age_grace"
        case maxRequestMessageBytes = "max_request_message_bytes"
      }

      public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.maxConcurrentStreams = try container.decodeIfPresent(
          FileInteger.self,
          forKey: .maxConcurrentStreams
        )?.value
        self.maxConnectionIdle = try container.decodeIfPresent(
          FileDuration.self,
          forKey: .maxConnectionIdle
        )?.value
        self.maxConnectionAge = try container.decodeIfPresent(
          FileDuration.self,
          forKey: .maxConnectionAge
        )?.value
        self.maxConnectionAgeGrace = try container.decodeIfPresent(
          FileDuration.self,
          forKey: .maxConnectionAgeGrace
        )?.value
        self.maxRequestMessageBytes = try container.decodeIfPresent(
          FileInteger.self,
          forKey: .maxRequestMessageBytes
        )?.value
      }
    }

    /// Allow or deny.
    public enum Action: String, Sendable, Hashable, Decodable, CaseIterable {
      case allow
      case deny

      public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let action = Self(rawValue: text) else {
          throw FieldError(
            path: dotted(decoder.codingPath),
            "must be allow or deny, not \(MeshInput.quoted(text))"
          )
        }
        self = action
      }
    }

    /// `authorization`.
    public struct Authorization: Sendable, Hashable, Decodable {
      /// `default_action` (required): what decides a call no rule matches.
      public var defaultAction: Action
      /// `rules`: in any order; precedence decides.
      public var rules: [Rule]
      /// `audit_allowed_share`: the share of allowed calls written to the audit log, 0 to 1
      /// (every denial is).
      public var auditAllowedShare: Double?

      public init(defaultAction: Action, rules: [Rule] = [], auditAllowedShare: Double? = nil) {
        self.defaultAction = defaultAction
        self.rules = rules
        self.auditAllowedShare = auditAllowedShare
      }

      /// One rule.
      public struct Rule: Sendable, Hashable, Decodable {
        /// `source`: `*`, `trust-domain:<domain>`, `service:<name>`, or an identity
        /// (`spiffe://...`, `dns:<name>`).
        public var source: String
        /// `destination`: `*`, `package.Service` or `package.Service/Method`.
        public var destination: String
        /// `action`.
        public var action: Action
        /// `name`: for messages and the audit log.
        public var name: String?

        public init(source: String, destination: String, action: Action, name: String? = nil) {
          self.source = source
          self.destination = destination
          self.action = action
          self.name = name
        }

        private enum CodingKeys: String, CodingKey, CaseIterable {
          case source, destination, action, name
        }

        public init(from decoder: any Decoder) throws {
          try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
          let container = try decoder.container(keyedBy: CodingKeys.self)
          self.source = try container.decode(String.self, forKey: .source)
          self.destination = try container.decode(String.self, forKey: .destination)
          self.action = try container.decode(Action.self, forKey: .action)
          self.name = try container.decodeIfPresent(String.self, forKey: .name)
        }
      }

      private enum CodingKeys: String, CodingKey, CaseIterable {
        case defaultAction = "default_action"
        case rules
        case auditAllowedShare = "audit_allowed_share"
      }

      public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.defaultAction = try container.decode(Action.self, forKey: .defaultAction)
        self.rules = try container.decodeIfPresent([Rule].self, forKey: .rules) ?? []
        self.auditAllowedShare = try share(in: container, forKey: .auditAllowedShare)
      }
    }

    /// `intentions`.
    public struct Intentions: Sendable, Hashable, Decodable {
      /// `default_action` (required): what decides a call no intention matches.
      public var defaultAction: Action
      /// `wait`: the longest a blocking query waits.
      public var wait: Duration?
      /// `audit_allowed_share`: as ``Authorization/auditAllowedShare``.
      public var auditAllowedShare: Double?

      public init(defaultAction: Action, wait: Duration? = nil, auditAllowedShare: Double? = nil) {
        self.defaultAction = defaultAction
        self.wait = wait
        self.auditAllowedShare = auditAllowedShare
      }

      private enum CodingKeys: String, CodingKey, CaseIterable {
        case defaultAction = "default_action"
        case wait
        case auditAllowedShare = "audit_allowed_share"
      }

      public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.defaultAction = try container.decode(Action.self, forKey: .defaultAction)
        self.wait = try container.decodeIfPresent(FileDuration.self, forKey: .wait)?.value
        self.auditAllowedShare = try share(in: container, forKey: .auditAllowedShare)
      }
    }

    private enum CodingKeys: String, CodingKey, CaseIterable {
      case serviceName = "service_name"
      case host, port, tls, registration, drain, connections, authorization, intentions
    }

    public init(from decoder: any Decoder) throws {
      try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
      let container = try decoder.container(keyedBy: CodingKeys.self)
      self.serviceName = try container.decodeIfPresent(String.self, forKey: .serviceName).map {
        try nonEmpty($0, at: decoder.codingPath + [CodingKeys.serviceName])
      }
      self.host = try container.decodeIfPresent(String.self, forKey: .host)
      self.port = try container.decodeIfPresent(FileInteger.self, forKey: .port)?.value
      self.tls = try container.decodeIfPresent(TLS.self, forKey: .tls)
      self.registration = try container.decodeIfPresent(Registration.self, forKey: .registration)
      self.drain = try container.decodeIfPresent(Drain.self, forKey: .drain)
      self.connections = try container.decodeIfPresent(Connections.self, forKey: .connections)
      self.authorization = try container.decodeIfPresent(
        Authorization.self,
        forKey: .authorization
      )
      self.intentions = try container.decodeIfPresent(Intentions.self, forKey: .intentions)
    }
  }
}

/// A share from 0 to 1 (`audit_allowed_share`), if set.
private func share<Key: CodingKey>(
  in container: KeyedDecodingContainer<Key>,
  forKey key: Key
) throws -> Double? {
  guard let share = try container.decodeIfPresent(Double.self, forKey: key) else { return nil }
  guard share.isFinite, (0...1).contains(share) else {
    throw FieldError(
      path: dotted(container.codingPath + [key]),
      "must be a number from 0 to 1, not \(share)"
    )
  }
  return share
}

private func nonEmpty(_ text: String, at path: [any CodingKey]) throws -> String {
  guard !text.isEmpty else { throw FieldError(path: dotted(path), "must not be empty") }
  return text
}
