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

package import Foundation
// The SPI the deprecation of RFC5280Policy(validationTime:) points to: validity as of `now`.
@_spi(FixedExpiryValidationTime) public import X509

/// A peer whose certificate chain and identity were verified.
public struct MeshVerifiedPeer: Sendable, Hashable {
  /// The identity that satisfied the policy.
  public let identity: MeshServiceIdentity
  /// Every identity the peer's certificate carries.
  public let identities: [MeshServiceIdentity]
  /// The validated chain, leaf first, ending at a mesh CA certificate.
  public let chain: [Certificate]
}

/// Verifies a peer's certificate chain against the mesh CA and its identity against a policy.
///
/// A custom verification callback replaces all of BoringSSL's own checks, so this does all of
/// them: chain building to the trust roots with RFC 5280 rules (signatures, validity, basic
/// constraints, name constraints), then the identity.
package enum MeshPeerVerifier {
  /// Verifies `peerChain` (leaf first, as the peer sent it).
  package static func verify(
    peerChain: [Certificate],
    trustRoots: [Certificate],
    policy: MeshIdentityPolicy,
    peerRole: String,
    now: Date
  ) async -> Result<MeshVerifiedPeer, MeshTLSError> {
    guard let leaf = peerChain.first else {
      return .failure(
        MeshTLSError(
          code: peerRole == "client" ? .missingClientCertificate : .untrustedCertificate,
          message: "The \(peerRole) presented no certificate."
        )
      )
    }
    let subject = "The \(peerRole)'s certificate (\(leaf.subject), serial \(leaf.serialNumber))"

    if now > leaf.notValidAfter {
      return .failure(
        MeshTLSError(
          code: .certificateExpired,
          message: "\(subject) expired at \(leaf.notValidAfter)."
        )
      )
    }
    if now < leaf.notValidBefore {
      return .failure(
        MeshTLSError(
          code: .certificateNotYetValid,
          message: "\(subject) is not valid before \(leaf.notValidBefore)."
        )
      )
    }

    var verifier = Verifier(rootCertificates: CertificateStore(trustRoots)) {
      RFC5280Policy(fixedExpiryValidationTime: now)
    }
    let result = await verifier.validate(
      leaf: leaf,
      intermediates: CertificateStore(peerChain.dropFirst())
    )
    let chain: [Certificate]
    switch result {
    case .validCertificate(let validated):
      chain = Array(validated)
    case .couldNotValidate(let failures):
      let reasons = failures.map { "\($0.policyFailureReason)" }.joined(separator: "; ")
      return .failure(
        MeshTLSError(
          code: .untrustedCertificate,
          message: "\(subject) does not chain to the mesh CA"
            + (reasons.isEmpty ? "." : ": \(reasons).")
        )
      )
    }

    let identities = MeshServiceIdentity.identities(in: leaf)
    guard !identities.isEmpty else {
      return .failure(
        MeshTLSError(
          code: .missingIdentity,
          message: "\(subject) carries no SPIFFE URI or DNS identity."
        )
      )
    }
    guard let identity = policy.match(identities) else {
      return .failure(
        MeshTLSError(
          code: .identityMismatch,
          message: "\(subject) names [\(identities.map(\.description).joined(separator: ", "))], "
            + "but \(policy) was expected."
        )
      )
    }
    return .success(MeshVerifiedPeer(identity: identity, identities: identities, chain: chain))
  }
}
