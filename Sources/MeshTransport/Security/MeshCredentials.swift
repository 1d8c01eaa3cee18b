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

public import Foundation
public import GRPCNIOTransportHTTP2Posix
public import Logging
private import MeshCore
public import NIOCertificateReloading
package import NIOCore
public import NIOSSL
internal import SwiftASN1
public import X509

/// A service's live TLS credentials: loaded, checked, rotated from disk, and turned into the
/// `TransportSecurity` of grpc-swift's HTTP/2 server and client transports.
///
/// ```swift
/// let credentials = try await MeshCredentials(.directory("certs", service: "orders"))
/// let server = HTTP2ServerTransport.Posix(
///   address: .ipv4(host: "0.0.0.0", port: 8443),
///   transportSecurity: try credentials.serverTransportSecurity(),
///   config: credentials.serverConfig()
/// )
/// ```
///
/// Both sides verify their peer in full — chain to the mesh CA, validity, then identity — in a
/// verification callback that replaces BoringSSL's own checks. The server requires a client
/// certificate; handlers read the caller's identity with ``MeshCaller/current(in:)``.
///
/// Rotation: run ``run()`` (or call ``reload()``) and replace the files. Each new connection, on
/// either side, presents the certificate loaded last and verifies peers against the trust bundle
/// loaded last; open connections keep theirs and finish their RPCs. A reload that finds bad files
/// keeps the previous credentials and reports a typed error.
public final class MeshCredentials: CertificateReloader, Sendable {
  /// The configuration the credentials are loaded from.
  public let configuration: MeshTLSConfiguration
  private let logger: Logger
  private let state: MeshMutex<State>

  private struct State: Sendable {
    var current: MeshLoadedCredentials
    /// Counts the rotations: what a TLS library's context made from `current` is keyed by.
    var generation: UInt64 = 0
    var lastVerificationFailure: MeshTLSError?
  }

  /// Loads and checks `configuration`.
  ///
  /// - Throws: ``MeshTLSError`` for any bad input: a missing or unreadable file, malformed PEM, a
  ///   key that is not the certificate's, an expired or not yet valid certificate, one not signed
  ///   by the trust bundle, one without an identity, or an out-of-range setting.
  public init(
    _ configuration: MeshTLSConfiguration,
    logger: Logger = Logger(label: "mesh.tls", factory: { _ in SwiftLogNoOpLogHandler() }),
    now: Date = Date()
  ) async throws(MeshTLSError) {
    try configuration.validate()
    let loaded = try await MeshLoadedCredentials.load(configuration, now: now)
    self.configuration = configuration
    self.logger = logger
    self.state = MeshMutex(State(current: loaded, lastVerificationFailure: nil))
    self.logger.info(
      "Loaded mesh TLS credentials",
      metadata: Self.metadata(for: loaded)
    )
    self.warnIfExpiring(now: now)
  }

  // MARK: - What the credentials hold

  /// The service's current certificate.
  public var certificate: Certificate {
    self.state.withLock { $0.current.leaf }
  }

  /// The identities the current certificate carries (SPIFFE first as written, then DNS).
  public var identities: [MeshServiceIdentity] {
    self.state.withLock { $0.current.identities }
  }

  /// When the current certificate expires: the value to export as a metric.
  public var notValidAfter: Date {
    self.certificate.notValidAfter
  }

  /// The current trust bundle.
  public var trustRoots: [Certificate] {
    self.state.withLock { $0.current.trustRoots }
  }

  /// The last peer that failed verification, and why (for logs, admin pages and tests).
  public var lastVerificationFailure: MeshTLSError? {
    self.state.withLock { $0.lastVerificationFailure }
  }

  /// The credentials loaded last, and which rotation they are (for transports that build their
  /// own TLS contexts from them: the native transport's OpenSSL).
  package var loaded: (generation: UInt64, credentials: MeshLoadedCredentials) {
    self.state.withLock { ($0.generation, $0.current) }
  }

  /// What NIOSSL presents on each new connection: the certificate loaded last.
  public var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride {
    let current = self.state.withLock { $0.current }
    var override = NIOSSLContextConfigurationOverride()
    override.certificateChain = current.nioChain.map { .certificate($0) }
    override.privateKey = .privateKey(current.nioPrivateKey)
    return override
  }

  /// A NIOSSL server configuration presenting these credentials (rotating with them), for
  /// plain-TLS servers such as an HTTPS API; clients are not asked for certificates.
  public func tlsServerConfiguration() throws(MeshTLSError) -> TLSConfiguration {
    do {
      return try TLSConfiguration.makeServerConfiguration(certificateReloader: self)
    } catch {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "Could not configure a TLS server.",
        cause: error
      )
    }
  }

  // MARK: - Rotation

  /// Re-reads the files; new connections use what it loaded.
  ///
  /// - Returns: Whether the certificate or trust bundle changed.
  /// - Throws: ``MeshTLSError`` if the new files are bad; the previous credentials stay in use.
  @discardableResult
  public func reload(now: Date = Date()) async throws(MeshTLSError) -> Bool {
    let loaded: MeshLoadedCredentials
    do {
      loaded = try await MeshLoadedCredentials.load(self.configuration, now: now)
    } catch {
      self.logger.warning(
        "Mesh TLS reload failed; keeping the current certificate",
        metadata: ["mesh.tls.error.code": "\(error.code)", "mesh.tls.error": "\(error.message)"]
      )
      throw error
    }
    let changed = self.state.withLock { state in
      let changed =
        state.current.chain != loaded.chain || state.current.trustRoots != loaded.trustRoots
      if changed {
        state.current = loaded
        state.generation &+= 1
      }
      return changed
    }
    if changed {
      self.logger.info("Rotated mesh TLS credentials", metadata: Self.metadata(for: loaded))
    }
    self.warnIfExpiring(now: now)
    return changed
  }

  /// Reloads every ``MeshTLSConfiguration/reloadInterval`` until cancelled.
  public func run() async throws {
    try await self.run(clock: ContinuousClock())
  }

  /// Reloads every ``MeshTLSConfiguration/reloadInterval`` of `clock` until cancelled.
  public func run<C: Clock>(clock: C) async throws where C.Duration == Duration {
    while !Task.isCancelled {
      do {
        try await clock.sleep(for: self.configuration.reloadInterval)
      } catch {
        return  // cancelled
      }
      // A failed reload is logged and keeps the current credentials; try again next time.
      _ = try? await self.reload()
    }
  }

  /// The time left before the certificate expires, as of `now`.
  public func timeUntilExpiry(now: Date = Date()) -> Duration {
    .seconds(self.notValidAfter.timeIntervalSince(now))
  }

  private func warnIfExpiring(now: Date) {
    let remaining = self.timeUntilExpiry(now: now)
    guard remaining <= self.configuration.expiryWarningWindow else { return }
    self.logger.warning(
      "Mesh certificate expires soon; rotate it",
      metadata: [
        "mesh.tls.not_valid_after": "\(self.notValidAfter)",
        "mesh.tls.seconds_left": "\(Int(remaining.components.seconds))",
        "mesh.tls.certificate": "\(self.configuration.certificateChain)",
      ]
    )
  }

  private static func metadata(for loaded: MeshLoadedCredentials) -> Logger.Metadata {
    [
      "mesh.tls.identities": "\(loaded.identities.map(\.description))",
      "mesh.tls.serial": "\(loaded.leaf.serialNumber)",
      "mesh.tls.not_valid_after": "\(loaded.leaf.notValidAfter)",
    ]
  }

  // MARK: - Transport security

  /// mTLS for a server: presents the current certificate, requires a client certificate from
  /// the mesh CA whose identity `clients` accepts.
  public func serverTransportSecurity(
    clients: MeshIdentityPolicy = .anyIdentity
  ) throws(MeshTLSError) -> HTTP2ServerTransport.Posix.TransportSecurity {
    let verify = self.verificationCallback(policy: clients, peerRole: "client")
    do {
      return try .mTLS(certificateReloader: self) { config in
        // Requests and requires a client certificate; our callback does every check.
        config.clientCertificateVerification = .noHostnameVerification
        config.trustRoots = .certificates([])
        config.customVerificationCallback = verify
      }
    } catch {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "Could not configure server mTLS.",
        cause: error
      )
    }
  }

  /// mTLS for a client of a service whose identity `server` accepts.
  public func clientTransportSecurity(
    server: MeshIdentityPolicy
  ) throws(MeshTLSError) -> HTTP2ClientTransport.Posix.TransportSecurity {
    try self.clientTransportSecurity(server: server, onVerified: nil)
  }

  /// Client mTLS as ``clientTransportSecurity(server:)``, telling `onVerified` how each
  /// verification of the server ended: nil when it was accepted, else why it was rejected (so
  /// that a connection's failure can say which identity the server presented).
  package func clientTransportSecurity(
    server: MeshIdentityPolicy,
    onVerified: (@Sendable (MeshTLSError?) -> Void)?
  ) throws(MeshTLSError) -> HTTP2ClientTransport.Posix.TransportSecurity {
    try self.clientTransportSecurity(server: server) { outcome in
      switch outcome {
      case .success: onVerified?(nil)
      case .failure(let error): onVerified?(error)
      }
    }
  }

  /// Client mTLS as ``clientTransportSecurity(server:)``, telling `onPeer` what each verification
  /// of the server found: the server's verified identity and chain, or why it was rejected (what
  /// `mesh health` and `mesh check` report).
  package func clientTransportSecurity(
    server: MeshIdentityPolicy,
    onPeer: @escaping @Sendable (Result<MeshVerifiedPeer, MeshTLSError>) -> Void
  ) throws(MeshTLSError) -> HTTP2ClientTransport.Posix.TransportSecurity {
    let verify = self.verificationCallback(
      policy: server,
      peerRole: "server",
      onPeer: onPeer
    )
    do {
      return try .mTLS(certificateReloader: self) { config in
        // Host names are not identities here: the callback matches SPIFFE or DNS SANs.
        config.serverCertificateVerification = .noHostnameVerification
        config.trustRoots = .certificates([])
        config.customVerificationCallback = verify
      }
    } catch {
      throw MeshTLSError(
        code: .invalidConfiguration,
        message: "Could not configure client mTLS.",
        cause: error
      )
    }
  }

  /// A NIOSSL client configuration presenting the current certificate (as grpc-swift's NIO
  /// transport configures its clients: TLS 1.2 or later, ALPN `grpc-exp` and `h2`), and the
  /// verification callback that checks the server as ``clientTransportSecurity(server:)`` does,
  /// telling `onPeer` what it found: for a connection made with NIO directly (`mesh health`
  /// checks that a connection can be made before it asks anything over it).
  package func clientTLS(
    server: MeshIdentityPolicy,
    onPeer: @escaping @Sendable (Result<MeshVerifiedPeer, MeshTLSError>) -> Void
  ) -> (
    configuration: TLSConfiguration,
    verify:
      @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResultWithMetadata>) ->
      Void
  ) {
    let current = self.state.withLock { $0.current }
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.certificateChain = current.nioChain.map { .certificate($0) }
    configuration.privateKey = .privateKey(current.nioPrivateKey)
    // Host names are not identities here: the callback matches SPIFFE or DNS SANs.
    configuration.certificateVerification = .noHostnameVerification
    configuration.trustRoots = .certificates([])
    // As grpc-swift's NIO transport configures its clients.
    configuration.minimumTLSVersion = .tlsv12
    configuration.applicationProtocols = ["grpc-exp", "h2"]
    let verify = self.verificationCallback(policy: server, peerRole: "server", onPeer: onPeer)
    return (configuration, verify)
  }

  /// The server transport's settings with this configuration's HTTP/2 tuning and keepalive.
  public func serverConfig() -> HTTP2ServerTransport.Posix.Config {
    let http2 = self.configuration.http2
    let keepalive = self.configuration.keepalive
    return .defaults { config in
      config.http2.maxConcurrentStreams = http2.maxConcurrentStreams
      config.http2.maxFrameSize = http2.maxFrameSize
      // grpc-swift's NIO transport has a single target window for the connection and its
      // streams; the connection window is the one that bounds multiplexed throughput.
      config.http2.targetWindowSize = http2.connectionWindowSize
      config.connection.keepalive.clientBehavior.minPingIntervalWithoutCalls =
        keepalive.serverMinimumPingInterval
      config.connection.keepalive.clientBehavior.allowWithoutCalls = keepalive.pingWithoutCalls
    }
  }

  /// The client transport's settings with this configuration's HTTP/2 tuning and keepalive.
  public func clientConfig() -> HTTP2ClientTransport.Posix.Config {
    let http2 = self.configuration.http2
    let keepalive = self.configuration.keepalive
    return .defaults { config in
      config.http2.maxFrameSize = http2.maxFrameSize
      config.http2.targetWindowSize = http2.connectionWindowSize
      config.connection.keepalive = .init(
        time: keepalive.clientPingInterval,
        timeout: keepalive.pingTimeout,
        allowWithoutCalls: keepalive.pingWithoutCalls
      )
    }
  }

  private func verificationCallback(
    policy: MeshIdentityPolicy,
    peerRole: String,
    onPeer: (@Sendable (Result<MeshVerifiedPeer, MeshTLSError>) -> Void)? = nil
  )
    -> @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResultWithMetadata>) ->
    Void
  {
    { [self] certificates, promise in
      promise.completeWithTask {
        let result = await self.verify(certificates, policy: policy, peerRole: peerRole)
        switch result {
        case .success(let (validated, peer)):
          onPeer?(.success(peer))
          return .certificateVerified(VerificationMetadata(validated))
        case .failure(let error):
          onPeer?(.failure(error))
          return .failed
        }
      }
    }
  }

  /// Verifies a peer's chain (DER, leaf first, as it was sent) against the trust bundle loaded
  /// last and `policy`; a rejection is logged and kept as ``lastVerificationFailure``.
  package func verifyPeer(
    derChain: [[UInt8]],
    policy: MeshIdentityPolicy,
    peerRole: String,
    now: Date = Date()
  ) async -> Result<MeshVerifiedPeer, MeshTLSError> {
    let peerChain: [Certificate]
    do {
      peerChain = try derChain.map { try Certificate(derEncoded: $0) }
    } catch {
      return .failure(
        self.rejected(
          MeshTLSError(
            code: .malformedPEM,
            message: "The \(peerRole) sent a certificate that is not valid X.509.",
            cause: error
          ),
          peerRole: peerRole
        )
      )
    }
    let result = await MeshPeerVerifier.verify(
      peerChain: peerChain,
      trustRoots: self.trustRoots,
      policy: policy,
      peerRole: peerRole,
      now: now
    )
    return result.mapError { self.rejected($0, peerRole: peerRole) }
  }

  private func rejected(_ error: MeshTLSError, peerRole: String) -> MeshTLSError {
    self.state.withLock { $0.lastVerificationFailure = error }
    self.logger.info(
      "Rejected a mesh peer",
      metadata: [
        "mesh.tls.peer_role": "\(peerRole)",
        "mesh.tls.error.code": "\(error.code)",
        "mesh.tls.error": "\(error.message)",
      ]
    )
    return error
  }

  private func verify(
    _ certificates: [NIOSSLCertificate],
    policy: MeshIdentityPolicy,
    peerRole: String
  ) async -> Result<(NIOSSL.ValidatedCertificateChain, MeshVerifiedPeer), MeshTLSError> {
    let derChain: [[UInt8]]
    do {
      derChain = try certificates.map { try $0.toDERBytes() }
    } catch {
      return .failure(
        self.rejected(
          MeshTLSError(
            code: .malformedPEM,
            message: "BoringSSL could not encode the \(peerRole)'s certificate.",
            cause: error
          ),
          peerRole: peerRole
        )
      )
    }
    let result = await self.verifyPeer(derChain: derChain, policy: policy, peerRole: peerRole)
    switch result {
    case .success(let peer):
      do {
        let validated = try MeshLoadedCredentials.nioCertificates(peer.chain)
        return .success((NIOSSL.ValidatedCertificateChain(validated), peer))
      } catch {
        return .failure(
          self.rejected(
            MeshTLSError(
              code: .malformedPEM,
              message: "Could not re-encode the \(peerRole)'s validated chain.",
              cause: error
            ),
            peerRole: peerRole
          )
        )
      }
    case .failure(let error):
      return .failure(error)
    }
  }
}
