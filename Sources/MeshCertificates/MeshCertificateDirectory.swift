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
public import MeshIdentity

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// The on-disk layout of the mesh's certificates, as the Python mesh's scripts made it:
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

  /// The layout under `path`.
  public init(path: String = "certs") {
    self.path = path
  }

  /// `<path>/ca.crt`: the CA certificate.
  public var caCertificatePath: String { "\(self.path)/ca.crt" }
  /// `<path>/ca-key.pem`: the CA's key.
  public var caKeyPath: String { "\(self.path)/ca-key.pem" }
  /// `<path>/services`: the services' certificates and keys.
  public var servicesPath: String { "\(self.path)/services" }

  /// `<path>/services/<service>.crt`: a service's certificate.
  public func certificatePath(service: String) -> String {
    "\(self.servicesPath)/\(service).crt"
  }

  /// `<path>/services/<service>-key.pem`: a service's key.
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

  /// Writes `files` together or not at all.
  ///
  /// Every target is checked first, so a refusal leaves the folder exactly as it was. Each file
  /// is written to a temporary file beside it, created with its final mode; only when all are
  /// written are they renamed into place, and if a rename fails the files already renamed are
  /// put back as they were (a certificate never ends up beside another certificate's key).
  /// Folders that hold keys are created 0700, whatever the umask.
  private func writeAll(
    _ files: [(path: String, contents: String, mode: mode_t)],
    force: Bool
  ) throws(MeshTLSError) -> [String] {
    guard !self.path.isEmpty else {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "The certificates folder is empty; name one (such as 'certs')."
      )
    }
    if !force {
      let existing = files.map(\.path).filter { FileManager.default.fileExists(atPath: $0) }
      guard existing.isEmpty else {
        throw MeshTLSError(
          code: .alreadyExists,
          message: "\(existing.joined(separator: ", ")) already exists; use --force to replace it."
        )
      }
    }
    try Self.createPrivateDirectory(self.path)
    for file in files {
      try Self.createPrivateDirectory((file.path as NSString).deletingLastPathComponent)
    }

    var staged: [(temporary: String, path: String)] = []
    func discardStaged() {
      for file in staged { unlink(file.temporary) }
    }
    for file in files {
      do throws(MeshTLSError) {
        staged.append(
          (try Self.writeTemporary(file.path, contents: file.contents, mode: file.mode), file.path)
        )
      } catch {
        discardStaged()
        throw error
      }
    }

    // Keep the files being replaced (as hard links) until every rename has succeeded.
    var replaced: [(backup: String?, path: String)] = []
    for (index, file) in staged.enumerated() {
      var backup: String?
      var failure: String?
      // A regular file (not a link to one) is kept as a backup. (Foundation's attributes, read
      // with lstat: C's `stat` struct resolves to CoreFoundation's in release builds.)
      let type = (try? FileManager.default.attributesOfItem(atPath: file.path))?[.type]
      if type as? FileAttributeType == .typeRegular {
        let name = "\(file.path).old-\(getpid())"
        unlink(name)
        if link(file.path, name) == 0 {
          backup = name
        } else {
          failure = String(cString: strerror(errno))
        }
      }
      if failure == nil && rename(file.temporary, file.path) != 0 {
        failure = String(cString: strerror(errno))
      }
      if let failure {
        if let backup { unlink(backup) }
        // Put back what was replaced, newest first, and drop what was not renamed yet.
        for entry in replaced.reversed() {
          if let backup = entry.backup {
            rename(backup, entry.path)
          } else {
            unlink(entry.path)
          }
        }
        for rest in staged[index...] { unlink(rest.temporary) }
        throw MeshTLSError(
          code: .unreadableFile,
          message: "Could not write \(file.path): \(failure); nothing was changed."
        )
      }
      replaced.append((backup, file.path))
    }
    for entry in replaced {
      if let backup = entry.backup { unlink(backup) }
    }
    return files.map(\.path)
  }

  /// Creates `directory` (and any missing parents) if it does not exist; the folder itself is
  /// made 0700 whatever the umask, since it holds keys. An existing folder is left as it is.
  private static func createPrivateDirectory(_ directory: String) throws(MeshTLSError) {
    guard !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) else { return }
    let parent = (directory as NSString).deletingLastPathComponent
    do {
      if !parent.isEmpty {
        try FileManager.default.createDirectory(
          atPath: parent,
          withIntermediateDirectories: true
        )
      }
    } catch {
      throw MeshTLSError(
        code: .unreadableFile,
        message: "Could not create the folder \(parent).",
        cause: error
      )
    }
    guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
      throw MeshTLSError(
        code: .unreadableFile,
        message: "Could not create the folder \(directory): \(String(cString: strerror(errno)))."
      )
    }
    // mkdir's mode is narrowed by the umask; set it exactly.
    guard chmod(directory, 0o700) == 0 else {
      throw MeshTLSError(
        code: .unreadableFile,
        message: "Could not make \(directory) private: \(String(cString: strerror(errno)))."
      )
    }
  }

  /// Writes `contents` to a temporary file beside `path`, created with its final mode (a key is
  /// never readable by others, not even for a moment). Returns the temporary file's path.
  private static func writeTemporary(
    _ path: String,
    contents: String,
    mode: mode_t
  ) throws(MeshTLSError) -> String {
    let temporary = "\(path).tmp-\(getpid())"
    unlink(temporary)  // one left by a crashed run of this process ID
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
    // The umask may have narrowed the mode; set it exactly. And the bytes reach the disk before
    // the rename makes them the file.
    guard fchmod(descriptor, mode) == 0, fsync(descriptor) == 0 else {
      let reason = String(cString: strerror(errno))
      close(descriptor)
      unlink(temporary)
      throw MeshTLSError(code: .unreadableFile, message: "Could not write \(path): \(reason).")
    }
    close(descriptor)
    return temporary
  }

  private static func readText(_ path: String) throws(MeshTLSError) -> String {
    String(decoding: try MeshPEMSource.file(path).load(), as: UTF8.self)
  }
}

private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
  write(descriptor, buffer, count)
}
