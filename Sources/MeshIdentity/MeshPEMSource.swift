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
internal import SwiftASN1
package import X509

/// Where PEM comes from: a file (re-read on every reload, so replacing the file rotates it) or
/// memory.
public struct MeshPEMSource: Sendable, Hashable, CustomStringConvertible {
  private enum Value: Hashable, Sendable {
    case file(String)
    case memory([UInt8])
  }

  private let value: Value

  private init(_ value: Value) {
    self.value = value
  }

  /// PEM read from the file at `path`.
  public static func file(_ path: String) -> Self {
    Self(.file(path))
  }

  /// PEM held in memory.
  public static func pem(_ text: String) -> Self {
    Self(.memory(Array(text.utf8)))
  }

  /// The file's path, if this source is a file.
  public var path: String? {
    if case .file(let path) = self.value { return path }
    return nil
  }

  /// The file's path, or `in-memory PEM`: the PEM itself is never shown.
  public var description: String {
    switch self.value {
    case .file(let path):
      return path
    case .memory:
      return "in-memory PEM"
    }
  }

  /// The source's bytes.
  ///
  /// - Throws: ``MeshTLSError`` with code `fileNotFound` or `unreadableFile`.
  public func load() throws(MeshTLSError) -> [UInt8] {
    switch self.value {
    case .memory(let bytes):
      return bytes
    case .file(let path):
      guard FileManager.default.fileExists(atPath: path) else {
        throw MeshTLSError(code: .fileNotFound, message: "\(path) does not exist.")
      }
      do {
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
      } catch {
        throw MeshTLSError(code: .unreadableFile, message: "\(path) cannot be read.", cause: error)
      }
    }
  }

  /// Every certificate in `bytes` read from this source, in order (leaf first for a chain).
  package func parseCertificates(
    _ bytes: [UInt8],
    role: String
  ) throws(MeshTLSError) -> [Certificate] {
    let documents = try self.parsePEMDocuments(bytes, role: role)
    var certificates: [Certificate] = []
    for document in documents {
      guard document.discriminator == "CERTIFICATE" else {
        throw MeshTLSError(
          code: .malformedPEM,
          message: "\(role) (\(self)) holds a '\(document.discriminator)' block, not a CERTIFICATE."
        )
      }
      do {
        certificates.append(try Certificate(derEncoded: document.derBytes))
      } catch {
        throw MeshTLSError(
          code: .malformedPEM,
          message: "\(role) (\(self)) holds a CERTIFICATE block that is not an X.509 certificate.",
          cause: error
        )
      }
    }
    return certificates
  }

  /// The one private key in `bytes` read from this source (PKCS#8, SEC 1 or PKCS#1).
  package func parsePrivateKey(
    _ bytes: [UInt8],
    role: String
  ) throws(MeshTLSError) -> Certificate.PrivateKey {
    let documents = try self.parsePEMDocuments(bytes, role: role)
    guard documents.count == 1, let document = documents.first else {
      throw MeshTLSError(
        code: .malformedPEM,
        message:
          "\(role) (\(self)) must hold exactly one private key, not \(documents.count) blocks."
      )
    }
    do {
      return try Certificate.PrivateKey(pemDocument: document)
    } catch {
      throw MeshTLSError(
        code: .malformedPEM,
        message: "\(role) (\(self)) holds a '\(document.discriminator)' block that is not a "
          + "supported private key.",
        cause: error
      )
    }
  }

  private func parsePEMDocuments(
    _ bytes: [UInt8],
    role: String
  ) throws(MeshTLSError) -> [PEMDocument] {
    let text = String(decoding: bytes, as: UTF8.self)
    let documents: [PEMDocument]
    do {
      documents = try PEMDocument.parseMultiple(pemString: text)
    } catch {
      throw MeshTLSError(
        code: .malformedPEM,
        message: "\(role) (\(self)) is not valid PEM.",
        cause: error
      )
    }
    guard !documents.isEmpty else {
      throw MeshTLSError(code: .malformedPEM, message: "\(role) (\(self)) holds no PEM block.")
    }
    return documents
  }
}
