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

internal import CMeshOpenSSL
public import MeshTransport
internal import X509

/// mTLS for the native transport, on OpenSSL 3: TLS 1.2 or 1.3 with ALPN `h2`, presenting the
/// mesh credentials and verifying the peer as the NIO path does (chain to the mesh CA, validity,
/// then the identity `peers` accepts).
///
/// ```swift
/// let credentials = try await MeshCredentials(.directory("certs", service: "orders"))
/// let server = try MeshNativeServerTransport(
///   host: "0.0.0.0", port: 8443,
///   security: .mTLS(try .mTLS(credentials, peers: .anyIdentity))
/// )
/// ```
///
/// Rotation: each new connection presents the certificate ``MeshCredentials`` loaded last and
/// verifies against its latest trust bundle; open connections keep theirs. A server's handlers
/// read the caller with `MeshCaller.current(in:)`.
///
/// A client verifies its server during the handshake (OpenSSL 3's retry-verify suspends it while
/// swift-certificates' asynchronous verifier runs): a server it does not accept gets an alert
/// and never sees the client's certificate. A server verifies its client once the handshake
/// completes (OpenSSL 3.0 suspends a handshake only on a client) and before a byte of application
/// data is read or written; a client it does not accept is disconnected.
public struct MeshNativeTLS: Sendable {
  /// The credentials presented, and whose trust bundle verifies the peer.
  public let credentials: MeshCredentials
  /// The identities accepted from the peer (a client's server, or a server's clients).
  public let peers: MeshIdentityPolicy
  let contexts: MeshOpenSSLContexts
  /// Told how each verification of a peer ended (the mesh's subchannels report failures with it).
  package var onPeer: (@Sendable (Result<MeshVerifiedPeer, MeshTLSError>) -> Void)?

  private init(credentials: MeshCredentials, peers: MeshIdentityPolicy) {
    self.credentials = credentials
    self.peers = peers
    self.contexts = MeshOpenSSLContexts()
    self.onPeer = nil
  }

  /// mTLS presenting `credentials`, accepting peers whose identity `peers` accepts.
  ///
  /// - Throws: ``MeshTLSError`` (`invalidConfiguration`) if OpenSSL refuses the credentials.
  public static func mTLS(
    _ credentials: MeshCredentials,
    peers: MeshIdentityPolicy = .anyIdentity
  ) throws(MeshTLSError) -> Self {
    let tls = Self(credentials: credentials, peers: peers)
    // Fail here, not at the first connection. Both roles load the same credentials, so one
    // context checks them; the other role's is made when first used (a client never needs the
    // server's, and a mesh client makes one configuration per target).
    _ = try tls.contexts.context(for: .client, credentials: credentials)
    return tls
  }

  /// This configuration, telling `onPeer` what each verification of a peer found.
  package func reporting(
    to onPeer: @escaping @Sendable (Result<MeshVerifiedPeer, MeshTLSError>) -> Void
  ) -> Self {
    var copy = self
    copy.onPeer = onPeer
    return copy
  }
}

/// A native transport's connection security.
public enum MeshNativeTransportSecurity: Sendable {
  /// HTTP/2 over plain TCP (h2c), for development and tests.
  case plaintext
  /// mTLS on OpenSSL.
  case mTLS(MeshNativeTLS)
}

/// One OpenSSL context per role and credentials rotation, made when first needed.
final class MeshOpenSSLContexts: Sendable {
  private let cached = MeshMutex<[MeshOpenSSLContext.Role: (UInt64, MeshOpenSSLContext)]>([:])

  func context(
    for role: MeshOpenSSLContext.Role,
    credentials: MeshCredentials
  ) throws(MeshTLSError) -> MeshOpenSSLContext {
    let (generation, loaded) = credentials.loaded
    if let (made, context) = self.cached.withLock({ $0[role] }), made == generation {
      return context
    }
    // Made outside the lock (it parses the key); two connections racing make one each, and an
    // older rotation's never replaces a newer one.
    let context = try MeshOpenSSLContext(role: role, credentials: loaded)
    self.cached.withLock { cached in
      if let (made, _) = cached[role], made > generation { return }
      cached[role] = (generation, context)
    }
    return context
  }
}

/// An `SSL_CTX` holding one set of credentials.
///
/// Sendable: the context is configured in `init` and only read afterwards (`SSL_new`), which
/// OpenSSL allows from any thread.
final class MeshOpenSSLContext: @unchecked Sendable {
  enum Role: Hashable, Sendable {
    case client
    case server
  }

  let role: Role
  private let pointer: OpaquePointer

  init(role: Role, credentials: MeshLoadedCredentials) throws(MeshTLSError) {
    guard let context = SSL_CTX_new(TLS_method()) else {
      throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL could not make a TLS context")
    }
    self.role = role
    self.pointer = context
    // From here `deinit` frees the context, also when a step below throws.
    guard mesh_ssl_ctx_configure(context) == 1 else {
      throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL refused TLS 1.2+ without tickets")
    }
    try Self.present(credentials, in: context)
    mesh_ssl_ctx_require_peer_certificate(context)
    switch role {
    case .client: mesh_ssl_ctx_verify_server_later(context)
    case .server: mesh_ssl_ctx_select_h2(context)
    }
  }

  deinit {
    SSL_CTX_free(self.pointer)
  }

  private static func present(
    _ credentials: MeshLoadedCredentials,
    in context: OpaquePointer
  ) throws(MeshTLSError) {
    var certificates: [OpaquePointer] = []
    defer { for certificate in certificates { X509_free(certificate) } }
    for certificate in credentials.chain {
      certificates.append(try MeshOpenSSL.certificate(der: MeshOpenSSL.der(certificate)))
    }
    guard SSL_CTX_use_certificate(context, certificates[0]) == 1 else {
      throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL refused the certificate")
    }
    for intermediate in certificates.dropFirst() {
      guard mesh_ssl_ctx_add_chain_certificate(context, intermediate) == 1 else {
        throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL refused an intermediate")
      }
    }
    let key = credentials.privateKeyPEM.withUnsafeBytes { bytes in
      mesh_ssl_read_private_key(bytes.baseAddress, Int32(clamping: bytes.count))
    }
    guard let key else {
      throw MeshOpenSSL.error(.malformedPEM, "OpenSSL could not read the private key")
    }
    defer { EVP_PKEY_free(key) }
    guard SSL_CTX_use_PrivateKey(context, key) == 1, SSL_CTX_check_private_key(context) == 1
    else {
      throw MeshOpenSSL.error(.privateKeyMismatch, "OpenSSL refused the private key")
    }
  }

  /// A connection's `SSL`, reading from and writing to memory BIOs (the handler moves the bytes).
  func makeConnection(serverName: String?) throws(MeshTLSError) -> MeshOpenSSLConnection {
    guard let ssl = SSL_new(self.pointer) else {
      throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL could not start a connection")
    }
    guard let input = BIO_new(BIO_s_mem()) else {
      SSL_free(ssl)
      throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL could not make a buffer")
    }
    guard let output = BIO_new(BIO_s_mem()) else {
      BIO_free(input)
      SSL_free(ssl)
      throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL could not make a buffer")
    }
    // The SSL owns both buffers from here, and the connection owns the SSL.
    SSL_set_bio(ssl, input, output)
    let connection = MeshOpenSSLConnection(ssl: ssl, input: input, output: output)
    guard mesh_ssl_set_verdict_slot(ssl, connection.verdict) == 1 else {
      throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL could not keep a verdict")
    }
    switch self.role {
    case .client:
      SSL_set_connect_state(ssl)
      guard mesh_ssl_offer_h2(ssl) == 0 else {
        throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL could not offer ALPN h2")
      }
      if let serverName, mesh_ssl_set_server_name(ssl, serverName) != 1 {
        throw MeshOpenSSL.error(.invalidConfiguration, "OpenSSL refused the server name")
      }
    case .server:
      SSL_set_accept_state(ssl)
    }
    return connection
  }
}

/// One connection's `SSL`, its memory BIOs and its client's verdict on the server, freed
/// together.
final class MeshOpenSSLConnection {
  let ssl: OpaquePointer
  /// Bytes from the network, for OpenSSL to read.
  let input: OpaquePointer
  /// Bytes OpenSSL wrote, for the network.
  let output: OpaquePointer
  /// A client's verdict on its server (`MESH_SSL_VERDICT_*`), read by the verify callback
  /// during the handshake: it lives as long as the SSL.
  let verdict: UnsafeMutablePointer<Int32>

  init(ssl: OpaquePointer, input: OpaquePointer, output: OpaquePointer) {
    self.ssl = ssl
    self.input = input
    self.output = output
    self.verdict = .allocate(capacity: 1)
    self.verdict.initialize(to: MESH_SSL_VERDICT_NONE)
  }

  deinit {
    SSL_free(self.ssl)
    self.verdict.deallocate()
  }
}

/// Conversions and errors at the OpenSSL boundary.
enum MeshOpenSSL {
  /// `code` with `what`, and the reasons on OpenSSL's error queue of this thread (which it
  /// empties).
  static func error(_ code: MeshTLSError.Code, _ what: String) -> MeshTLSError {
    let reasons = Self.drainErrors()
    return MeshTLSError(code: code, message: reasons.isEmpty ? "\(what)." : "\(what): \(reasons).")
  }

  /// OpenSSL's queued errors on this thread as text, oldest first; the queue is left empty.
  static func drainErrors() -> String {
    var reasons: [String] = []
    while true {
      let code = ERR_get_error()
      if code == 0 { break }
      var text = [CChar](repeating: 0, count: 256)
      text.withUnsafeMutableBufferPointer { buffer in
        ERR_error_string_n(code, buffer.baseAddress, buffer.count)
      }
      reasons.append(text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }
    return reasons.joined(separator: "; ")
  }

  static func der(_ certificate: Certificate) throws(MeshTLSError) -> [UInt8] {
    do {
      return try MeshLoadedCredentials.der(certificate)
    } catch {
      throw MeshTLSError(
        code: .malformedPEM,
        message: "Could not encode \(certificate.subject) as DER.",
        cause: error
      )
    }
  }

  /// An `X509` the caller frees.
  static func certificate(der: [UInt8]) throws(MeshTLSError) -> OpaquePointer {
    let certificate = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
      var cursor = buffer.baseAddress
      return d2i_X509(nil, &cursor, buffer.count)
    }
    guard let certificate else {
      throw Self.error(.malformedPEM, "OpenSSL could not read a certificate")
    }
    return certificate
  }

  /// The DER encoding of `certificate` (an `X509`).
  static func der(of certificate: OpaquePointer) -> [UInt8]? {
    let count = i2d_X509(certificate, nil)
    guard count > 0 else { return nil }
    var bytes = [UInt8](repeating: 0, count: Int(count))
    let written = bytes.withUnsafeMutableBufferPointer { buffer -> Int32 in
      var cursor = buffer.baseAddress
      return i2d_X509(certificate, &cursor)
    }
    return written == count ? bytes : nil
  }
}
