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

/// `GET /v1/agent/connect/ca/roots` (`IndexedCARoots`).
public struct ConsulCARoots: Codable, Hashable, Sendable {
  /// The ID of the root that signs new certificates (`ActiveRootID`).
  public var activeRootID: String
  /// The SPIFFE trust domain of the Connect CA (`TrustDomain`).
  public var trustDomain: String
  /// Every root, the active one and those kept during a rotation (`Roots`).
  public var roots: [ConsulCARoot]

  enum CodingKeys: String, CodingKey {
    case activeRootID = "ActiveRootID"
    case trustDomain = "TrustDomain"
    case roots = "Roots"
  }
}

/// One Connect CA root.
public struct ConsulCARoot: Codable, Hashable, Sendable {
  /// The root's ID (`ID`).
  public var id: String
  /// The root's name (`Name`).
  public var name: String
  /// The root certificate's serial number (`SerialNumber`).
  public var serialNumber: UInt64
  /// The ID of the key that signs leaf certificates (`SigningKeyID`).
  public var signingKeyID: String
  /// The trust domain the root was made for (`ExternalTrustDomain`).
  public var externalTrustDomain: String
  /// RFC 3339.
  public var notBefore: String
  /// RFC 3339.
  public var notAfter: String
  /// PEM.
  public var rootCert: String
  /// PEM, or nil (`null` on the wire).
  public var intermediateCerts: [String]?
  /// Whether this is the active root (`Active`).
  public var active: Bool
  /// The root key's type (`PrivateKeyType`: `ec` or `rsa`).
  public var privateKeyType: String
  /// The root key's size in bits (`PrivateKeyBits`).
  public var privateKeyBits: Int
  /// The index at which the root was created (`CreateIndex`).
  public var createIndex: UInt64
  /// The index at which the root last changed (`ModifyIndex`).
  public var modifyIndex: UInt64

  enum CodingKeys: String, CodingKey {
    case id = "ID"
    case name = "Name"
    case serialNumber = "SerialNumber"
    case signingKeyID = "SigningKeyID"
    case externalTrustDomain = "ExternalTrustDomain"
    case notBefore = "NotBefore"
    case notAfter = "NotAfter"
    case rootCert = "RootCert"
    case intermediateCerts = "IntermediateCerts"
    case active = "Active"
    case privateKeyType = "PrivateKeyType"
    case privateKeyBits = "PrivateKeyBits"
    case createIndex = "CreateIndex"
    case modifyIndex = "ModifyIndex"
  }
}

/// `GET /v1/agent/connect/ca/leaf/:service` (`IssuedCert`).
public struct ConsulIssuedCertificate: Codable, Hashable, Sendable {
  /// Colon-separated lowercase hex.
  public var serialNumber: String
  /// The leaf followed by any intermediates, PEM.
  public var certPEM: String
  /// The leaf's private key, PEM (`PrivateKeyPEM`).
  public var privateKeyPEM: String
  /// The service the certificate was issued for (`Service`).
  public var service: String
  /// The SPIFFE ID.
  public var serviceURI: String
  /// RFC 3339.
  public var validAfter: String
  /// RFC 3339.
  public var validBefore: String
  /// The index at which the certificate was issued (`CreateIndex`).
  public var createIndex: UInt64
  /// The index at which it last changed (`ModifyIndex`).
  public var modifyIndex: UInt64

  enum CodingKeys: String, CodingKey {
    case serialNumber = "SerialNumber"
    case certPEM = "CertPEM"
    case privateKeyPEM = "PrivateKeyPEM"
    case service = "Service"
    case serviceURI = "ServiceURI"
    case validAfter = "ValidAfter"
    case validBefore = "ValidBefore"
    case createIndex = "CreateIndex"
    case modifyIndex = "ModifyIndex"
  }
}

/// The body of `POST /v1/agent/connect/authorize`.
public struct ConsulAuthorizeRequest: Codable, Hashable, Sendable {
  /// The service being called (`Target`).
  public var target: String
  /// The caller's SPIFFE ID, from its certificate's URI SAN (`ClientCertURI`).
  public var clientCertURI: String
  /// The serial number of the caller's certificate (`ClientCertSerial`).
  public var clientCertSerial: String

  /// A request to authorize the caller `clientCertURI` (serial `clientCertSerial`) to call
  /// `target`.
  public init(target: String, clientCertURI: String, clientCertSerial: String) {
    self.target = target
    self.clientCertURI = clientCertURI
    self.clientCertSerial = clientCertSerial
  }

  enum CodingKeys: String, CodingKey {
    case target = "Target"
    case clientCertURI = "ClientCertURI"
    case clientCertSerial = "ClientCertSerial"
  }
}

/// The answer of `POST /v1/agent/connect/authorize`.
public struct ConsulAuthorizeResponse: Codable, Hashable, Sendable {
  /// Whether the call is allowed (`Authorized`).
  public var authorized: Bool
  /// Free text.
  public var reason: String

  enum CodingKeys: String, CodingKey {
    case authorized = "Authorized"
    case reason = "Reason"
  }
}
