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

internal import Crypto
public import Foundation
public import MeshTransport
internal import SwiftASN1
public import X509

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// A mesh certificate authority: a self-signed CA certificate and its key, which issues the
/// service certificates of one trust domain.
///
/// Keys are ECDSA P-256. The CA certificate carries the trust domain as a SPIFFE URI SAN
/// (`spiffe://<trust-domain>`), so issuing needs only the CA files.
public struct MeshCertificateAuthority: Sendable {
  /// The CA certificate: what every service trusts (`ca.crt`).
  public let certificate: Certificate
  /// The CA's signing key (`ca-key.pem`).
  public let privateKey: Certificate.PrivateKey
  /// The trust domain of the SPIFFE IDs it issues.
  public let trustDomain: String

  /// Creates a new CA for `trustDomain`, valid from a little before `now` for `days` days.
  public static func create(
    trustDomain: String,
    days: Int = 3650,
    now: Date = Date()
  ) throws(MeshTLSError) -> Self {
    // Validates the trust domain by the SPIFFE rules.
    let domainIdentity = try MeshServiceIdentity.spiffe("spiffe://\(trustDomain)")
    guard days > 0 else {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "The CA's validity must be at least one day, not \(days)."
      )
    }
    let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
    return try Self.wrapping {
      let name = try DistinguishedName {
        OrganizationName("swift-grpc-mesh")
        CommonName("\(trustDomain) mesh CA")
      }
      let extensions = try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        SubjectKeyIdentifier(keyIdentifier: Self.keyIdentifier(of: key.publicKey))
        SubjectAlternativeNames([.uniformResourceIdentifier(domainIdentity.spiffeID!)])
      }
      let certificate = try Certificate(
        version: .v3,
        serialNumber: Certificate.SerialNumber(),
        publicKey: key.publicKey,
        notValidBefore: now.addingTimeInterval(-3600),
        notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
        issuer: name,
        subject: name,
        signatureAlgorithm: .ecdsaWithSHA256,
        extensions: extensions,
        issuerPrivateKey: key
      )
      return Self(certificate: certificate, privateKey: key, trustDomain: trustDomain)
    }
  }

  /// Loads a CA from its certificate and key PEM.
  ///
  /// - Throws: ``MeshTLSError`` with code `malformedPEM` for unparsable PEM, `privateKeyMismatch`
  ///   if the key is not the certificate's, and `invalidConfiguration` if the certificate is not
  ///   a CA or names no SPIFFE trust domain.
  public init(certificatePEM: String, privateKeyPEM: String) throws(MeshTLSError) {
    let certificate: Certificate
    let privateKey: Certificate.PrivateKey
    do {
      certificate = try Certificate(pemEncoded: certificatePEM)
    } catch {
      throw MeshTLSError(
        code: .malformedPEM,
        message: "The CA certificate is not a PEM certificate.",
        cause: error
      )
    }
    do {
      privateKey = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
    } catch {
      throw MeshTLSError(
        code: .malformedPEM,
        message: "The CA key is not a PEM private key.",
        cause: error
      )
    }
    guard privateKey.publicKey == certificate.publicKey else {
      throw MeshTLSError(
        code: .privateKeyMismatch,
        message: "The CA key does not belong to the CA certificate."
      )
    }
    guard Self.isCA(certificate) else {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "The CA certificate is not a certificate authority (basicConstraints CA:FALSE)."
      )
    }
    guard
      let trustDomain = MeshServiceIdentity.identities(in: certificate)
        .lazy.compactMap(\.trustDomain).first
    else {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "The CA certificate names no trust domain (a spiffe://<trust-domain> URI SAN)."
      )
    }
    self.init(certificate: certificate, privateKey: privateKey, trustDomain: trustDomain)
  }

  private init(certificate: Certificate, privateKey: Certificate.PrivateKey, trustDomain: String) {
    self.certificate = certificate
    self.privateKey = privateKey
    self.trustDomain = trustDomain
  }

  /// The CA certificate as PEM.
  public func certificatePEM() throws(MeshTLSError) -> String {
    try Self.wrapping { try self.certificate.serializeAsPEM().pemString }
  }

  /// The CA key as PEM (PKCS#8).
  public func privateKeyPEM() throws(MeshTLSError) -> String {
    try Self.wrapping { try self.privateKey.serializeAsPEM().pemString }
  }

  /// Issues a service certificate.
  ///
  /// The certificate names `spiffe://<trust-domain>/ns/<namespace>/svc/<service>` in a URI SAN,
  /// and `service`, `localhost` and `dnsNames` in DNS SANs, plus `ipAddresses`; it may serve both
  /// ends of a connection (serverAuth and clientAuth).
  ///
  /// - Parameters:
  ///   - notValidBefore: Defaults to five minutes before now, to absorb clock skew.
  ///   - notValidAfter: Defaults to `days` days from now.
  ///   - uriNames: Replaces the SPIFFE URI SAN when not nil (tests use it to mint wrong or missing
  ///     identities).
  public func issue(
    service: String,
    namespace: String = "default",
    dnsNames: [String] = [],
    ipAddresses: [String] = [],
    days: Int = 365,
    notValidBefore: Date? = nil,
    notValidAfter: Date? = nil,
    uriNames: [String]? = nil,
    includeDefaultDNSNames: Bool = true
  ) throws(MeshTLSError) -> MeshIssuedCertificate {
    let identity = try MeshServiceIdentity.spiffe(
      trustDomain: self.trustDomain,
      namespace: namespace,
      service: service
    )
    guard days > 0 else {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "A certificate's validity must be at least one day, not \(days)."
      )
    }
    var dnsIdentities: [String] = []
    for name in (includeDefaultDNSNames ? [service, "localhost"] : []) + dnsNames {
      let dnsName = try MeshServiceIdentity.dns(name).dnsName!
      if !dnsIdentities.contains(dnsName) {
        dnsIdentities.append(dnsName)
      }
    }
    var ipNames: [GeneralName] = []
    for address in ipAddresses {
      ipNames.append(
        .ipAddress(ASN1OctetString(contentBytes: ArraySlice(try Self.ipAddressBytes(address))))
      )
    }

    let now = Date()
    let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
    let uris = uriNames ?? [identity.spiffeID!]
    let sans: [GeneralName] =
      uris.map { .uniformResourceIdentifier($0) } + dnsIdentities.map { .dnsName($0) } + ipNames
    return try Self.wrapping {
      let subject = try DistinguishedName {
        OrganizationName("swift-grpc-mesh")
        CommonName(service)
      }
      let extensions = try Certificate.Extensions {
        Critical(BasicConstraints.notCertificateAuthority)
        Critical(KeyUsage(digitalSignature: true))
        try ExtendedKeyUsage([.serverAuth, .clientAuth])
        SubjectKeyIdentifier(keyIdentifier: Self.keyIdentifier(of: key.publicKey))
        AuthorityKeyIdentifier(keyIdentifier: Self.keyIdentifier(of: self.certificate.publicKey))
        if !sans.isEmpty {
          SubjectAlternativeNames(sans)
        }
      }
      let certificate = try Certificate(
        version: .v3,
        serialNumber: Certificate.SerialNumber(),
        publicKey: key.publicKey,
        notValidBefore: notValidBefore ?? now.addingTimeInterval(-300),
        notValidAfter: notValidAfter ?? now.addingTimeInterval(Double(days) * 86_400),
        issuer: self.certificate.subject,
        subject: subject,
        signatureAlgorithm: .ecdsaWithSHA256,
        extensions: extensions,
        issuerPrivateKey: self.privateKey
      )
      return MeshIssuedCertificate(
        service: service,
        identity: identity,
        certificate: certificate,
        privateKey: key
      )
    }
  }

  private static func isCA(_ certificate: Certificate) -> Bool {
    guard case .some(.isCertificateAuthority) = try? certificate.extensions.basicConstraints else {
      return false
    }
    return true
  }

  /// The SHA-1 of the public key's bit string, as RFC 5280 §4.2.1.2 suggests.
  private static func keyIdentifier(of publicKey: Certificate.PublicKey) -> ArraySlice<UInt8> {
    ArraySlice(Insecure.SHA1.hash(data: publicKey.subjectPublicKeyInfoBytes))
  }

  private static func ipAddressBytes(_ text: String) throws(MeshTLSError) -> [UInt8] {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 {
      return withUnsafeBytes(of: &v4) { Array($0) }
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 {
      return withUnsafeBytes(of: &v6) { Array($0) }
    }
    throw MeshTLSError(
      code: .invalidConfiguration,
      message: "'\(text)' is not an IPv4 or IPv6 address."
    )
  }

  /// Runs `body`, turning an error from swift-certificates or swift-crypto into a typed one.
  private static func wrapping<T>(_ body: () throws -> T) throws(MeshTLSError) -> T {
    do {
      return try body()
    } catch let error as MeshTLSError {
      throw error
    } catch {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "Could not build the certificate.",
        cause: error
      )
    }
  }
}

/// A service certificate and its key, as issued by ``MeshCertificateAuthority``.
public struct MeshIssuedCertificate: Sendable {
  /// The service it was issued for.
  public let service: String
  /// The SPIFFE identity it was issued for.
  public let identity: MeshServiceIdentity
  /// The certificate (`services/<service>.crt`).
  public let certificate: Certificate
  /// Its key (`services/<service>-key.pem`).
  public let privateKey: Certificate.PrivateKey

  /// The certificate as PEM.
  public func certificatePEM() throws(MeshTLSError) -> String {
    do {
      return try self.certificate.serializeAsPEM().pemString
    } catch {
      throw MeshTLSError(
        code: .malformedPEM,
        message: "Could not encode the certificate.",
        cause: error
      )
    }
  }

  /// The key as PEM (PKCS#8).
  public func privateKeyPEM() throws(MeshTLSError) -> String {
    do {
      return try self.privateKey.serializeAsPEM().pemString
    } catch {
      throw MeshTLSError(code: .malformedPEM, message: "Could not encode the key.", cause: error)
    }
  }
}
