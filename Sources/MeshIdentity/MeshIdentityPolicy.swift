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

/// Which peer identities a connection accepts, once the peer's chain is signed by the mesh CA.
///
/// A client calling service `X` uses ``oneOf(_:)`` with `X`'s identity (or several, during a
/// rename); a server usually accepts any identity from the mesh CA and leaves authorization to the
/// handlers, which see the caller's verified identity.
public struct MeshIdentityPolicy: Hashable, Sendable, CustomStringConvertible {
  private enum Value: Hashable, Sendable {
    case anyIdentity
    case trustDomain(String)
    case oneOf([MeshServiceIdentity])
  }

  private let value: Value

  private init(_ value: Value) {
    self.value = value
  }

  /// Any certificate from the mesh CA that carries a SPIFFE or DNS identity.
  public static let anyIdentity = Self(.anyIdentity)

  /// Any SPIFFE identity in `trustDomain`.
  public static func trustDomain(_ trustDomain: String) -> Self {
    Self(.trustDomain(trustDomain))
  }

  /// Exactly one of `identities` (compared exactly; DNS names case-insensitively).
  public static func oneOf(_ identities: [MeshServiceIdentity]) -> Self {
    Self(.oneOf(identities))
  }

  /// Exactly `identity`.
  public static func exactly(_ identity: MeshServiceIdentity) -> Self {
    Self(.oneOf([identity]))
  }

  /// The policy in words, for logs and errors (`one of [spiffe://…]`).
  public var description: String {
    switch self.value {
    case .anyIdentity:
      return "any identity from the mesh CA"
    case .trustDomain(let domain):
      return "any SPIFFE identity in trust domain '\(domain)'"
    case .oneOf(let identities):
      return "one of [\(identities.map(\.description).joined(separator: ", "))]"
    }
  }

  /// The first of `presented` that this policy accepts, or nil.
  package func match(_ presented: [MeshServiceIdentity]) -> MeshServiceIdentity? {
    switch self.value {
    case .anyIdentity:
      return presented.first { $0.spiffeID != nil } ?? presented.first
    case .trustDomain(let domain):
      return presented.first { $0.trustDomain == domain }
    case .oneOf(let accepted):
      return presented.first { accepted.contains($0) }
    }
  }
}
