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
public import MeshCore

/// One instance of a service: where to reach it, and what the registry says about it.
public struct MeshEndpoint: Hashable, Sendable, CustomStringConvertible {
  /// How healthy the registry says the instance is. Critical instances are never in a set.
  public struct Health: Hashable, Sendable, CustomStringConvertible {
    private enum Value: String, Hashable, Sendable {
      case passing
      case warning
    }

    private let value: Value

    private init(_ value: Value) {
      self.value = value
    }

    /// Every check passes.
    public static let passing = Self(.passing)
    /// Some check warns, none is critical: usable, at its warning weight.
    public static let warning = Self(.warning)

    /// `passing` or `warning`.
    public var description: String {
      self.value.rawValue
    }
  }

  /// Relative weights by health (Consul's `Weights`); both default to 1.
  public struct Weights: Hashable, Sendable {
    /// The weight while every check passes.
    public var passing: Int
    /// The weight while some check warns.
    public var warning: Int

    /// Weights of `passing` and `warning`, both 1 by default, as in Consul.
    public init(passing: Int = 1, warning: Int = 1) {
      self.passing = passing
      self.warning = warning
    }
  }

  /// The registry's ID of this instance (Consul's service ID): unique within the service on one
  /// node; see ``instanceKey`` for what is unique across nodes.
  public var id: String
  /// The host: an IP address or a DNS name.
  public var host: String
  /// The port.
  public var port: Int
  /// The instance's tags.
  public var tags: [String]
  /// The instance's metadata.
  public var meta: [String: String]
  /// Its health.
  public var health: Health
  /// Its weights.
  public var weights: Weights
  /// The node it runs on, if the registry knows.
  public var node: String?
  /// The datacenter it runs in, if the registry knows.
  public var datacenter: String?
  /// The zone it runs in (from service or node metadata `zone`), if known.
  public var zone: String?

  /// An endpoint at `host` and `port`. The ID defaults to `host:port`; the rest defaults to what
  /// a registry that knows nothing more would say: passing, weights of 1, no node, datacenter or
  /// zone.
  public init(
    id: String? = nil,
    host: String,
    port: Int,
    tags: [String] = [],
    meta: [String: String] = [:],
    health: Health = .passing,
    weights: Weights = Weights(),
    node: String? = nil,
    datacenter: String? = nil,
    zone: String? = nil
  ) {
    self.id = id ?? "\(host):\(port)"
    self.host = host
    self.port = port
    self.tags = tags
    self.meta = meta
    self.health = health
    self.weights = weights
    self.node = node
    self.datacenter = datacenter
    self.zone = zone
  }

  /// What tells this instance apart from every other of the service: its node and its ID
  /// (Consul's service IDs are unique per node only, so two nodes may each run a `web-1`); the
  /// ID alone where no node is known. The balancer keeps one subchannel per key.
  /// Written `node/id`, or `id` without a node, with `%` and `/` percent-encoded in the node (and
  /// in a lone ID) so that no two instances share a key: node `a/b` with ID `c`, node `a` with ID
  /// `b/c` and ID `a/b/c` on no node stay apart.
  public var instanceKey: String {
    guard let node = self.node, !node.isEmpty else { return Self.escaped(self.id) }
    return "\(Self.escaped(node))/\(self.id)"
  }

  private static func escaped(_ text: String) -> String {
    guard text.contains(where: { $0 == "/" || $0 == "%" }) else { return text }
    return text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(
      of: "/",
      with: "%2F"
    )
  }

  /// Why this endpoint must not be handed to NIO (a host that is not an IPv4 address, an IPv6
  /// address or a DNS name; a port outside 1–65535), or nil if it may. The balancing transport
  /// skips endpoints for which this is not nil.
  public var validationError: MeshInputError? {
    do {
      _ = try MeshHost(self.host, field: "host")
      _ = try MeshInput.port(self.port, field: "port")
      return nil
    } catch {
      return error
    }
  }

  /// The weight for its current health: `weights.passing` or `weights.warning`.
  public var weight: Int {
    self.health == .passing ? self.weights.passing : self.weights.warning
  }

  /// `id@host:port`, for logs.
  public var description: String {
    "\(self.id)@\(self.host):\(self.port)"
  }
}

/// Every usable instance of a service at one moment.
public struct MeshEndpointSet: Hashable, Sendable {
  /// The service these are instances of.
  public var service: String
  /// The instances, in the registry's order.
  public var endpoints: [MeshEndpoint]

  /// The set of `endpoints` of `service`.
  public init(service: String, endpoints: [MeshEndpoint]) {
    self.service = service
    self.endpoints = endpoints
  }
}
