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

public import ArgumentParser
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import MeshCore
internal import MeshIdentity
internal import MeshProto
internal import MeshTransport
internal import NIOCore
internal import NIOHTTP2
internal import NIOPosix
internal import NIOSSL
internal import SwiftProtobuf
internal import X509

/// The certificate flags of the commands that call mesh services: `--certs DIR [--identity S]`
/// (the `mesh certs` layout) or `--ca --cert --key`, and `--server-name`.
public struct MeshTLSOptions: ParsableArguments {
  @Option(
    name: .long,
    help:
      "A certificates folder as 'mesh certs' makes it: mTLS with one of its services' certificates."
  )
  var certs: String?

  @Option(
    name: .long,
    help: ArgumentHelp(
      "The service whose certificate in --certs to present.",
      discussion: "Default: $MESH_SERVICE_NAME, else the folder's only service."
    )
  )
  var identity: String?

  @Option(
    name: .long,
    help: "The CA bundle (PEM) to verify servers with; goes with --cert and --key."
  )
  var ca: String?

  @Option(name: .long, help: "The certificate (PEM chain) to present.")
  var cert: String?

  @Option(name: .long, help: "The private key (PEM) of --cert.")
  var key: String?

  @Option(
    name: .long,
    help: ArgumentHelp(
      "The identity the server must present: a SPIFFE ID or a DNS name.",
      discussion: "Default: any identity the CA signed."
    )
  )
  var serverName: String?

  public init() {}

  public func validate() throws {
    _ = try self.configuration()
    _ = try self.serverPolicy()
  }

  /// Whether the flags ask for mTLS at all.
  var usesTLS: Bool { self.certs != nil || self.ca != nil }

  /// The credentials' files, or nil for plaintext.
  func configuration(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws -> MeshTLSConfiguration? {
    let files = [self.ca, self.cert, self.key]
    if let directory = self.certs {
      guard files.allSatisfy({ $0 == nil }) else {
        throw ValidationError("--certs or --ca, --cert and --key: not both.")
      }
      guard !directory.isEmpty else { throw ValidationError("--certs must name a folder.") }
      let service =
        try self.identity ?? Self.defaultIdentity(in: directory, environment: environment)
      return .directory(directory, service: service)
    }
    guard self.identity == nil else { throw ValidationError("--identity goes with --certs.") }
    if files.allSatisfy({ $0 == nil }) { return nil }
    guard let ca = self.ca, let cert = self.cert, let key = self.key,
      !ca.isEmpty, !cert.isEmpty, !key.isEmpty
    else {
      throw ValidationError("--ca, --cert and --key go together.")
    }
    return MeshTLSConfiguration(
      certificateChain: .file(cert),
      privateKey: .file(key),
      trustBundle: .file(ca)
    )
  }

  /// `MESH_SERVICE_NAME`, else the folder's only service certificate.
  static func defaultIdentity(in directory: String, environment: [String: String]) throws -> String
  {
    if let name = environment["MESH_SERVICE_NAME"], !name.isEmpty { return name }
    let files =
      (try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/services")) ?? []
    let services = files.filter { $0.hasSuffix(".crt") }.map { String($0.dropLast(4)) }.sorted()
    guard services.count == 1 else {
      throw ValidationError(
        services.isEmpty
          ? "--certs \(directory) has no service certificates (services/<name>.crt): issue one with 'mesh certs issue'."
          : "--certs \(directory) holds \(services.joined(separator: ", ")): choose one with --identity."
      )
    }
    return services[0]
  }

  /// Which server identities to accept.
  func serverPolicy() throws -> MeshIdentityPolicy {
    guard let name = self.serverName else { return .anyIdentity }
    guard self.usesTLS else { throw ValidationError("--server-name needs --certs or --ca.") }
    do {
      return .exactly(try MeshServiceIdentity(parsing: name))
    } catch {
      throw ValidationError("--server-name: \(error.message)")
    }
  }

  /// Loads the credentials (nil for plaintext); unusable files are exit status 1.
  func load() async throws -> MeshCredentials? {
    guard let configuration = try self.configuration() else { return nil }
    do {
      return try await MeshCredentials(configuration)
    } catch {
      throw MeshCommandFailure(exitCode: 1, "the certificates cannot be used: \(error.message)")
    }
  }
}

/// What one health probe found.
struct MeshProbeResult: Sendable, Encodable {
  enum Outcome: String, Sendable, Encodable {
    /// The server answered SERVING.
    case serving
    /// The server answered another status.
    case notServing = "not_serving"
    /// No connection (refused, unreachable, timed out, or its TLS handshake failed).
    case connectionFailed = "connection_failed"
    /// Connected, but the RPC failed or timed out.
    case rpcFailed = "rpc_failed"

    /// grpc_health_probe's exit status.
    var exitCode: Int32 {
      switch self {
      case .serving: 0
      case .connectionFailed: 2
      case .rpcFailed: 3
      case .notServing: 4
      }
    }
  }

  var address: String
  var service: String
  var outcome: Outcome
  /// The status the server answered: SERVING, NOT_SERVING, SERVICE_UNKNOWN, UNKNOWN.
  var status: String?
  /// Why the probe failed.
  var error: String?
  /// The identity the server's certificate presented, over mTLS (the one the policy accepted).
  var serverIdentity: String?
  /// Every identity in the server's certificate, over mTLS.
  var serverIdentities: [String]?
  /// When the server's certificate expires, over mTLS.
  var serverCertificateExpiry: Date?
  var elapsedMilliseconds: Double

  enum CodingKeys: String, CodingKey {
    case address, service, outcome, status, error
    case serverIdentity = "server_identity"
    case serverIdentities = "server_identities"
    case serverCertificateExpiry = "server_certificate_expiry"
    case elapsedMilliseconds = "elapsed_ms"
  }
}

/// A grpc.health.v1 probe of one server, as grpc_health_probe makes it (its dial blocks until the
/// connection is ready): a connection within the connect timeout, made with NIO (TCP, the mTLS
/// handshake, the HTTP/2 preface and the server's SETTINGS), whose failure is exit status 2; then
/// `Check` (or `Watch`'s first answer) within the RPC timeout over grpc-swift's own connection,
/// whose failure is 3.
struct MeshHealthProbe: Sendable {
  var host: MeshHost
  var port: Int
  var credentials: MeshCredentials?
  var serverPolicy: MeshIdentityPolicy
  var connectTimeout: Duration
  var rpcTimeout: Duration

  var address: String { self.host.authority(port: self.port) }

  /// One `Check` of `service` ("" for the whole server).
  func check(service: String) async -> MeshProbeResult {
    await self.probe(service: service, watch: nil)
  }

  /// `Watch` of `service`: `onStatus` gets each status the server sends; returns when the stream
  /// ends (the server stopped, or the task was cancelled) with the last status.
  func watch(
    service: String,
    onStatus: @escaping @Sendable (String) -> Void
  ) async -> MeshProbeResult {
    await self.probe(service: service, watch: onStatus)
  }

  private func probe(
    service: String,
    watch onStatus: (@Sendable (String) -> Void)?
  ) async -> MeshProbeResult {
    let start = ContinuousClock.now
    var result = MeshProbeResult(
      address: self.address,
      service: service,
      outcome: .serving,
      elapsedMilliseconds: 0
    )
    if let failure = await self.connect(into: &result) {
      result.outcome = .connectionFailed
      result.error = failure
    } else {
      await self.call(service: service, into: &result, watch: onStatus)
    }
    result.elapsedMilliseconds = start.duration(to: .now) / .milliseconds(1)
    return result
  }

  /// A gRPC connection within the connect timeout, closed once the server's HTTP/2 SETTINGS
  /// arrive; nil when it was made, else why not. Over mTLS it also records the server's verified
  /// identity in `result`.
  private func connect(into result: inout MeshProbeResult) async -> String? {
    let host = self.host
    let port = self.port
    let limit = self.connectTimeout
    let verified = MeshLocked<Result<MeshVerifiedPeer, MeshTLSError>?>(nil)
    var tls:
      (
        context: NIOSSLContext,
        verify:
          @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResultWithMetadata>)
          -> Void
      )?
    if let credentials = self.credentials {
      let (configuration, verify) = credentials.clientTLS(server: self.serverPolicy) {
        verified.set($0)
      }
      do {
        tls = (try NIOSSLContext(configuration: configuration), verify)
      } catch {
        return "cannot set up mTLS: \(error)"
      }
    }
    // SNI names a DNS host only (an address in SNI is not allowed).
    let serverName: String? = if case .dns(let name) = host { name } else { nil }
    let tlsSetup = tls
    let failure: String?? = await withTimeLimit(limit) {
      let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
      let settings = eventLoop.makePromise(of: Void.self)
      let ready = eventLoop.makePromise(of: (any Channel).self)
      // Completed on every path (a second completion is ignored): NIO reports a leaked promise.
      defer {
        settings.fail(ChannelError.alreadyClosed)
        ready.fail(ChannelError.alreadyClosed)
      }
      let channel: any Channel
      do {
        let connecting = ClientBootstrap(group: eventLoop)
          .connectTimeout(.nanoseconds(MeshInput.nanoseconds(clamping: limit)))
          .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
              let pipeline = channel.pipeline.syncOperations
              if let tlsSetup {
                try pipeline.addHandler(
                  NIOSSLClientHandler(
                    context: tlsSetup.context,
                    serverHostname: serverName,
                    customVerificationCallbackWithMetadata: tlsSetup.verify
                  )
                )
              }
              try pipeline.addHandler(NIOHTTP2Handler(mode: .client))
              try pipeline.addHandler(SettingsAwaiter(settings))
            }
          }
          .connect(host: host.text, port: port)
        connecting.cascade(to: ready)
        // Cancelled (the command's time is up): stop waiting now, and close the channel if the
        // connect still succeeds.
        channel = try await withTaskCancellationHandler {
          try await ready.futureResult.get()
        } onCancel: {
          ready.fail(CancellationError())
          connecting.whenSuccess { $0.close(promise: nil) }
        }
      } catch {
        return "cannot connect to \(host.authority(port: port)): \(Self.describe(error))"
      }
      defer { channel.close(promise: nil) }
      do {
        try await withTaskCancellationHandler {
          try await settings.futureResult.get()
        } onCancel: {
          settings.fail(CancellationError())
        }
        return nil
      } catch {
        return "connected to \(host.authority(port: port)), but \(Self.describe(error))"
      }
    }
    let peer = verified.value
    if case .success(let peer) = peer {
      result.serverIdentity = peer.identity.description
      result.serverIdentities = peer.identities.map(\.description)
      result.serverCertificateExpiry = peer.chain.first?.notValidAfter
    }
    if case .failure(let error) = peer {
      return "the server's certificate was refused: \(error.message)"
    }
    guard let failure else {
      let step = tlsSetup == nil ? "an HTTP/2 connection" : "an mTLS connection"
      return "\(step) to \(self.address) did not complete within \(MeshGoDuration.format(limit))"
    }
    return failure
  }

  /// The RPC over a connection of its own (mTLS when there are credentials); the connection
  /// check has passed, so any failure here is the RPC's (3).
  private func call(
    service: String,
    into result: inout MeshProbeResult,
    watch onStatus: (@Sendable (String) -> Void)?
  ) async {
    let security: HTTP2ClientTransport.Posix.TransportSecurity
    let config: HTTP2ClientTransport.Posix.Config
    if let credentials = self.credentials {
      do {
        security = try credentials.clientTransportSecurity(server: self.serverPolicy)
      } catch {
        result.outcome = .rpcFailed
        result.error = "cannot set up mTLS: \(error.message)"
        return
      }
      config = credentials.clientConfig()
    } else {
      security = .plaintext
      config = .defaults
    }
    let transport: HTTP2ClientTransport.Posix
    do {
      transport = try HTTP2ClientTransport.Posix(
        target: self.host.resolvableTarget(port: self.port),
        transportSecurity: security,
        config: config
      )
    } catch {
      result.outcome = .rpcFailed
      result.error = "cannot make a connection to \(self.address): \(error)"
      return
    }
    let rpcTimeout = self.rpcTimeout
    let watching = onStatus != nil
    let answer = MeshLocked<String?>(nil)
    let rpc: @Sendable () async -> Result<String, any Error> = {
      do {
        return .success(
          try await withGRPCClient(transport: transport) { client in
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            var options = CallOptions.defaults
            options.waitForReady = false
            if let onStatus {
              return try await health.watch(.with { $0.service = service }, options: options) {
                response in
                var last = "UNKNOWN"
                for try await message in response.messages {
                  last = Self.statusName(message.status)
                  answer.set(last)
                  onStatus(last)
                }
                return last
              }
            }
            options.timeout = rpcTimeout
            let response = try await health.check(
              .with { $0.service = service },
              options: options
            )
            return Self.statusName(response.status)
          }
        )
      } catch {
        return .failure(error)
      }
    }
    // The RPC timeout bounds the answer (a watch's first), whatever grpc-swift's own deadline
    // does; a watch that has answered then lasts as long as its stream.
    let outcome: Result<String, any Error>? = await withTaskGroup(
      of: Result<String, any Error>??.self
    ) { group in
      group.addTask { .some(await rpc()) }
      group.addTask {
        try? await Task.sleep(for: rpcTimeout)
        // Timed out, unless a watch has had its first answer (then this task has no say).
        return watching && answer.value != nil ? nil : .some(nil)
      }
      var decided: Result<String, any Error>? = nil
      while let next = await group.next() {
        if let next {
          decided = next
          break
        }
      }
      group.cancelAll()
      return decided
    }
    switch outcome {
    case .some(.success(let status)):
      result.status = status
      result.outcome = status == "SERVING" ? .serving : .notServing
      if watching && answer.value == nil {
        result.outcome = .rpcFailed
        result.error = "the watch ended before the server sent a status"
      }
    case .some(.failure(let error)):
      result.outcome = .rpcFailed
      if watching, let last = answer.value {
        // A watch ends when the server goes away; what it last said stands.
        result.status = last
        result.error = "the watch ended: \(Self.describe(error))"
      } else {
        result.error = "the health RPC failed: \(Self.describe(error))"
      }
    case .none:
      result.outcome = .rpcFailed
      result.error = "the health RPC timed out after \(MeshGoDuration.format(rpcTimeout))"
    }
  }

  static func statusName(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus) -> String {
    switch status {
    case .unknown: "UNKNOWN"
    case .serving: "SERVING"
    case .notServing: "NOT_SERVING"
    case .serviceUnknown: "SERVICE_UNKNOWN"
    case .UNRECOGNIZED(let value): "UNRECOGNIZED(\(value))"
    }
  }

  /// An error in one line: an RPC error's code and message, else its description.
  static func describe(_ error: any Error) -> String {
    if let error = error as? RPCError {
      return "\(error.code): \(error.message)"
    }
    if let error = error as? IOError {
      return error.description
    }
    return "\(error)"
  }
}

/// A value tasks and callbacks share.
final class MeshLocked<Value: Sendable>: Sendable {
  private let state: MeshMutex<Value>
  init(_ value: Value) { self.state = MeshMutex(value) }
  func set(_ value: Value) { self.state.withLock { $0 = value } }
  var value: Value { self.state.withLock { $0 } }
}

/// Completes `settings` when the server's first SETTINGS frame arrives (its half of the HTTP/2
/// connection preface), fails it if the connection errs or closes first.
private final class SettingsAwaiter: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame

  private let settings: EventLoopPromise<Void>

  init(_ settings: EventLoopPromise<Void>) {
    self.settings = settings
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    if case .settings(.settings) = Self.unwrapInboundIn(data).payload {
      self.settings.succeed(())
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.settings.fail(
      MeshProbeConnectionError("the connection failed: \(MeshHealthProbe.describe(error))")
    )
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.settings.fail(
      MeshProbeConnectionError(
        "the server closed the connection before its HTTP/2 settings (a TLS server probed in plaintext, or one that refused this certificate?)"
      )
    )
    context.fireChannelInactive()
  }
}

/// Why a connection check failed, in words.
struct MeshProbeConnectionError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
