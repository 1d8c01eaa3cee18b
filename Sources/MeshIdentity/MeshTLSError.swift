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

/// An error from loading, validating or verifying the mesh's TLS material and identities.
///
/// Every bad input — a missing file, malformed PEM, a key that does not match its certificate, a
/// certificate that is expired, not yet valid or not signed by the mesh CA, a wrong or missing
/// identity — has its own ``Code``; ``message`` says what was wrong and where, and ``cause`` keeps
/// the underlying error, if any.
public struct MeshTLSError: MeshError, Hashable {
  /// What kind of problem this is. New codes may be added; switch with a `default`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Value: String, Hashable, Sendable {
      case fileNotFound
      case unreadableFile
      case malformedPEM
      case privateKeyMismatch
      case certificateExpired
      case certificateNotYetValid
      case untrustedCertificate
      case identityMismatch
      case missingIdentity
      case missingClientCertificate
      case invalidIdentity
      case invalidConfiguration
      case alreadyExists
      case handshakeFailed
    }

    private let value: Value

    private init(_ value: Value) {
      self.value = value
    }

    /// A file named in the configuration does not exist.
    public static let fileNotFound = Self(.fileNotFound)
    /// A file exists but could not be read.
    public static let unreadableFile = Self(.unreadableFile)
    /// The PEM is malformed, empty, or holds the wrong kind of object.
    public static let malformedPEM = Self(.malformedPEM)
    /// The private key does not belong to the certificate.
    public static let privateKeyMismatch = Self(.privateKeyMismatch)
    /// The certificate's validity ended.
    public static let certificateExpired = Self(.certificateExpired)
    /// The certificate's validity has not started.
    public static let certificateNotYetValid = Self(.certificateNotYetValid)
    /// The certificate does not chain to the mesh CA.
    public static let untrustedCertificate = Self(.untrustedCertificate)
    /// The peer's certificate names another identity than the one expected.
    public static let identityMismatch = Self(.identityMismatch)
    /// The certificate carries no SPIFFE URI or DNS identity at all.
    public static let missingIdentity = Self(.missingIdentity)
    /// A client connected to an mTLS server without a certificate.
    public static let missingClientCertificate = Self(.missingClientCertificate)
    /// An identity string is not a valid SPIFFE ID or DNS name.
    public static let invalidIdentity = Self(.invalidIdentity)
    /// A configuration value is out of range or inconsistent.
    public static let invalidConfiguration = Self(.invalidConfiguration)
    /// A file to be written exists, and replacing it was not asked for.
    public static let alreadyExists = Self(.alreadyExists)
    /// The TLS handshake failed: the peer sent an alert, offered no common version, cipher or
    /// ALPN protocol (gRPC needs `h2`), or closed the connection during it.
    public static let handshakeFailed = Self(.handshakeFailed)

    /// The code's name (`fileNotFound`, `identityMismatch`…).
    public var description: String {
      self.value.rawValue
    }
  }

  /// What kind of problem this is.
  public var code: Code
  /// What was wrong, naming the file, certificate or identity concerned.
  public var message: String
  /// The underlying error, if there was one.
  public var cause: (any Error)?

  /// An error of kind `code`, described by `message`, with the underlying `cause` if any.
  public init(code: Code, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }
}
