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
internal import MeshCore
public import MeshIdentity
internal import SwiftASN1
public import X509

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

  /// The longest validity, in days, of a CA or a certificate it issues: 100 years, well inside
  /// what X.509's GeneralizedTime can write.
  public static let maximumDays = 36_500

  /// Creates a new CA for `trustDomain`, valid from a little before `now` for `days` days.
  ///
  /// - Throws: ``MeshTLSError`` with code `invalidIdentity` for a trust domain that is not a
  ///   SPIFFE trust domain (see ``validateTrustDomain(_:)``), `invalidConfiguration` for `days`
  ///   outside 1...``maximumDays``.
  public static func create(
    trustDomain: String,
    days: Int = 3650,
    now: Date = Date()
  ) throws(MeshTLSError) -> Self {
    try Self.validateTrustDomain(trustDomain)
    let domainIdentity = try MeshServiceIdentity.spiffe("spiffe://\(trustDomain)")
    let validity = try Self.validity(days: days, of: "The CA")
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
        notValidAfter: now.addingTimeInterval(validity),
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

  /// The CA's remaining validity at `now`, in whole days: the most `days` that `issue` accepts.
  public func remainingDays(now: Date = Date()) -> Int {
    let seconds = self.certificate.notValidAfter.timeIntervalSince(now)
    guard seconds > 0 else { return 0 }
    let days = MeshInput.int64(truncating: min(seconds / 86_400, Double(Self.maximumDays))) ?? 0
    return Int(clamping: days)
  }

  /// Issues a service certificate.
  ///
  /// The certificate names `spiffe://<trust-domain>/ns/<namespace>/svc/<service>` in a URI SAN,
  /// and `service`, `localhost` and `dnsNames` in DNS SANs, plus `ipAddresses`; it may serve both
  /// ends of a connection (serverAuth and clientAuth). A certificate never outlives its CA: a
  /// validity past the CA's own expiry is refused, not clamped.
  ///
  /// - Throws: ``MeshTLSError`` with code `invalidIdentity` for a service name that is not one
  ///   DNS label (``validateServiceName(_:)``) or a namespace that is not one SPIFFE path segment
  ///   (``validateNamespace(_:)``), `invalidConfiguration` for `days` outside 1...
  ///   ``maximumDays`` or a validity past the CA's.
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
    try Self.validateServiceName(service)
    try Self.validateNamespace(namespace)
    let identity = try MeshServiceIdentity.spiffe(
      trustDomain: self.trustDomain,
      namespace: namespace,
      service: service
    )
    let validity = try Self.validity(days: days, of: "A certificate")
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
    let expiry = notValidAfter ?? now.addingTimeInterval(validity)
    guard expiry <= self.certificate.notValidAfter else {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: """
          The certificate would outlive its CA, which expires at \(self.certificate.notValidAfter) \
          (in \(self.remainingDays(now: now)) days); issue it for at most that long, or make a new \
          CA.
          """
      )
    }
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
        notValidAfter: expiry,
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

  /// Checks a SPIFFE trust domain as the SPIFFE ID specification defines it: 1 to 255 bytes of
  /// lowercase letters, digits, `.`, `-` and `_`; no scheme, port, user info or path.
  ///
  /// - Throws: ``MeshTLSError`` with code `invalidIdentity`.
  public static func validateTrustDomain(_ trustDomain: String) throws(MeshTLSError) {
    try Self.check(
      trustDomain,
      isA: "SPIFFE trust domain",
      of: Self.trustDomainBytes,
      "use only lowercase letters, digits, '.', '-' and '_'"
    ) {
      $0.contains("/") || $0.contains(":")
        ? "give the domain alone, with no scheme, port or path (such as 'mesh.local')" : nil
    }
  }

  /// Checks a namespace: one SPIFFE path segment (letters, digits, `.`, `-`, `_`; not `.` or
  /// `..`; at most 255 bytes).
  ///
  /// - Throws: ``MeshTLSError`` with code `invalidIdentity`.
  public static func validateNamespace(_ namespace: String) throws(MeshTLSError) {
    try Self.check(
      namespace,
      isA: "namespace",
      of: Self.pathSegmentBytes,
      "it must be one path segment of letters, digits, '.', '-' and '_'"
    ) { $0 == "." || $0 == ".." ? "it is a dot segment" : nil }
  }

  /// Checks that `text` has 1 to 255 bytes, passes `problem` (which says what is wrong, if
  /// anything) and holds only bytes of `allowed` (else `rule` says why).
  private static func check(
    _ text: String,
    isA kind: String,
    of allowed: String,
    _ rule: String,
    problem: (String) -> String?
  ) throws(MeshTLSError) {
    let why: String?
    if text.isEmpty {
      why = "it is empty"
    } else if text.utf8.count > 255 {
      why = "it is longer than 255 bytes"
    } else if let found = problem(text) {
      why = found
    } else if !text.utf8.allSatisfy({ allowed.utf8.contains($0) }) {
      why = rule
    } else {
      why = nil
    }
    if let why {
      throw MeshTLSError(
        code: .invalidIdentity,
        message: "\(MeshInput.quoted(text)) is not a \(kind): \(why)."
      )
    }
  }

  /// Checks a service name: one DNS label of lowercase letters, digits and inner hyphens (1 to
  /// 63 bytes), so that its file name (`services/<service>.crt`), its DNS SAN and its SPIFFE ID
  /// (`…/svc/<service>`) all spell it the same way.
  ///
  /// - Throws: ``MeshTLSError`` with code `invalidIdentity`.
  public static func validateServiceName(_ service: String) throws(MeshTLSError) {
    let bytes = Array(service.utf8)
    guard
      (1...63).contains(bytes.count),
      bytes.allSatisfy({ Self.serviceNameBytes.utf8.contains($0) }),
      bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-")
    else {
      throw MeshTLSError(
        code: .invalidIdentity,
        message: """
          \(MeshInput.quoted(service)) is not a service name: use 1 to 63 lowercase letters, \
          digits and inner '-' (one DNS label, such as 'orders').
          """
      )
    }
  }

  private static let trustDomainBytes = "abcdefghijklmnopqrstuvwxyz0123456789.-_"
  private static let pathSegmentBytes = trustDomainBytes + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  private static let serviceNameBytes = "abcdefghijklmnopqrstuvwxyz0123456789-"

  /// `days` as seconds, once checked against 1...``maximumDays``.
  private static func validity(days: Int, of what: String) throws(MeshTLSError) -> TimeInterval {
    do {
      let checked = try MeshInput.integer(days, field: "days", in: 1...Self.maximumDays)
      return TimeInterval(checked) * 86_400
    } catch {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "\(what)'s validity in days \(error.message).",
        cause: error
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
    // MeshHost is the one classifier of host text; a DNS name has no address bytes.
    guard let host = try? MeshHost(text), let bytes = host.addressBytes else {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "'\(text)' is not an IPv4 or IPv6 address."
      )
    }
    return bytes
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
