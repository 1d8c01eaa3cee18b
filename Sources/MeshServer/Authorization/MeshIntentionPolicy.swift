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

/// A destination service's Consul intentions, decided per call as Consul decides them.
///
/// The intentions are taken in precedence order (Consul's match order: the most specific
/// first). The first whose source names the caller's service, or is `*`, decides: an L4
/// intention by its action; an L7 one by the first of its permissions that matches the method
/// (`/package.Service/Method`, the HTTP/2 path of the call), and when none matches, by
/// ``defaultAction`` (Consul's "the default intention behaviour"). With no intention matching,
/// ``defaultAction`` decides too. A caller's service is read from its identity as Consul's RBAC
/// reads it (see ``serviceNames(of:)``); its trust domain is not compared here: the server's CA
/// bundle and accepted identities already limit who is verified.
///
/// A permission with conditions the mesh does not evaluate (a path regex, header matchers, HTTP
/// methods) fails closed: a deny permission matches every call, an allow permission none.
public struct MeshIntentionPolicy: Hashable, Sendable {
  /// One permission of an L7 intention.
  public struct Permission: Hashable, Sendable {
    /// Which calls it concerns.
    public enum Match: Hashable, Sendable {
      /// Every call (a permission with no HTTP conditions).
      case any
      /// Calls whose path is exactly this (`/package.Service/Method`).
      case pathExact(String)
      /// Calls whose path starts with this (`/package.Service/`).
      case pathPrefix(String)
      /// Conditions the mesh does not evaluate, named for messages.
      case unsupported(String)
    }

    public var action: MeshAuthorizationPolicy.Action
    public var match: Match

    public init(action: MeshAuthorizationPolicy.Action, match: Match) {
      self.action = action
      self.match = match
    }

    func matches(path: String) -> Bool {
      switch self.match {
      case .any: return true
      case .pathExact(let exact): return path == exact
      case .pathPrefix(let prefix): return path.hasPrefix(prefix)
      case .unsupported: return self.action == .deny
      }
    }
  }

  /// One intention: who (`source`) may or may not call `destination`.
  public struct Intention: Hashable, Sendable, CustomStringConvertible {
    /// A service name, or `*`.
    public var source: String
    /// A service name, or `*`.
    public var destination: String
    /// An L4 intention's action; nil for an L7 intention (it has ``permissions``).
    public var action: MeshAuthorizationPolicy.Action?
    /// An L7 intention's permissions, in order.
    public var permissions: [Permission]
    /// Consul's precedence: the higher, the more specific.
    public var precedence: Int

    public init(
      source: String,
      destination: String,
      action: MeshAuthorizationPolicy.Action?,
      permissions: [Permission] = [],
      precedence: Int
    ) {
      self.source = source
      self.destination = destination
      self.action = action
      self.permissions = permissions
      self.precedence = precedence
    }

    /// `web => db (allow)`, or `web => db (L7)`, as Consul names intentions.
    public var description: String {
      "\(self.source) => \(self.destination) (\(self.action?.rawValue ?? "L7"))"
    }
  }

  /// The intentions, most specific first.
  public private(set) var intentions: [Intention]
  /// What decides a call no intention (or no permission of the matching L7 intention) matches.
  public var defaultAction: MeshAuthorizationPolicy.Action

  /// `intentions` in any order: they are sorted by precedence (stably).
  public init(intentions: [Intention], defaultAction: MeshAuthorizationPolicy.Action) {
    self.intentions = intentions.enumerated()
      .sorted { ($0.element.precedence, -$0.offset) > ($1.element.precedence, -$1.offset) }
      .map(\.element)
    self.defaultAction = defaultAction
  }

  /// The Consul service names `identities` prove, as Consul's own RBAC reads a caller's
  /// certificate: a SPIFFE ID whose path is `/ns/default/dc/<dc>/svc/<name>` (Consul's), or
  /// `/ns/default/svc/<name>` (the mesh CA's), names `<name>`; another namespace, an admin
  /// partition or any other shape names nothing. A DNS identity (the Python mesh's certificates)
  /// names its first label, lower-cased.
  static func serviceNames(of identities: [MeshServiceIdentity]) -> Set<String> {
    var names: Set<String> = []
    for identity in identities {
      if let id = identity.spiffeID {
        guard id.hasPrefix("spiffe://"),
          let slash = id.dropFirst("spiffe://".count).firstIndex(of: "/")
        else { continue }
        let parts = Array(
          id[slash...].split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        )
        let name: Substring
        switch parts.count {
        case 4 where parts[0] == "ns" && parts[1] == "default" && parts[2] == "svc":
          name = parts[3]
        case 6
        where parts[0] == "ns" && parts[1] == "default" && parts[2] == "dc" && !parts[3].isEmpty
          && parts[4] == "svc":
          name = parts[5]
        default:
          continue
        }
        if !name.isEmpty { names.insert(String(name)) }
      } else if let dns = identity.dnsName?.lowercased(),
        let label = dns.split(separator: ".", omittingEmptySubsequences: false).first,
        !label.isEmpty
      {
        names.insert(String(label))
      }
    }
    return names
  }

  /// The decision for a caller with `identities` calling `method` of `service`.
  public func decide(
    identities: [MeshServiceIdentity],
    service: String,
    method: String
  ) -> MeshAuthorizationPolicy.Decision {
    let callers = Self.serviceNames(of: identities)
    for intention in self.intentions {
      guard intention.source == "*" || callers.contains(intention.source) else { continue }
      if let action = intention.action {
        return MeshAuthorizationPolicy.Decision(action: action, reason: "intention \(intention)")
      }
      let path = "/\(service)/\(method)"
      if let permission = intention.permissions.first(where: { $0.matches(path: path) }) {
        return MeshAuthorizationPolicy.Decision(
          action: permission.action,
          reason: "intention \(intention), permission \(permission.match)"
        )
      }
      return MeshAuthorizationPolicy.Decision(
        action: self.defaultAction,
        reason: "intention \(intention): no permission matches; default \(self.defaultAction)"
      )
    }
    return MeshAuthorizationPolicy.Decision(
      action: self.defaultAction,
      reason: "no intention matches; default \(self.defaultAction)"
    )
  }
}
