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

public import MeshTransport

/// Who may call what on a server: rules of source, destination and action, with Consul
/// intentions' precedence.
///
/// A call is decided by the most specific rule that matches it: the more specific destination
/// first (a method, then a service, then `*`), then the more specific source (an identity, then a
/// service name, then a trust domain, then `*`); between equally specific rules, deny wins. With
/// no rule matching, ``defaultAction`` decides.
///
/// ```swift
/// let policy = MeshAuthorizationPolicy(
///   rules: [
///     .allow(from: .service("checkout"), to: .service("orders.Orders")),
///     .deny(from: .service("checkout"), to: .method("orders.Orders/Cancel")),
///     .allow(from: .trustDomain("mesh.local"), to: .method("grpc.health.v1.Health/Check")),
///   ],
///   defaultAction: .deny
/// )
/// ```
public struct MeshAuthorizationPolicy: Hashable, Sendable {
  /// Allow or deny.
  public enum Action: String, Hashable, Sendable {
    case allow
    case deny
  }

  /// Who a rule is about.
  public enum Source: Hashable, Sendable, CustomStringConvertible {
    /// Any caller with a verified identity.
    case any
    /// Callers with a SPIFFE ID in this trust domain.
    case trustDomain(String)
    /// Callers of this service: a SPIFFE ID whose path ends in `/svc/<name>` (in any trust
    /// domain the server's CA bundle admits), or a DNS identity that is `<name>` or starts with
    /// `<name>.` (the Python mesh's certificates).
    case service(String)
    /// Callers presenting exactly this identity.
    case identity(MeshServiceIdentity)

    /// How specific the source is: the higher, the more.
    var precedence: Int {
      switch self {
      case .any: return 0
      case .trustDomain: return 1
      case .service: return 2
      case .identity: return 3
      }
    }

    func matches(_ identities: [MeshServiceIdentity]) -> Bool {
      identities.contains { identity in
        switch self {
        case .any:
          return true
        case .trustDomain(let domain):
          return identity.trustDomain == domain
        case .service(let name):
          if let id = identity.spiffeID { return id.hasSuffix("/svc/\(name)") }
          guard let dns = identity.dnsName?.lowercased() else { return false }
          let lowered = name.lowercased()
          return dns == lowered || dns.hasPrefix(lowered + ".")
        case .identity(let expected):
          return identity == expected
        }
      }
    }

    /// `*`, `trust-domain:<domain>`, `service:<name>`, or the identity.
    public var description: String {
      switch self {
      case .any: return "*"
      case .trustDomain(let domain): return "trust-domain:\(domain)"
      case .service(let name): return "service:\(name)"
      case .identity(let identity): return "\(identity)"
      }
    }
  }

  /// What a rule is about.
  public enum Destination: Hashable, Sendable, CustomStringConvertible {
    /// Every method of the server.
    case any
    /// Every method of a service (`package.Service`).
    case service(String)
    /// One method (`package.Service/Method`).
    case method(String)

    var precedence: Int {
      switch self {
      case .any: return 0
      case .service: return 1
      case .method: return 2
      }
    }

    func matches(service: String, method: String) -> Bool {
      switch self {
      case .any: return true
      case .service(let name): return name == service
      case .method(let name): return name == "\(service)/\(method)"
      }
    }

    /// `*`, `package.Service` or `package.Service/Method`.
    public var description: String {
      switch self {
      case .any: return "*"
      case .service(let name): return name
      case .method(let name): return name
      }
    }
  }

  /// One rule.
  public struct Rule: Hashable, Sendable, CustomStringConvertible {
    public var source: Source
    public var destination: Destination
    public var action: Action
    /// A name for messages and the audit log; nil: the rule's own text.
    public var name: String?

    public init(source: Source, destination: Destination, action: Action, name: String? = nil) {
      self.source = source
      self.destination = destination
      self.action = action
      self.name = name
    }

    /// A rule allowing `source` to call `destination`.
    public static func allow(from source: Source, to destination: Destination) -> Self {
      Self(source: source, destination: destination, action: .allow)
    }

    /// A rule denying `source` calls to `destination`.
    public static func deny(from source: Source, to destination: Destination) -> Self {
      Self(source: source, destination: destination, action: .deny)
    }

    /// Its name, or `allow <source> -> <destination>`.
    public var description: String {
      self.name ?? "\(self.action.rawValue) \(self.source) -> \(self.destination)"
    }
  }

  /// What decided a call.
  public struct Decision: Hashable, Sendable {
    /// Allowed or denied.
    public var action: Action
    /// The rule that decided; nil when no rule matched and the default did, or when Consul's
    /// intentions decided.
    public var rule: Rule?
    /// Why, for messages and the audit log: the rule's text, `default <action>`, or the
    /// intention and permission that decided.
    public var reason: String

    /// A decision by `rule`, or by the default when nil.
    public init(action: Action, rule: Rule?) {
      self.action = action
      self.rule = rule
      self.reason = rule.map { "\($0)" } ?? "default \(action.rawValue)"
    }

    /// A decision with no rule of this policy (Consul's intentions).
    public init(action: Action, reason: String) {
      self.action = action
      self.rule = nil
      self.reason = reason
    }
  }

  /// The rules, in any order: precedence, not order, decides.
  public var rules: [Rule]
  /// What decides a call no rule matches.
  public var defaultAction: Action

  public init(rules: [Rule] = [], defaultAction: Action) {
    self.rules = rules
    self.defaultAction = defaultAction
  }

  /// The decision for a caller with `identities` calling `method` of `service`.
  public func decide(
    identities: [MeshServiceIdentity],
    service: String,
    method: String
  ) -> Decision {
    var best: (rank: Int, rule: Rule)?
    for rule in self.rules
    where rule.destination.matches(service: service, method: method)
      && rule.source.matches(identities)
    {
      let rank = rule.destination.precedence * 4 + rule.source.precedence
      if let current = best {
        // More specific wins; between equally specific rules, deny wins.
        if rank > current.rank || (rank == current.rank && rule.action == .deny) {
          best = (rank, rule)
        }
      } else {
        best = (rank, rule)
      }
    }
    guard let best else { return Decision(action: self.defaultAction, rule: nil) }
    return Decision(action: best.rule.action, rule: best.rule)
  }
}
