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

import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import MeshCertificates
import MeshCore
import MeshHealth
import MeshNativeTransport
import MeshProto
import MeshTransport
import NIOCore
import NIOSSL
import SwiftASN1
import SwiftProtobuf
import X509

/// A throwaway mesh PKI in a temporary folder, laid out as `mesh certs` lays it out.
struct TestPKI {
  let directory: MeshCertificateDirectory
  let authority: MeshCertificateAuthority

  init(trustDomain: String = "mesh.local") throws {
    let path = FileManager.default.temporaryDirectory
      .appendingPathComponent("mesh-tests-\(UUID().uuidString)").path
    self.directory = MeshCertificateDirectory(path: path)
    // Backdated, so tests can load credentials "as of" a few days ago.
    self.authority = try MeshCertificateAuthority.create(
      trustDomain: trustDomain,
      now: Date().addingTimeInterval(-30 * 86_400)
    )
    try self.directory.write(self.authority)
  }

  /// Issues (or reissues) a certificate for `service` and writes it to the folder.
  @discardableResult
  func issue(
    _ service: String,
    notValidBefore: Date? = nil,
    notValidAfter: Date? = nil,
    uriNames: [String]? = nil,
    includeDefaultDNSNames: Bool = true
  ) throws -> MeshIssuedCertificate {
    let issued = try self.authority.issue(
      service: service,
      notValidBefore: notValidBefore,
      notValidAfter: notValidAfter,
      uriNames: uriNames,
      includeDefaultDNSNames: includeDefaultDNSNames
    )
    try self.directory.write(issued, force: true)
    return issued
  }

  func configuration(for service: String) -> MeshTLSConfiguration {
    .directory(self.directory.path, service: service)
  }

  func credentials(for service: String, now: Date = Date()) async throws -> MeshCredentials {
    try await MeshCredentials(self.configuration(for: service), now: now)
  }

  func identity(of service: String) throws -> MeshServiceIdentity {
    try .spiffe(trustDomain: self.authority.trustDomain, service: service)
  }

  func remove() {
    try? FileManager.default.removeItem(atPath: self.directory.path)
  }
}

typealias MTLSHealthClient = Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>

/// Records the verified caller of every RPC, as handlers see it through `MeshCaller.current`.
final class CallerRecorder: ServerInterceptor, Sendable {
  private let callers = MeshMutex<[MeshCaller?]>([])

  var recorded: [MeshCaller?] {
    self.callers.withLock { $0 }
  }

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    // The task-local set by MeshCallerInterceptor must agree with the context.
    let fromTaskLocal = MeshCaller.current
    let fromContext = MeshCaller.current(in: context)
    self.callers.withLock { $0.append(fromTaskLocal == fromContext ? fromTaskLocal : nil) }
    return try await next(request, context)
  }
}

/// Runs `body` with the port of an mTLS health server on 127.0.0.1 (port 0), on `transport`.
func withMTLSServer(
  _ credentials: MeshCredentials,
  clients: MeshIdentityPolicy = .anyIdentity,
  recorder: CallerRecorder = CallerRecorder(),
  on kind: TestTransport = .nio,
  _ body: (_ port: Int) async throws -> Void
) async throws {
  let services = [MeshHealthService()]
  let interceptors: [any ServerInterceptor] = [MeshCallerInterceptor(), recorder]
  switch kind {
  case .nio:
    let transport = HTTP2ServerTransport.Posix(
      address: .ipv4(host: "127.0.0.1", port: 0),
      transportSecurity: try credentials.serverTransportSecurity(clients: clients),
      config: credentials.serverConfig()
    )
    try await withGRPCServer(
      transport: transport,
      services: services,
      interceptors: interceptors
    ) { _ in
      guard let port = try await transport.listeningAddress.ipv4?.port else {
        throw RPCError(code: .internalError, message: "The server did not bind an IPv4 address.")
      }
      try await body(port)
    }
  case .native:
    let transport = try MeshNativeServerTransport(
      host: "127.0.0.1",
      port: 0,
      security: .mTLS(try MeshNativeTLS.mTLS(credentials, peers: clients))
    )
    try await withGRPCServer(
      transport: transport,
      services: services,
      interceptors: interceptors
    ) { _ in
      try await body(try await transport.listeningPort)
    }
  }
}

/// Runs `body` with a health client of 127.0.0.1:`port` over `security`.
func withClient(
  port: Int,
  security: HTTP2ClientTransport.Posix.TransportSecurity,
  config: HTTP2ClientTransport.Posix.Config = .defaults,
  _ body: (MTLSHealthClient) async throws -> Void
) async throws {
  let transport = try HTTP2ClientTransport.Posix(
    target: .ipv4(address: "127.0.0.1", port: port),
    transportSecurity: security,
    config: config
  )
  try await withGRPCClient(transport: transport) { client in
    try await body(MTLSHealthClient(wrapping: client))
  }
}

extension MTLSHealthClient {
  /// One Check of the whole server that fails fast (no waiting for a connection).
  func checkServer() async throws -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
    var options = CallOptions.defaults
    options.timeout = .seconds(10)
    options.waitForReady = false
    return try await self.check(.with { $0.service = "" }, options: options).status
  }
}

/// A client that verifies nothing but records the certificate each server presents: how tests
/// see which certificate a server's handshake used.
final class PresentedCertificates: Sendable {
  private let serials = MeshMutex<[Certificate.SerialNumber]>([])

  var recorded: [Certificate.SerialNumber] {
    self.serials.withLock { $0 }
  }

  func clientSecurity(
    presenting credentials: MeshCredentials
  ) throws -> HTTP2ClientTransport.Posix.TransportSecurity {
    try .mTLS(certificateReloader: credentials) { config in
      config.serverCertificateVerification = .noHostnameVerification
      config.trustRoots = .certificates([])
      config.customVerificationCallback = { certificates, promise in
        if let leaf = certificates.first,
          let certificate = try? Certificate(derEncoded: try leaf.toDERBytes())
        {
          self.serials.withLock { $0.append(certificate.serialNumber) }
        }
        promise.succeed(.certificateVerified(VerificationMetadata(nil)))
      }
    }
  }
}

/// A count shared between tasks.
final class Counter: Sendable {
  private let count = MeshMutex(0)

  var value: Int {
    self.count.withLock { $0 }
  }

  /// Adds one; returns the new count (each value is returned to exactly one caller).
  @discardableResult
  func increment() -> Int {
    self.count.withLock {
      $0 += 1
      return $0
    }
  }
}
