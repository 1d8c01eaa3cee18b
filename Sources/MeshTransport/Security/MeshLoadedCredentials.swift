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
package import NIOSSL
internal import SwiftASN1
package import X509

/// A service's credentials, parsed and checked: the chain, the key, the trust roots and the
/// identities the certificate carries.
package struct MeshLoadedCredentials: Sendable {
  package let chain: [Certificate]
  package let nioChain: [NIOSSLCertificate]
  package let nioPrivateKey: NIOSSLPrivateKey
  /// The private key as read (PEM), for TLS libraries other than BoringSSL.
  package let privateKeyPEM: [UInt8]
  package let trustRoots: [Certificate]
  package let identities: [MeshServiceIdentity]

  package var leaf: Certificate { self.chain[0] }

  /// Reads and checks `configuration`'s sources.
  ///
  /// - Throws: ``MeshTLSError``: `fileNotFound`, `unreadableFile`, `malformedPEM`,
  ///   `privateKeyMismatch`, `certificateExpired`, `certificateNotYetValid`,
  ///   `untrustedCertificate` (not signed by the trust bundle) or `missingIdentity`.
  package static func load(
    _ configuration: MeshTLSConfiguration,
    now: Date
  ) async throws(MeshTLSError) -> Self {
    let chainBytes = try configuration.certificateChain.load()
    let keyBytes = try configuration.privateKey.load()
    let bundleBytes = try configuration.trustBundle.load()

    let chain = try configuration.certificateChain.parseCertificates(
      chainBytes,
      role: "The certificate chain"
    )
    let key = try configuration.privateKey.parsePrivateKey(keyBytes, role: "The private key")
    let trustRoots = try configuration.trustBundle.parseCertificates(
      bundleBytes,
      role: "The trust bundle"
    )
    let leaf = chain[0]
    let described = "The certificate \(configuration.certificateChain) (\(leaf.subject))"

    guard key.publicKey == leaf.publicKey else {
      throw MeshTLSError(
        code: .privateKeyMismatch,
        message: "The private key \(configuration.privateKey) does not belong to "
          + "\(configuration.certificateChain)."
      )
    }
    if now > leaf.notValidAfter {
      throw MeshTLSError(
        code: .certificateExpired,
        message: "\(described) expired at \(leaf.notValidAfter)."
      )
    }
    if now < leaf.notValidBefore {
      throw MeshTLSError(
        code: .certificateNotYetValid,
        message: "\(described) is not valid before \(leaf.notValidBefore)."
      )
    }

    // Our own certificate must be one our peers will accept: signed by the mesh CA, with an
    // identity. The same checks the peers run, so a bad file fails here, not at every handshake.
    let verified = await MeshPeerVerifier.verify(
      peerChain: chain,
      trustRoots: trustRoots,
      policy: .anyIdentity,
      peerRole: "local",
      now: now
    )
    let identities: [MeshServiceIdentity]
    switch verified {
    case .success(let peer):
      identities = peer.identities
    case .failure(var error):
      error.message =
        error.message.replacingOccurrences(
          of: "The local's certificate",
          with: described
        ) + " (trust bundle: \(configuration.trustBundle))"
      throw error
    }

    let nioChain: [NIOSSLCertificate]
    let nioPrivateKey: NIOSSLPrivateKey
    do {
      nioChain = try Self.nioCertificates(chain)
      nioPrivateKey = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
    } catch {
      throw MeshTLSError(
        code: .malformedPEM,
        message: "BoringSSL could not load \(configuration.certificateChain) or "
          + "\(configuration.privateKey).",
        cause: error
      )
    }

    return Self(
      chain: chain,
      nioChain: nioChain,
      nioPrivateKey: nioPrivateKey,
      privateKeyPEM: keyBytes,
      trustRoots: trustRoots,
      identities: identities
    )
  }

  /// `certificates` as BoringSSL objects (re-encoded from swift-certificates' DER).
  package static func nioCertificates(_ certificates: [Certificate]) throws -> [NIOSSLCertificate] {
    try certificates.map { certificate in
      try NIOSSLCertificate(bytes: try Self.der(certificate), format: .der)
    }
  }

  /// `certificate`'s DER encoding.
  package static func der(_ certificate: Certificate) throws -> [UInt8] {
    var serializer = DER.Serializer()
    try serializer.serialize(certificate)
    return serializer.serializedBytes
  }
}
