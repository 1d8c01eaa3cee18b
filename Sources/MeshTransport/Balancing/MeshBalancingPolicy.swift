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

public import MeshCore

/// How the balancing transport picks an endpoint for each attempt.
///
/// A base algorithm, optionally narrowed first by a zone preference and split by a canary share:
///
/// ```swift
/// var policy = MeshBalancingPolicy.leastRequest                 // the default
/// policy.zonePreference = .init(localZone: "eu-west-1a")       // stay in-zone while it can
/// policy.canary = .init(tag: "canary", share: 0.05)            // 5 % to canary instances
/// ```
public struct MeshBalancingPolicy: Hashable, Sendable, CustomStringConvertible {
  package enum Algorithm: Hashable, Sendable {
    case roundRobin
    case pickFirst
    case leastRequest
    case peakEWMA(decay: Duration)
    case weighted
  }

  package var algorithm: Algorithm

  /// Prefer endpoints in the local zone; spill over to every zone while the local one has too
  /// few endpoints.
  public struct ZonePreference: Hashable, Sendable {
    /// The caller's zone (compared with each endpoint's `zone`).
    public var localZone: String
    /// Below this many local endpoints, traffic spills to all zones. Default 2.
    public var minimumLocalEndpoints: Int

    public init(localZone: String, minimumLocalEndpoints: Int = 2) {
      self.localZone = localZone
      self.minimumLocalEndpoints = minimumLocalEndpoints
    }
  }

  /// Send a share of traffic to the endpoints that carry a tag.
  public struct Canary: Hashable, Sendable {
    /// The tag that marks canary endpoints.
    public var tag: String
    /// The share of picks that go to them, 0...1. When either group is empty, the other takes
    /// all traffic.
    public var share: Double

    public init(tag: String, share: Double) {
      self.tag = tag
      self.share = share
    }
  }

  public var zonePreference: ZonePreference?
  public var canary: Canary?

  private init(_ algorithm: Algorithm) {
    self.algorithm = algorithm
  }

  /// Each endpoint in turn.
  public static let roundRobin = Self(.roundRobin)
  /// The first endpoint (in discovery order) until it goes away.
  public static let pickFirst = Self(.pickFirst)
  /// Power of two choices: of two random endpoints, the one with fewer RPCs in flight (Envoy's
  /// and Finagle's default). O(1) per pick.
  public static let leastRequest = Self(.leastRequest)
  /// Power of two choices by peak-EWMA latency × load (linkerd2, Finagle): latency spikes count
  /// at once and fade over `decay`.
  public static func peakEWMA(decay: Duration = .seconds(10)) -> Self {
    Self(.peakEWMA(decay: decay))
  }
  /// At random in proportion to each endpoint's weight (Consul's `Weights.Passing`/`Warning`).
  public static let weighted = Self(.weighted)

  public var description: String {
    var text: String
    switch self.algorithm {
    case .roundRobin: text = "round_robin"
    case .pickFirst: text = "pick_first"
    case .leastRequest: text = "least_request"
    case .peakEWMA(let decay): text = "peak_ewma(decay: \(decay))"
    case .weighted: text = "weighted"
    }
    if let zone = self.zonePreference { text += ", zone \(zone.localZone)" }
    if let canary = self.canary { text += ", canary \(canary.tag) \(canary.share)" }
    return text
  }

  /// Checks the numbers.
  ///
  /// - Throws: ``MeshBalancingError`` naming the field.
  public func validate() throws(MeshBalancingError) {
    if let canary = self.canary {
      guard (0...1).contains(canary.share), canary.share.isFinite else {
        throw MeshBalancingError(
          code: .outOfRange,
          field: "canary.share",
          message: "must be between 0 and 1, not \(canary.share)"
        )
      }
      guard !canary.tag.isEmpty else {
        throw MeshBalancingError(code: .invalid, field: "canary.tag", message: "must not be empty")
      }
    }
    if let zone = self.zonePreference {
      guard zone.minimumLocalEndpoints >= 1 else {
        throw MeshBalancingError(
          code: .outOfRange,
          field: "zonePreference.minimumLocalEndpoints",
          message: "must be at least 1, not \(zone.minimumLocalEndpoints)"
        )
      }
    }
    if case .peakEWMA(let decay) = self.algorithm, decay <= .zero {
      throw MeshBalancingError(
        code: .outOfRange,
        field: "algorithm.peakEWMA.decay",
        message: "must be positive, not \(decay)"
      )
    }
  }
}

/// A balancing setting that cannot be used: its ``MeshInputError/field`` names it
/// (`canary.share`, `resilience.retry.maxAttempts`), its ``MeshInputError/code`` says whether it
/// is out of range or invalid; a resilience setting's error is its ``MeshInputError/cause``.
public typealias MeshBalancingError = MeshInputError
