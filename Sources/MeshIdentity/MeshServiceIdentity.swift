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

public import X509

/// Who a service is, as its certificate says: a SPIFFE ID in a URI SAN, or a DNS SAN.
///
/// The mesh's own certificates carry `spiffe://<trust-domain>/ns/<namespace>/svc/<service>`; the
/// Python mesh's older certificates name the service in a DNS SAN. Identities compare exactly (DNS names
/// case-insensitively, as DNS does): being signed by the mesh CA is not enough to be `X`.
public struct MeshServiceIdentity: Hashable, Sendable, CustomStringConvertible {
  private enum Value: Hashable, Sendable {
    case spiffe(String)
    case dns(String)
  }

  private let value: Value

  private init(_ value: Value) {
    self.value = value
  }

  /// The SPIFFE ID, if this is a SPIFFE identity.
  public var spiffeID: String? {
    if case .spiffe(let id) = self.value { return id }
    return nil
  }

  /// The DNS name (lowercased), if this is a DNS identity.
  public var dnsName: String? {
    if case .dns(let name) = self.value { return name }
    return nil
  }

  /// The trust domain of a SPIFFE identity.
  public var trustDomain: String? {
    guard let id = self.spiffeID else { return nil }
    let rest = id.dropFirst(Self.spiffeScheme.count)
    return String(rest.prefix { $0 != "/" })
  }

  /// The SPIFFE ID, or `dns:<name>` for a DNS identity: the text ``init(parsing:)`` reads.
  public var description: String {
    switch self.value {
    case .spiffe(let id):
      return id
    case .dns(let name):
      return "dns:\(name)"
    }
  }

  private static let spiffeScheme = "spiffe://"

  /// A SPIFFE identity from a SPIFFE ID such as `spiffe://mesh.local/ns/default/svc/orders`.
  ///
  /// - Throws: ``MeshTLSError`` with code ``MeshTLSError/Code/invalidIdentity`` if `id` breaks the
  ///   SPIFFE ID rules (scheme, trust domain characters, empty or dot path segments, query,
  ///   fragment, port, user info, or more than 2,048 bytes).
  public static func spiffe(_ id: String) throws(MeshTLSError) -> Self {
    func invalid(_ why: String) -> MeshTLSError {
      MeshTLSError(code: .invalidIdentity, message: "'\(id)' is not a valid SPIFFE ID: \(why).")
    }
    guard id.utf8.count <= 2048 else { throw invalid("it is longer than 2,048 bytes") }
    guard id.hasPrefix(Self.spiffeScheme) else {
      throw invalid("it must start with 'spiffe://' (lowercase)")
    }
    let rest = id.dropFirst(Self.spiffeScheme.count)
    let trustDomain = rest.prefix { $0 != "/" }
    let path = rest.dropFirst(trustDomain.count)

    guard !trustDomain.isEmpty else { throw invalid("the trust domain is empty") }
    guard trustDomain.utf8.allSatisfy(Self.isTrustDomainByte) else {
      throw invalid(
        "the trust domain may hold only lowercase letters, digits, '.', '-' and '_' (no port, "
          + "user info, query or fragment)"
      )
    }
    if !path.isEmpty {
      let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
      for segment in segments {
        guard !segment.isEmpty else {
          throw invalid("the path has an empty segment or a trailing '/'")
        }
        guard segment != "." && segment != ".." else {
          throw invalid("the path has a '.' or '..' segment")
        }
        guard segment.utf8.allSatisfy(Self.isPathByte) else {
          throw invalid("path segments may hold only letters, digits, '.', '-' and '_'")
        }
      }
    }
    return Self(.spiffe(id))
  }

  /// The mesh's SPIFFE identity for a service:
  /// `spiffe://<trustDomain>/ns/<namespace>/svc/<service>`.
  public static func spiffe(
    trustDomain: String,
    namespace: String = "default",
    service: String
  ) throws(MeshTLSError) -> Self {
    try .spiffe("\(Self.spiffeScheme)\(trustDomain)/ns/\(namespace)/svc/\(service)")
  }

  /// A DNS identity, as in the Python mesh's certificates (`orders`, `orders.internal`).
  ///
  /// - Throws: ``MeshTLSError`` with code ``MeshTLSError/Code/invalidIdentity`` if `name` is not a
  ///   DNS name: labels of 1 to 63 letters, digits and inner hyphens, 253 bytes in all, no
  ///   wildcards.
  public static func dns(_ name: String) throws(MeshTLSError) -> Self {
    func invalid(_ why: String) -> MeshTLSError {
      MeshTLSError(code: .invalidIdentity, message: "'\(name)' is not a valid DNS name: \(why).")
    }
    let lowered = name.lowercased()
    let trimmed = lowered.hasSuffix(".") ? String(lowered.dropLast()) : lowered
    guard !trimmed.isEmpty else { throw invalid("it is empty") }
    guard trimmed.utf8.count <= 253 else { throw invalid("it is longer than 253 bytes") }
    for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
      guard !label.isEmpty, label.utf8.count <= 63 else {
        throw invalid("each label must hold 1 to 63 characters")
      }
      guard label.utf8.allSatisfy(Self.isDNSLabelByte) else {
        throw invalid("labels may hold only letters, digits and '-'")
      }
      guard label.first != "-", label.last != "-" else {
        throw invalid("a label may not start or end with '-'")
      }
    }
    return Self(.dns(trimmed))
  }

  /// An identity from its text form: a SPIFFE ID (`spiffe://…`), else a DNS name (an optional
  /// `dns:` prefix is accepted, as ``description`` writes it).
  public init(parsing text: String) throws(MeshTLSError) {
    if text.hasPrefix("spiffe:") {
      self = try .spiffe(text)
    } else if text.hasPrefix("dns:") {
      self = try .dns(String(text.dropFirst(4)))
    } else {
      self = try .dns(text)
    }
  }

  /// Every identity `certificate` carries in its subject alternative names: each valid SPIFFE ID
  /// among its URI SANs and each valid DNS SAN. Malformed names are skipped, never trusted.
  public static func identities(in certificate: Certificate) -> [MeshServiceIdentity] {
    guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
    var identities: [MeshServiceIdentity] = []
    for name in names {
      switch name {
      case .uniformResourceIdentifier(let uri) where uri.hasPrefix("spiffe:"):
        if let identity = try? MeshServiceIdentity.spiffe(uri) {
          identities.append(identity)
        }
      case .dnsName(let dnsName):
        if let identity = try? MeshServiceIdentity.dns(dnsName) {
          identities.append(identity)
        }
      default:
        continue
      }
    }
    return identities
  }

  private static func isTrustDomainByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
      UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
      return true
    default:
      return false
    }
  }

  private static func isPathByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"),
      UInt8(ascii: "_"):
      return true
    default:
      return false
    }
  }

  private static func isDNSLabelByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
      UInt8(ascii: "-"):
      return true
    default:
      return false
    }
  }
}
