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
import MeshIdentity
import MeshNativeTransport
import MeshTransport
import NIOCore
import NIOPosix
import Testing
import X509

/// A throwaway mesh PKI, laid out as `mesh certs` lays it out, with certificates for `services`.
struct NativeTestPKI {
  let directory: MeshCertificateDirectory
  let authority: MeshCertificateAuthority

  init(_ services: [String], trustDomain: String = "mesh.local") throws {
    let path = FileManager.default.temporaryDirectory
      .appendingPathComponent("mesh-native-\(UUID().uuidString)").path
    self.directory = MeshCertificateDirectory(path: path)
    self.authority = try MeshCertificateAuthority.create(trustDomain: trustDomain)
    try self.directory.write(self.authority)
    for service in services { try self.issue(service) }
  }

  /// Issues (or reissues) `service`'s certificate and writes it.
  @discardableResult
  func issue(_ service: String) throws -> MeshIssuedCertificate {
    let issued = try self.authority.issue(service: service)
    try self.directory.write(issued, force: true)
    return issued
  }

  func credentials(_ service: String) async throws -> MeshCredentials {
    try await MeshCredentials(.directory(self.directory.path, service: service))
  }

  func identity(_ service: String) throws -> MeshServiceIdentity {
    try .spiffe(trustDomain: self.authority.trustDomain, service: service)
  }

  /// Native mTLS presenting `service`'s certificate, accepting `peers`.
  func tls(_ service: String, peers: MeshIdentityPolicy = .anyIdentity) async throws
    -> MeshNativeTLS
  {
    try .mTLS(try await self.credentials(service), peers: peers)
  }

  /// Native mTLS presenting this PKI's certificate for `service` while trusting `other`'s CA as
  /// well: the client passes its own checks, and only a server trusting `other` alone refuses it.
  func tls(_ service: String, alsoTrusting other: NativeTestPKI) async throws -> MeshNativeTLS {
    let bundle =
      try String(contentsOfFile: self.directory.caCertificatePath, encoding: .utf8)
      + String(contentsOfFile: other.directory.caCertificatePath, encoding: .utf8)
    let credentials = try await MeshCredentials(
      MeshTLSConfiguration(
        certificateChain: .file(self.directory.certificatePath(service: service)),
        privateKey: .file(self.directory.keyPath(service: service)),
        trustBundle: .pem(bundle)
      )
    )
    return try .mTLS(credentials)
  }

  /// `service`'s certificate, key and the CA, as files for a peer process.
  func files(_ service: String) -> (certificate: String, key: String, ca: String) {
    (
      self.directory.certificatePath(service: service),
      self.directory.keyPath(service: service),
      self.directory.caCertificatePath
    )
  }

  func remove() {
    try? FileManager.default.removeItem(atPath: self.directory.path)
  }
}

/// What each verification of a peer found, in order.
final class PeerLog: Sendable {
  private let results = MeshMutex<[Result<MeshVerifiedPeer, MeshTLSError>]>([])

  var all: [Result<MeshVerifiedPeer, MeshTLSError>] { self.results.withLock { $0 } }
  var accepted: [MeshVerifiedPeer] { self.all.compactMap { try? $0.get() } }

  func record(_ result: Result<MeshVerifiedPeer, MeshTLSError>) {
    self.results.withLock { $0.append(result) }
  }
}

@Suite("Native transport over mTLS (OpenSSL 3)", .timeLimit(.minutes(2)))
struct NativeTLSTests {
  @Test(
    "mTLS: calls, streams, 8 MiB and 100 at once; each side verifies the other's identity",
    arguments: ServerKind.allCases
  )
  func mutualTLS(server kind: ServerKind) async throws {
    let pki = try NativeTestPKI(["orders", "inventory"])
    defer { pki.remove() }
    let serverTLS = try await pki.tls("inventory", peers: .exactly(try pki.identity("orders")))
    let log = PeerLog()
    let clientTLS = try await pki.tls("orders", peers: .exactly(try pki.identity("inventory")))
      .reporting(to: log.record)

    try await withServer(kind, services: [NativeTestService()], tls: serverTLS) { port in
      try await withNativeClient(port: port, security: .mTLS(clientTLS)) { client, _ in
        let caller = try await client.call("Caller", []).message
        #expect(
          String(decoding: caller, as: UTF8.self) == "spiffe://mesh.local/ns/default/svc/orders"
        )
        let reply = try await client.call("Echo", Array("over TLS".utf8), metadata: ["x-k": "v"])
        #expect(reply.message == Array("over TLS".utf8))
        #expect(Array(reply.trailers[stringValues: "x-k"]) == ["v"])

        let rounds = try await client.pingPong(rounds: 200)
        #expect(rounds == 200)
        let echoed = try await client.concurrentEchoes(100)
        #expect(echoed == 100)

        var options = CallOptions.defaults
        options.maxRequestMessageBytes = 16 << 20
        options.maxResponseMessageBytes = 16 << 20
        let large = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let big = try await client.call("Echo", large, options: options)
        #expect(big.message == large)
      }
    }
    let server = try #require(log.accepted.first)
    #expect(server.identity == (try pki.identity("inventory")))
    #expect(log.all.count == 1, "one connection, verified once")
  }

  @Test("grpc-swift's mTLS client calls the native mTLS server; the handler sees the caller")
  func grpcSwiftClient() async throws {
    let pki = try NativeTestPKI(["orders", "inventory"])
    defer { pki.remove() }
    let serverTLS = try await pki.tls("inventory", peers: .trustDomain("mesh.local"))
    let client = try await pki.credentials("orders")
    try await withServer(.native, services: [NativeTestService()], tls: serverTLS) { port in
      let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port),
        transportSecurity: try client.clientTransportSecurity(
          server: .exactly(try pki.identity("inventory"))
        )
      )
      try await withGRPCClient(transport: transport) { client in
        let caller = try await client.call("Caller", []).message
        #expect(
          String(decoding: caller, as: UTF8.self) == "spiffe://mesh.local/ns/default/svc/orders"
        )
        let rounds = try await client.pingPong(rounds: 100)
        #expect(rounds == 100)
      }
    }
  }

  @Test("A server with another identity than expected is refused", arguments: ServerKind.allCases)
  func wrongServerIdentity(server kind: ServerKind) async throws {
    let pki = try NativeTestPKI(["orders", "inventory"])
    defer { pki.remove() }
    let serverTLS = try await pki.tls("inventory")
    let log = PeerLog()
    let clientTLS = try await pki.tls("orders", peers: .exactly(try pki.identity("payments")))
      .reporting(to: log.record)
    try await withServer(kind, services: [NativeTestService()], tls: serverTLS) { port in
      try await withNativeClient(port: port, security: .mTLS(clientTLS)) { client, _ in
        var options = CallOptions.defaults
        options.waitForReady = false
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], options: options)
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("svc/inventory") == true, "\(error?.message ?? "")")
      }
    }
    let rejection = try #require(log.all.first)
    #expect(throws: MeshTLSError.self) { try rejection.get() }
    #expect(clientTLS.credentials.lastVerificationFailure?.code == .identityMismatch)
  }

  @Test(
    "A client the server's policy or CA does not accept gets no RPC through",
    arguments: ServerKind.allCases
  )
  func refusedClients(server kind: ServerKind) async throws {
    let pki = try NativeTestPKI(["orders", "inventory", "billing"])
    let rogue = try NativeTestPKI(["orders"])
    defer {
      pki.remove()
      rogue.remove()
    }
    let serverTLS = try await pki.tls("inventory", peers: .exactly(try pki.identity("orders")))
    let service = NativeTestService()
    try await withServer(kind, services: [service], tls: serverTLS) { port in
      // The wrong identity, from the right CA.
      let billing = try await pki.tls("billing")
      // The right identity, from another CA.
      let forged = try await rogue.tls("orders", alsoTrusting: pki)
      var options = CallOptions.defaults
      options.waitForReady = false
      for security in [MeshNativeTransportSecurity.mTLS(billing), .mTLS(forged)] {
        try await withNativeClient(port: port, security: security) { client, _ in
          let error = await #expect(throws: RPCError.self) {
            try await client.call("Echo", [1], options: options)
          }
          #expect(error?.code == .unavailable)
          // The NIO server refuses in the handshake (an alert); the native one right after it
          // (or, on a run slowed past the connect timeout, the handshake is what ran out).
          #expect(error?.message.contains("TLS") == true, "\(String(describing: error))")
        }
      }
      // The server goes on serving the right client.
      let orders = try await pki.tls("orders")
      try await withNativeClient(port: port, security: .mTLS(orders)) { client, _ in
        let reply = try await client.call("Echo", [7])
        #expect(reply.message == [7])
      }
    }
    // The last one refused was the forged one.
    #expect(serverTLS.credentials.lastVerificationFailure?.code == .untrustedCertificate)
  }

  @Test("A TLS configuration's HTTP/2 tuning applies where it departs from its defaults")
  func tuning() throws {
    let settings = MeshNativeTransportSettings.defaults
    // Envoy's defaults (the TLS configuration's) leave the native transport's own.
    #expect(settings.tuned(by: .defaults) == settings)
    var http2 = MeshTLSConfiguration.HTTP2.defaults
    http2.initialStreamWindowSize = 262_144
    http2.maxFrameSize = 32_768
    let tuned = settings.tuned(by: http2)
    #expect(tuned.streamWindow == 262_144)
    #expect(tuned.maxFrameSize == 32_768)
    #expect(tuned.connectionWindow == settings.connectionWindow)
    #expect(tuned.maxConcurrentStreams == settings.maxConcurrentStreams)
    http2 = .defaults
    http2.connectionWindowSize = 4 << 20
    http2.maxConcurrentStreams = 250
    let windows = settings.tuned(by: http2)
    #expect(windows.connectionWindow == 4 << 20)
    #expect(windows.maxConcurrentStreams == 250)
    #expect(windows.streamWindow == settings.streamWindow)
    // Values set on the native settings themselves win over the TLS configuration's.
    let explicit = MeshNativeTransportSettings.defaults {
      $0.connectionWindow = 32 << 20
      $0.maxConcurrentStreams = 50
    }
    let kept = explicit.tuned(by: http2)
    #expect(kept.connectionWindow == 32 << 20)
    #expect(kept.maxConcurrentStreams == 50)
  }

  @Test("Plaintext and TLS don't mix: each side fails at once with a clear error")
  func plaintextMismatch() async throws {
    let pki = try NativeTestPKI(["orders", "inventory"])
    defer { pki.remove() }
    var options = CallOptions.defaults
    options.waitForReady = false
    // A TLS client and a plaintext server.
    try await withServer(.native, services: [NativeTestService()]) { port in
      let tls = try await pki.tls("orders")
      try await withNativeClient(port: port, security: .mTLS(tls)) { client, _ in
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], options: options)
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("TLS") == true, "\(error?.message ?? "")")
      }
    }
    // A plaintext client and a TLS server.
    let serverTLS = try await pki.tls("inventory")
    try await withServer(.native, services: [NativeTestService()], tls: serverTLS) { port in
      try await withNativeClient(port: port) { client, _ in
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], options: options)
        }
        #expect(error?.code == .unavailable)
      }
    }
  }

  @Test("Rotation: new connections present the reloaded certificate, open ones keep theirs")
  func rotation() async throws {
    let pki = try NativeTestPKI(["orders", "inventory"])
    defer { pki.remove() }
    let serverCredentials = try await pki.credentials("inventory")
    let serverTLS = try MeshNativeTLS.mTLS(serverCredentials)
    let first = serverCredentials.certificate.serialNumber
    let log = PeerLog()
    let clientTLS = try await pki.tls("orders").reporting(to: log.record)

    try await withServer(.native, services: [NativeTestService()], tls: serverTLS) { port in
      try await withNativeClient(port: port, security: .mTLS(clientTLS)) { old, _ in
        #expect(try await old.call("Echo", [1]).message == [1])

        let reissued = try pki.issue("inventory")
        #expect(try await serverCredentials.reload())
        #expect(serverCredentials.certificate.serialNumber == reissued.certificate.serialNumber)

        try await withNativeClient(port: port, security: .mTLS(clientTLS)) { new, _ in
          let reply = try await new.call("Echo", [2])
          #expect(reply.message == [2])
        }
        // The connection made before the rotation still carries calls.
        #expect(try await old.call("Echo", [3]).message == [3])
      }
      let serials = log.accepted.map { $0.chain[0].serialNumber }
      #expect(serials == [first, serverCredentials.certificate.serialNumber])
      #expect(serials.last != first)
    }
  }

  /// A native mTLS server with `settings` serving the test service while `body` runs.
  private func withNativeTLSServer(
    _ tls: MeshNativeTLS,
    settings: MeshNativeTransportSettings,
    _ body: (Int, GRPCServer<MeshNativeServerTransport>) async throws -> Void
  ) async throws {
    let transport = try MeshNativeServerTransport(
      host: "127.0.0.1",
      port: 0,
      security: .mTLS(tls),
      settings: settings
    )
    let server = GRPCServer(transport: transport, services: [NativeTestService()])
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      try await body(try await transport.listeningPort, server)
      server.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("A server closes a connection whose TLS handshake does not complete in time")
  func handshakeTimeout() async throws {
    let pki = try NativeTestPKI(["inventory"])
    defer { pki.remove() }
    let settings = MeshNativeTransportSettings.defaults { $0.connectTimeout = .milliseconds(200) }
    try await withNativeTLSServer(try await pki.tls("inventory"), settings: settings) { port, _ in
      // Connects and says nothing: the server's handshake timeout closes it.
      let silent = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port).get()
      try await silent.closeFuture.get()
    }
  }

  @Test("A graceful stop closes connections still in their TLS handshake")
  func gracefulStopDuringHandshake() async throws {
    let pki = try NativeTestPKI(["inventory"])
    defer { pki.remove() }
    // A timeout far beyond the test's limit: only the stop can close the connection.
    let settings = MeshNativeTransportSettings.defaults { $0.connectTimeout = .seconds(3600) }
    try await withNativeTLSServer(try await pki.tls("inventory"), settings: settings) {
      port,
      server in
      let silent = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port).get()
      server.beginGracefulShutdown()
      try await silent.closeFuture.get()
    }
  }
}
