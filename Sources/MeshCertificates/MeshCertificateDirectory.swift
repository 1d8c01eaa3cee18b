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
public import MeshTransport

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// The on-disk layout of the mesh's certificates, as the seed's scripts made it:
///
/// ```
/// certs/ca.crt                       the mesh CA certificate (every service trusts it)
/// certs/ca-key.pem                   the CA key (0600; keep it off service hosts)
/// certs/services/<service>.crt       a service's certificate
/// certs/services/<service>-key.pem   its key (0600)
/// ```
public struct MeshCertificateDirectory: Sendable, Hashable {
  /// The folder, `certs` by default.
  public var path: String

  public init(path: String = "certs") {
    self.path = path
  }

  public var caCertificatePath: String { "\(self.path)/ca.crt" }
  public var caKeyPath: String { "\(self.path)/ca-key.pem" }
  public var servicesPath: String { "\(self.path)/services" }

  public func certificatePath(service: String) -> String {
    "\(self.servicesPath)/\(service).crt"
  }

  public func keyPath(service: String) -> String {
    "\(self.servicesPath)/\(service)-key.pem"
  }

  /// Loads the CA written by ``write(_:force:)``.
  public func loadAuthority() throws(MeshTLSError) -> MeshCertificateAuthority {
    try MeshCertificateAuthority(
      certificatePEM: try Self.readText(self.caCertificatePath),
      privateKeyPEM: try Self.readText(self.caKeyPath)
    )
  }

  /// Writes the CA certificate (0644) and key (0600). Returns the paths written.
  ///
  /// - Throws: `MeshTLSError` with code `alreadyExists` if either file exists and `force` is
  ///   false; nothing is written then.
  @discardableResult
  public func write(
    _ authority: MeshCertificateAuthority,
    force: Bool = false
  ) throws(MeshTLSError) -> [String] {
    try self.writeAll(
      [
        (self.caCertificatePath, try authority.certificatePEM(), 0o644),
        (self.caKeyPath, try authority.privateKeyPEM(), 0o600),
      ],
      force: force
    )
  }

  /// Writes a service certificate (0644) and key (0600). Returns the paths written.
  ///
  /// - Throws: `MeshTLSError` with code `alreadyExists` if either file exists and `force` is
  ///   false; nothing is written then.
  @discardableResult
  public func write(
    _ issued: MeshIssuedCertificate,
    force: Bool = false
  ) throws(MeshTLSError) -> [String] {
    try self.writeAll(
      [
        (self.certificatePath(service: issued.service), try issued.certificatePEM(), 0o644),
        (self.keyPath(service: issued.service), try issued.privateKeyPEM(), 0o600),
      ],
      force: force
    )
  }

  /// Checks every target first, so a refusal leaves the folder exactly as it was.
  private func writeAll(
    _ files: [(path: String, contents: String, mode: mode_t)],
    force: Bool
  ) throws(MeshTLSError) -> [String] {
    if !force {
      let existing = files.map(\.path).filter { FileManager.default.fileExists(atPath: $0) }
      guard existing.isEmpty else {
        throw MeshTLSError(
          code: .alreadyExists,
          message: "\(existing.joined(separator: ", ")) already exists; use --force to replace it."
        )
      }
    }
    for file in files {
      try Self.createDirectory(for: file.path)
      try Self.writeFile(file.path, contents: file.contents, mode: file.mode)
    }
    return files.map(\.path)
  }

  private static func createDirectory(for path: String) throws(MeshTLSError) {
    let directory = (path as NSString).deletingLastPathComponent
    guard !directory.isEmpty else { return }
    do {
      try FileManager.default.createDirectory(
        atPath: directory,
        withIntermediateDirectories: true
      )
    } catch {
      throw MeshTLSError(
        code: .unreadableFile,
        message: "Could not create the folder \(directory).",
        cause: error
      )
    }
  }

  /// Writes through a temporary file created with its final mode, then renames it into place:
  /// a key is never readable by others, not even for a moment, and a crash leaves the old file.
  private static func writeFile(
    _ path: String,
    contents: String,
    mode: mode_t
  ) throws(MeshTLSError) {
    let temporary = "\(path).tmp-\(getpid())"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, mode)
    guard descriptor >= 0 else {
      throw MeshTLSError(
        code: .unreadableFile,
        message: "Could not create \(temporary): \(String(cString: strerror(errno)))."
      )
    }
    let bytes = Array(contents.utf8)
    var written = 0
    while written < bytes.count {
      let result = bytes.withUnsafeBytes { buffer in
        systemWrite(descriptor, buffer.baseAddress! + written, buffer.count - written)
      }
      if result < 0 {
        if errno == EINTR { continue }
        let reason = String(cString: strerror(errno))
        close(descriptor)
        unlink(temporary)
        throw MeshTLSError(code: .unreadableFile, message: "Could not write \(path): \(reason).")
      }
      written += result
    }
    // The umask may have narrowed the mode; set it exactly.
    fchmod(descriptor, mode)
    close(descriptor)
    guard rename(temporary, path) == 0 else {
      let reason = String(cString: strerror(errno))
      unlink(temporary)
      throw MeshTLSError(code: .unreadableFile, message: "Could not write \(path): \(reason).")
    }
  }

  private static func readText(_ path: String) throws(MeshTLSError) -> String {
    String(decoding: try MeshPEMSource.file(path).load(), as: UTF8.self)
  }
}

private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
  write(descriptor, buffer, count)
}
