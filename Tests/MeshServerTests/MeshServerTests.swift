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
import InMemoryLogging
import InMemoryTracing
import Logging
import MeshCertificates
import MeshClient
import MeshConsul
import MeshConsulAgent
import MeshCore
import MeshDiscovery
import MeshHealth
import MeshNativeTransport
import MeshProto
import MeshTestKit
import MeshTransport
import MetricsTestKit
import Testing
import Tracing

@testable import MeshServer

/// Calls Echo in a loop until stopped, counting failures.
final class EchoLoad: Sendable {
  private let state = MeshMutex((stopped: false, phase: "start", failures: [String]()))

  /// Each failure, prefixed with the phase the test was in when it happened.
  var failures: [String] { self.state.withLock { $0.failures } }

  /// Names what the test does next, for the failures' messages.
  func enter(_ phase: String) {
    self.state.withLock { $0.phase = phase }
  }

  func stop() {
    self.state.withLock { $0.stopped = true }
  }

  func run(_ client: MeshGRPCClient) async {
    while !self.state.withLock({ $0.stopped }) {
      do {
        _ = try await client.echo("load")
      } catch {
        self.state.withLock { $0.failures.append("\($0.phase): \(error)") }
      }
    }
  }
}

/// Runs `body` with the embedded agent on a free port and its address.
func withAgent(_ body: (URL) async throws -> Void) async throws {
  let agent = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: 0))
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await agent.run() }
    defer { agent.beginGracefulShutdown() }
    let port = try await agent.listeningPort
    try await body(try #require(URL(string: "http://127.0.0.1:\(port)")))
  }
}

/// The transport a test's servers and clients run on.
enum TestTransport: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case nio
  case native

  var testDescription: String { self.rawValue }

  /// The transports a matrix test runs on: both, except under a sanitizer
  /// (`MESH_SANITIZED=1`), where the suites run on NIO alone, as before the matrix: both at once
  /// doubled the loopback servers running together at a sanitizer's speed, and timing
  /// expectations failed for no fault of the code. The native transport's own suites run
  /// under both sanitizers.
  static var matrix: [TestTransport] {
    ProcessInfo.processInfo.environment["MESH_SANITIZED"] == "1" ? [.nio] : allCases
  }

  var server: MeshServerTransportKind {
    switch self {
    case .nio: .nio
    case .native: .native(.defaults)
    }
  }

  var client: MeshTransportKind {
    switch self {
    case .nio: .nio
    case .native: .native(.defaults)
    }
  }
}

@Suite("MeshServer", .timeLimit(.minutes(2)))
struct MeshServerTests {
  @Test(
    "Three registered servers under load; one drains: no RPC fails, the others take its share",
    arguments: TestTransport.matrix
  )
  func drainUnderLoad(kind: TestTransport) async throws {
    try await withAgent { consulAddress in
      let clock = MeshManualClock()
      let registration = MeshServerConfiguration.Registration(
        consul: ConsulClientConfiguration(address: consulAddress),
        checkInterval: .milliseconds(100)
      )
      try await withThrowingTaskGroup(of: Void.self) { group in
        var servers: [(server: MeshServer, echo: EchoService, stopped: MeshSignal)] = []
        for _ in 0..<3 {
          let echo = EchoService()
          var serverConfiguration = MeshServerConfiguration(
            serviceName: "echo",
            host: "127.0.0.1",
            port: 0,
            registration: registration
          )
          serverConfiguration.transportKind = kind.server
          let server = try await MeshServer(
            configuration: serverConfiguration,
            services: [echo],
            clock: clock
          )
          let stopped = MeshSignal()
          group.addTask {
            try await server.run()
            stopped.fire()
          }
          servers.append((server, echo, stopped))
        }
        for (server, _, _) in servers {
          _ = try await server.listeningPort
          #expect(server.health.status(of: "test.Echo") == .serving)
          #expect(server.health.status(of: "") == .serving)
        }

        var configuration = MeshClientConfiguration(
          consul: ConsulClientConfiguration(address: consulAddress)
        )
        configuration.policy = .roundRobin
        configuration.transportKind = kind.client
        try await withMeshClient(configuration) { mesh in
          let client = try mesh.client(for: "echo")
          let transport = try #require(mesh.transport(for: "echo"))
          // Registered, and passing the agent's gRPC checks.
          await transport.waitForPickableEndpoints(3)
          let load = EchoLoad()
          await withTaskGroup(of: Void.self) { workers in
            for _ in 0..<4 { workers.addTask { await load.run(client) } }
            await transport.waitForStats { $0.attemptsTotal >= 100 }

            let draining = servers[0]
            load.enter("draining")
            draining.server.beginGracefulShutdown()
            // NOT_SERVING and deregistered: Consul discovery drops it.
            await transport.waitForStats { $0.endpoints == 2 }
            load.enter("drained server dropped")
            #expect(draining.server.health.status(of: "test.Echo") == .notServing)
            // The drain delay (on the test's clock), then GOAWAY; the server stops.
            await clock.waitForSleepers(1)
            load.enter("after the drain delay")
            clock.advance(by: MeshServerConfiguration.Drain().delay)
            await draining.stopped.wait()
            load.enter("after the drained server stopped")
            let atStop = transport.stats.attemptsTotal
            await transport.waitForStats { $0.attemptsTotal >= atStop + 100 }
            load.stop()
          }
          let failures = load.failures
          #expect(
            failures.isEmpty,
            "\(failures.count) failures: \(failures.prefix(3)) … \(failures.suffix(2))"
          )
          #expect(servers[1].echo.calls > 0 && servers[2].echo.calls > 0)
        }
        for (server, _, _) in servers.dropFirst() { server.beginGracefulShutdown() }
        await clock.waitForSleepers(2)
        clock.advance(by: MeshServerConfiguration.Drain().delay)
        try await group.waitForAll()
      }
    }
  }

  /// A throwaway mesh CA with certificates for `echo`, `checkout` and `billing`.
  static func makePKI() throws -> MeshCertificateDirectory {
    let directory = MeshCertificateDirectory(
      path: FileManager.default.temporaryDirectory
        .appendingPathComponent("mesh-server-\(UUID().uuidString)").path
    )
    let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
    try directory.write(authority)
    for service in ["echo", "checkout", "billing"] {
      try directory.write(try authority.issue(service: service))
    }
    return directory
  }

  /// An mTLS echo server's settings (no drain delay), with `directory`'s certificate for `echo`,
  /// on `kind`.
  static func echoServer(
    _ directory: MeshCertificateDirectory,
    on kind: TestTransport = .nio
  ) -> MeshServerConfiguration {
    var configuration = MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0)
    configuration.transportKind = kind.server
    configuration.tls = .init(credentials: .directory(directory.path, service: "echo"))
    configuration.drain = .init(delay: .zero, gracePeriod: .seconds(5))
    return configuration
  }

  /// A mesh client with `service`'s certificate from `directory`, calling `echo` on `port`, on
  /// `kind`.
  static func echoClient(
    _ service: String,
    _ directory: MeshCertificateDirectory,
    port: Int,
    on kind: TestTransport = .nio
  ) -> MeshClientConfiguration {
    var configuration = MeshClientConfiguration(
      serviceName: service,
      discovery: MeshStaticDiscovery(
        ["echo": [MeshEndpoint(id: "echo-0", host: "127.0.0.1", port: port)]]
      ),
      tls: .init(credentials: .directory(directory.path, service: service))
    )
    configuration.transportKind = kind.client
    // No attempt is abandoned for being slow: the tests count the calls that reach the handler
    // (authorization's), and under ThreadSanitizer an allowed call outlived the 5 s per-try
    // timeout and its retry reached the handler a second time. Retries of failures stay on.
    configuration.resilience.defaults.retry?.perTryTimeout = nil
    return configuration
  }

  /// ``echoClient(_:_:port:on:)`` without retries: each call reaches the server once, as the
  /// metrics test counts them (under ThreadSanitizer an attempt outlived its per-try timeout and
  /// its retry was counted too).
  static func meteredClient(
    _ service: String,
    _ directory: MeshCertificateDirectory,
    port: Int,
    on kind: TestTransport
  ) -> MeshClientConfiguration {
    var configuration = Self.echoClient(service, directory, port: port, on: kind)
    configuration.resilience.defaults.retry = nil
    return configuration
  }

  @Test("Under mTLS, one client connection holds 300 Watch streams: no stream limit by default")
  func manyStreamsOnOneConnection() async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    var configuration = MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0)
    configuration.tls = .init(credentials: .directory(directory.path, service: "echo"))
    configuration.drain = .init(delay: .zero, gracePeriod: .seconds(5))
    #expect(configuration.connections.maxConcurrentStreams == Int(Int32.max))
    try await withMeshServer(configuration, services: []) { server in
      let port = try await server.listeningPort
      let credentials = try await MeshCredentials(.directory(directory.path, service: "checkout"))
      let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port),
        transportSecurity: try credentials.clientTransportSecurity(server: .anyIdentity),
        config: credentials.clientConfig()
      )
      try await withGRPCClient(transport: transport) { client in
        let health = Grpc_Health_V1_Health.Client(wrapping: client)
        await withThrowingTaskGroup(of: Void.self) { group in
          for _ in 0..<300 {
            group.addTask {
              try await health.watch(.init()) { response in
                for try await _ in response.messages {}
              }
            }
          }
          // With the TLS settings' 100 streams a connection (or none advertised, which SwiftNIO
          // takes as 100), this would wait for ever.
          await server.health.waitForWatcherCount(300)
          group.cancelAll()
          while (try? await group.next()) != nil {}
        }
      }
    }
  }

  @Test(
    "mTLS: a handler sees the caller's identity; a plaintext caller never reaches it",
    arguments: TestTransport.matrix
  )
  func mTLSCaller(kind: TestTransport) async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }

    let echo = EchoService()
    try await withMeshServer(Self.echoServer(directory, on: kind), services: [echo]) { server in
      let port = try await server.listeningPort
      try await withMeshClient(Self.echoClient("checkout", directory, port: port, on: kind)) {
        mesh in
        let reply = try await mesh.client(for: "echo").echo("hi")
        #expect(reply == "spiffe://mesh.local/ns/default/svc/checkout: hi")
      }
      #expect(echo.calls == 1)

      // Plaintext to the mTLS port: the handshake fails; the handler never runs.
      let plaintext = MeshClientConfiguration(
        discovery: MeshStaticDiscovery(["echo": [MeshEndpoint(host: "127.0.0.1", port: port)]]),
        defaultTimeout: .seconds(2)
      )
      try await withMeshClient(plaintext) { mesh in
        _ = await #expect(throws: RPCError.self) { try await mesh.client(for: "echo").echo("hi") }
      }
      #expect(echo.calls == 1)
    }
  }

  @Test("Intentions from Consul: a change in the agent takes effect at once, without a restart")
  func intentionsFromConsul() async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    try await withAgent { consulAddress in
      let consul = try ConsulClient(ConsulClientConfiguration(address: consulAddress))
      var configuration = Self.echoServer(directory)
      configuration.intentions = .init(
        consul: ConsulClientConfiguration(address: consulAddress),
        defaultAction: .deny
      )
      let echo = EchoService()
      try await withMeshServer(configuration, services: [echo]) { server in
        let intentions = try #require(server.intentions)
        await intentions.waitForUpdate(after: 0)  // Consul's first answer: no intentions
        let port = try await server.listeningPort
        try await withMeshClient(Self.echoClient("checkout", directory, port: port)) { mesh in
          let echoClient = try mesh.client(for: "echo")
          let denied = await #expect(throws: RPCError.self) { try await echoClient.echo("hi") }
          #expect(denied?.code == .permissionDenied)
          #expect(denied?.message.contains("no intention matches") == true)
          let health = Grpc_Health_V1_Health.Client(wrapping: echoClient)
          #expect(try await health.check(.init()).status == .serving, "health stays open")

          // Allowed in Consul: in force as soon as the blocking query returns.
          var seen = intentions.updates
          let start = ContinuousClock.now
          try await consul.upsertIntention(
            ConsulIntention(sourceName: "checkout", destinationName: "echo", action: "allow")
          )
          await intentions.waitForUpdate(after: seen)
          let elapsed = ContinuousClock.now - start
          if ProcessInfo.processInfo.environment["MESH_SANITIZED"] == nil {
            #expect(elapsed < .seconds(1), "took \(elapsed)")
          }
          let reply = try await echoClient.echo("hi")
          #expect(reply.hasSuffix("checkout: hi"))

          // Per method, from a service-intentions config entry with gRPC paths.
          seen = intentions.updates
          try await consul.setServiceIntentions(
            ConsulServiceIntentions(
              name: "echo",
              sources: [
                ConsulSourceIntention(
                  name: "checkout",
                  permissions: [
                    ConsulIntentionPermission(
                      action: "deny",
                      http: ConsulIntentionHTTPPermission(pathExact: "/test.Echo/Echo")
                    ),
                    ConsulIntentionPermission(
                      action: "allow",
                      http: ConsulIntentionHTTPPermission(pathPrefix: "/test.Echo/")
                    ),
                  ]
                )
              ]
            )
          )
          await intentions.waitForUpdate(after: seen)
          let perMethod = await #expect(throws: RPCError.self) { try await echoClient.echo("hi") }
          #expect(perMethod?.code == .permissionDenied)
          #expect(
            perMethod?.message.contains("/test.Echo/Echo") == true,
            "\(String(describing: perMethod))"
          )
        }
      }
      #expect(echo.calls == 1)
    }
  }

  @Test("Registration and intentions over HTTPS Consul: served, registered, stopped cleanly")
  func httpsConsul() async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let authority = try directory.loadAuthority()
    try directory.write(try authority.issue(service: "consul", ipAddresses: ["127.0.0.1"]))
    var agentConfiguration = MeshConsulAgentConfiguration(port: 0)
    agentConfiguration.httpsCredentials = try await MeshCredentials(
      .directory(directory.path, service: "consul")
    )
    let agent = MeshConsulAgent(configuration: agentConfiguration)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await agent.run() }
      let agentPort = try await agent.listeningPort
      // The clients own HTTP clients (a CA bundle): each must be shut down when its task ends.
      let consul = try ConsulClientConfiguration.fromEnvironment([
        "CONSUL_HTTP_ADDR": "127.0.0.1:\(agentPort)", "CONSUL_HTTP_SSL": "true",
        "CONSUL_CACERT": directory.caCertificatePath,
      ])
      var configuration = Self.echoServer(directory)
      configuration.registration = .init(consul: consul, checkInterval: .milliseconds(100))
      configuration.intentions = .init(consul: consul, defaultAction: .allow)
      try await withMeshServer(configuration, services: [EchoService()]) { server in
        _ = try await server.listeningPort
        await server.intentions?.waitForUpdate(after: 0)
        // Registered by a task of its own: waited for with blocking queries (passing or not: the
        // agent's check has no mesh certificate to call the server with).
        let client = try ConsulClient(consul)
        let all = ConsulHealthQuery(passingOnly: false)
        var instances = try await client.healthService("echo", query: all)
        while instances.value.isEmpty {
          instances = try await client.healthService(
            "echo",
            query: all,
            index: instances.index,
            wait: .seconds(30)
          )
        }
        #expect(instances.value.count == 1)
        try await client.shutdown()
      }
      agent.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test(
    "Authorization: an allowed caller reaches the handler; others get PERMISSION_DENIED",
    arguments: TestTransport.matrix
  )
  func authorization(kind: TestTransport) async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let logs = InMemoryLogHandler()
    let echo = EchoService()
    var configuration = Self.echoServer(directory, on: kind)
    configuration.authorization = MeshAuthorizationPolicy(
      rules: [.allow(from: .service("checkout"), to: .service("test.Echo"))],
      defaultAction: .deny
    )
    try await withMeshServer(
      configuration,
      services: [echo],
      logger: Logger(label: "test", factory: { _ in logs })
    ) { server in
      let port = try await server.listeningPort
      func client(_ service: String) -> MeshClientConfiguration {
        Self.echoClient(service, directory, port: port, on: kind)
      }
      try await withMeshClient(client("checkout")) { mesh in
        let reply = try await mesh.client(for: "echo").echo("hi")
        #expect(reply.hasSuffix("checkout: hi"))
      }
      try await withMeshClient(client("billing")) { mesh in
        let error = await #expect(throws: RPCError.self) {
          try await mesh.client(for: "echo").echo("hi")
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("default deny") == true, "\(String(describing: error))")
        // The health service stays open to every verified caller.
        let health = Grpc_Health_V1_Health.Client(wrapping: try mesh.client(for: "echo"))
        #expect(try await health.check(.init()).status == .serving)
      }
      #expect(echo.calls == 1)
      let denials = logs.entries.filter { $0.metadata["mesh.authz.decision"] == "deny" }
      #expect(denials.count == 1)
      #expect(
        denials.first?.metadata["mesh.authz.caller"] == "spiffe://mesh.local/ns/default/svc/billing"
      )
      #expect(denials.first?.metadata["mesh.authz.method"] == "test.Echo/Echo")
    }

    // Without mTLS there is no verified caller: no handler runs.
    var plaintext = MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0)
    plaintext.drain = .init(delay: .zero, gracePeriod: .seconds(5))
    plaintext.authorization = MeshAuthorizationPolicy(defaultAction: .allow)
    try await withMeshServer(plaintext, services: [echo]) { server in
      let port = try await server.listeningPort
      let client = MeshClientConfiguration(
        discovery: MeshStaticDiscovery(["echo": [MeshEndpoint(host: "127.0.0.1", port: port)]])
      )
      try await withMeshClient(client) { mesh in
        let error = await #expect(throws: RPCError.self) {
          try await mesh.client(for: "echo").echo("hi")
        }
        #expect(error?.code == .unauthenticated)
      }
    }
    #expect(echo.calls == 1)
  }

  @Test(
    "Native server (and client): the handler sees the caller; the authorization refuses others",
    arguments: [false, true]
  )
  func nativeTransport(nativeClient: Bool) async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let echo = EchoService()
    var configuration = Self.echoServer(directory)
    configuration.transportKind = .native(.defaults)
    configuration.authorization = MeshAuthorizationPolicy(
      rules: [.allow(from: .service("checkout"), to: .service("test.Echo"))],
      defaultAction: .deny
    )
    try await withMeshServer(configuration, services: [echo]) { server in
      let port = try await server.listeningPort
      func client(_ service: String) -> MeshClientConfiguration {
        var client = Self.echoClient(service, directory, port: port)
        if nativeClient { client.transportKind = .native(.defaults) }
        return client
      }
      try await withMeshClient(client("checkout")) { mesh in
        let reply = try await mesh.client(for: "echo").echo("hi")
        #expect(reply == "spiffe://mesh.local/ns/default/svc/checkout: hi")
      }
      try await withMeshClient(client("billing")) { mesh in
        let error = await #expect(throws: RPCError.self) {
          try await mesh.client(for: "echo").echo("hi")
        }
        #expect(error?.code == .permissionDenied)
        let health = Grpc_Health_V1_Health.Client(wrapping: try mesh.client(for: "echo"))
        let status = try await health.check(.init()).status
        #expect(status == .serving)
      }
    }
    #expect(echo.calls == 1)
  }

  @Test("The native server refuses settings it does not take, and bad MESH_TRANSPORT")
  func nativeUnsupported() async throws {
    var configuration = MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0)
    configuration.transportKind = .native(.defaults)
    configuration.transport = .defaults
    let error = await #expect(throws: MeshServerError.self) {
      try await MeshServer(configuration: configuration, services: [])
    }
    #expect(error?.message.contains("grpc-swift's transport settings") == true)
    // Native settings out of range are the server's typed error too.
    configuration.transport = nil
    configuration.transportKind = .native(.defaults { $0.maxFrameSize = 1 })
    let outOfRange = await #expect(throws: MeshServerError.self) {
      try await MeshServer(configuration: configuration, services: [])
    }
    #expect(outOfRange?.message.contains("maxFrameSize") == true)

    let environment = ["MESH_SERVICE_NAME": "echo", "MESH_TRANSPORT": "h3"]
    let bad = #expect(throws: MeshServerError.self) {
      try MeshServerConfiguration.fromEnvironment(environment)
    }
    #expect(bad?.message.contains("MESH_TRANSPORT") == true)
    let native = try MeshServerConfiguration.fromEnvironment(
      ["MESH_SERVICE_NAME": "echo", "MESH_TRANSPORT": "native"]
    )
    guard case .native = native.transportKind else {
      Issue.record("MESH_TRANSPORT=native did not choose the native transport")
      return
    }
    // The native transport is the default (the package's Native trait is on); `nio` chooses
    // grpc-swift's.
    for kind in [
      MeshServerConfiguration(serviceName: "echo", host: "127.0.0.1", port: 0).transportKind,
      try MeshServerConfiguration.fromEnvironment(["MESH_SERVICE_NAME": "echo"]).transportKind,
    ] {
      guard case .native(let settings) = kind, settings == .defaults else {
        Issue.record("the default is not the native transport with its defaults: \(kind)")
        continue
      }
    }
    // grpc-swift's transport settings, given to the initializer, choose grpc-swift's transport.
    let given = MeshServerConfiguration(
      serviceName: "echo",
      host: "127.0.0.1",
      port: 0,
      transport: .defaults
    )
    guard case .nio = given.transportKind else {
      Issue.record("grpc-swift's settings did not choose grpc-swift's transport")
      return
    }
    let nio = try MeshServerConfiguration.fromEnvironment(
      ["MESH_SERVICE_NAME": "echo", "MESH_TRANSPORT": "nio"]
    )
    guard case .nio = nio.transportKind else {
      Issue.record("MESH_TRANSPORT=nio did not choose the NIO transport")
      return
    }
  }

  @Test(
    "Metrics: gRFC A66's server call instruments, calls the authorization denies included",
    arguments: TestTransport.matrix
  )
  func metrics(kind: TestTransport) async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let metrics = TestMetrics()
    var configuration = Self.echoServer(directory, on: kind)
    configuration.metrics = metrics
    configuration.authorization = MeshAuthorizationPolicy(
      rules: [.allow(from: .service("checkout"), to: .service("test.Echo"))],
      defaultAction: .deny
    )
    configuration.authorization?.rules.append(
      .allow(from: .service("checkout"), to: .service("test.Wait"))
    )
    let waitService = WaitService()
    try await withMeshServer(configuration, services: [EchoService(), waitService]) { server in
      let port = try await server.listeningPort
      try await withMeshClient(Self.meteredClient("checkout", directory, port: port, on: kind)) {
        mesh in
        for _ in 0..<2 { _ = try await mesh.client(for: "echo").echo("hi") }
        // A method the server does not serve: counted as "other".
        let unknown = await #expect(throws: RPCError.self) {
          try await mesh.client(for: "echo").unary(
            request: ClientRequest(message: "hi"),
            descriptor: MethodDescriptor(fullyQualifiedService: "test.Nothing", method: "Call"),
            serializer: TextSerializer(),
            deserializer: TextSerializer(),
            options: .defaults
          ) { try $0.message }
        }
        #expect(unknown?.code == .unimplemented)
        // A call its client gives up on once the handler has it (a deadline could end it before
        // the server saw it): the handler answers after the client has gone.
        let client = try mesh.client(for: "echo")
        let reply = await withThrowingTaskGroup(of: String.self) { group in
          group.addTask { try await client.wait(options: .defaults) }
          var started = waitService.started.makeAsyncIterator()
          await started.next()
          group.cancelAll()
          do {
            return try await group.next()
          } catch {
            return nil
          }
        }
        #expect(reply == nil, "a cancelled call answered")
      }
      try await withMeshClient(Self.meteredClient("billing", directory, port: port, on: kind)) {
        mesh in
        let error = await #expect(throws: RPCError.self) {
          try await mesh.client(for: "echo").echo("hi")
        }
        #expect(error?.code == .permissionDenied)
      }
      // The sampled gauges: each served service SERVING, and the certificate's expiry.
      server.recordMetrics()
      for service in ["", "test.Echo", "test.Wait"] {
        let serving = try metrics.expectGauge(
          "mesh.server.health.serving",
          [("grpc.service", service)]
        )
        #expect(serving.lastValue == 1, "\(service)")
      }
      let expiry = try metrics.expectGauge(
        "mesh.certificate.expiration_timestamp",
        [("identity", "spiffe://mesh.local/ns/default/svc/echo")]
      )
      let notAfter = try #require(server.credentials?.notValidAfter)
      #expect(expiry.lastValue == notAfter.timeIntervalSince1970)
      server.health.setNotServing(service: "test.Wait")
      server.recordMetrics()
      let waitServing = try metrics.expectGauge(
        "mesh.server.health.serving",
        [("grpc.service", "test.Wait")]
      )
      #expect(waitServing.lastValue == 0)
    }
    // Authorization's decisions, by method.
    let decisions = [
      ("test.Echo/Echo", "allow", 2), ("test.Echo/Echo", "deny", 1), ("test.Wait/Wait", "allow", 1),
    ]
    for (method, decision, count) in decisions {
      let counter = try metrics.expectCounter(
        "mesh.server.authorization.decisions",
        [("grpc.method", method), ("decision", decision)]
      )
      #expect(counter.totalValue == count, "\(method) \(decision)")
    }
    let echo = ("grpc.method", "test.Echo/Echo")
    #expect(try metrics.expectCounter("grpc.server.call.started", [echo]).totalValue == 3)
    let ok = try metrics.expectTimer("grpc.server.call.duration", [echo, ("grpc.status", "OK")])
    #expect(ok.values.count == 2)
    #expect(ok.values.allSatisfy { $0 > 0 })
    let denied = try metrics.expectTimer(
      "grpc.server.call.duration",
      [echo, ("grpc.status", "PERMISSION_DENIED")]
    )
    #expect(denied.values.count == 1)
    // Counted and timed once, as cancelled: its response was never produced.
    let wait = ("grpc.method", "test.Wait/Wait")
    #expect(try metrics.expectCounter("grpc.server.call.started", [wait]).totalValue == 1)
    let cancelled = try metrics.expectTimer(
      "grpc.server.call.duration",
      [wait, ("grpc.status", "CANCELLED")]
    )
    #expect(cancelled.values.count == 1)
    // Message bytes per call, which interceptors cannot see (the server transport counts them).
    let reply = "spiffe://mesh.local/ns/default/svc/checkout: hi"
    let sent = try metrics.expectRecorder(
      "grpc.server.call.sent_total_compressed_message_size",
      [echo, ("grpc.status", "OK")]
    )
    #expect(sent.values == [Double(reply.utf8.count), Double(reply.utf8.count)])
    let received = try metrics.expectRecorder(
      "grpc.server.call.rcvd_total_compressed_message_size",
      [echo, ("grpc.status", "OK")]
    )
    #expect(received.values == [2, 2])
    let deniedSent = try metrics.expectRecorder(
      "grpc.server.call.sent_total_compressed_message_size",
      [echo, ("grpc.status", "PERMISSION_DENIED")]
    )
    #expect(deniedSent.values == [0])
    // The unknown method, as "other": started, answered UNIMPLEMENTED, its bytes counted.
    let other = ("grpc.method", "other")
    // Counted as "other" only if unknown: a transport must hand known methods the server's own
    // descriptors (the native one once made them from the path, and every call was "other").
    #expect(try metrics.expectCounter("grpc.server.call.started", [other]).totalValue == 1)
    let unimplemented = try metrics.expectTimer(
      "grpc.server.call.duration",
      [other, ("grpc.status", "UNIMPLEMENTED")]
    )
    #expect(unimplemented.values.count == 1)
    let otherReceived = try metrics.expectRecorder(
      "grpc.server.call.rcvd_total_compressed_message_size",
      [other, ("grpc.status", "UNIMPLEMENTED")]
    )
    #expect(otherReceived.values.count == 1)
    let waitTimers = metrics.timers(label: "grpc.server.call.duration").filter {
      $0.dimensions.contains { $0.0 == "grpc.method" && $0.1 == "test.Wait/Wait" }
    }
    #expect(waitTimers.count == 1)
  }

  @Test(
    "Traces: each call a server span (gRFC A72's name, OpenTelemetry's RPC attributes) continuing the caller's trace",
    arguments: TestTransport.matrix
  )
  func traces(kind: TestTransport) async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let tracer = InMemoryTracer()
    var configuration = Self.echoServer(directory, on: kind)
    configuration.tracer = tracer
    configuration.authorization = MeshAuthorizationPolicy(
      rules: [.allow(from: .service("checkout"), to: .service("test.Echo"))],
      defaultAction: .deny
    )
    try await withMeshServer(configuration, services: [EchoService()]) { server in
      let port = try await server.listeningPort
      for caller in ["checkout", "billing"] {
        try await withMeshClient(Self.echoClient(caller, directory, port: port, on: kind)) { mesh in
          // The caller's trace, in the metadata as the tracer propagates it.
          var metadata: Metadata = [:]
          metadata.addString("trace-\(caller)", forKey: InMemoryTracer.traceIDKey)
          metadata.addString("span-\(caller)", forKey: InMemoryTracer.spanIDKey)
          _ = try? await mesh.client(for: "echo").unary(
            request: ClientRequest(message: "hi", metadata: metadata),
            descriptor: EchoService.method,
            serializer: TextSerializer(),
            deserializer: TextSerializer(),
            options: .defaults
          ) { try $0.message }
        }
      }
    }
    func text(_ attribute: (any SpanAttributeConvertible)?) -> String? {
      if case .string(let value)? = attribute?.toSpanAttribute() { return value }
      return nil
    }
    func integer(_ attribute: (any SpanAttributeConvertible)?) -> Int64? {
      switch attribute?.toSpanAttribute() {
      case .int64(let value)?: value
      case .int32(let value)?: Int64(value)
      default: nil
      }
    }
    let spans = tracer.finishedSpans.filter { $0.operationName == "Recv.test.Echo.Echo" }
    try #require(spans.count == 2, "\(tracer.finishedSpans.map(\.operationName))")
    for span in spans {
      #expect(span.kind == .server)
      #expect(text(span.attributes["rpc.system"]) == "grpc")
      #expect(text(span.attributes["rpc.service"]) == "test.Echo")
      #expect(text(span.attributes["rpc.method"]) == "Echo")
      #expect(text(span.attributes["network.peer.address"]) == "127.0.0.1")
      #expect(integer(span.attributes["network.peer.port"]).map { $0 > 0 } == true)
    }
    let allowed = try #require(spans.first { $0.traceID == "trace-checkout" })
    #expect(allowed.parentSpanID == "span-checkout")
    #expect(integer(allowed.attributes["rpc.grpc.status_code"]) == 0)
    #expect(allowed.status?.code == .ok)
    // Denied before any handler ran: the span says why.
    let denied = try #require(spans.first { $0.traceID == "trace-billing" })
    #expect(denied.parentSpanID == "span-billing")
    #expect(integer(denied.attributes["rpc.grpc.status_code"]) == 7)
    #expect(denied.status?.code == .error)
    #expect(denied.status?.message?.hasPrefix("PERMISSION_DENIED, ") == true)
  }

  @Test(
    "Client traces: the call's Sent span, one Attempt span per attempt (retries numbered, the endpoint named), the server's span its child",
    arguments: TestTransport.matrix
  )
  func clientTraces(kind: TestTransport) async throws {
    let directory = try Self.makePKI()
    defer { try? FileManager.default.removeItem(atPath: directory.path) }
    let tracer = InMemoryTracer()
    var server = Self.echoServer(directory, on: kind)
    server.tracer = tracer
    let port = try await withMeshServer(
      server,
      services: [EchoService()],
      interceptors: [FailFirst()]
    ) { server in
      let port = try await server.listeningPort
      var client = Self.echoClient("checkout", directory, port: port, on: kind)
      client.tracer = tracer
      try await withMeshClient(client) { mesh in
        let echo = try mesh.client(for: "echo")
        try await tracer.withSpan("caller") { _ in
          // The first attempt fails UNAVAILABLE; the retry answers.
          _ = try await echo.echo("hi")
        }
      }
      return port
    }
    func text(_ attribute: (any SpanAttributeConvertible)?) -> String? {
      if case .string(let value)? = attribute?.toSpanAttribute() { return value }
      return nil
    }
    func integer(_ attribute: (any SpanAttributeConvertible)?) -> Int64? {
      switch attribute?.toSpanAttribute() {
      case .int64(let value)?: value
      case .int32(let value)?: Int64(value)
      default: nil
      }
    }
    let spans = tracer.finishedSpans
    let caller = try #require(spans.first { $0.operationName == "caller" })
    let sent = try #require(spans.first { $0.operationName == "Sent.test.Echo.Echo" })
    #expect(sent.kind == .client)
    #expect(sent.traceID == caller.traceID)
    #expect(sent.parentSpanID == caller.spanID)
    #expect(text(sent.attributes["rpc.system"]) == "grpc")
    #expect(text(sent.attributes["rpc.service"]) == "test.Echo")
    #expect(text(sent.attributes["rpc.method"]) == "Echo")
    #expect(text(sent.attributes["server.address"]) == "echo")
    #expect(integer(sent.attributes["rpc.grpc.status_code"]) == 0)
    #expect(sent.status?.code == .ok)
    #expect(sent.events.map(\.name) == ["mesh.retry"])

    let attempts = spans.filter { $0.operationName == "Attempt.test.Echo.Echo" }
      .sorted {
        (integer($0.attributes["previous-rpc-attempts"]) ?? 0)
          < (integer($1.attributes["previous-rpc-attempts"]) ?? 0)
      }
    try #require(attempts.count == 2, "\(spans.map(\.operationName))")
    for (number, attempt) in attempts.enumerated() {
      #expect(attempt.parentSpanID == sent.spanID)
      #expect(attempt.traceID == caller.traceID)
      #expect(integer(attempt.attributes["previous-rpc-attempts"]) == Int64(number))
      #expect(attempt.attributes["transparent-retry"]?.toSpanAttribute() == .bool(false))
      #expect(text(attempt.attributes["mesh.endpoint"]) == "echo-0")
      #expect(text(attempt.attributes["server.address"]) == "127.0.0.1")
      #expect(integer(attempt.attributes["server.port"]) == Int64(port))
    }
    #expect(attempts[0].status?.code == .error)
    #expect(attempts[0].status?.message?.hasPrefix("UNAVAILABLE") == true)
    #expect(integer(attempts[0].attributes["rpc.grpc.status_code"]) == 14)
    #expect(attempts[1].status?.code == .ok)

    // Each attempt's context reached the server in its metadata: each server span is the
    // child of the attempt that made it.
    let received = spans.filter { $0.operationName == "Recv.test.Echo.Echo" }
    #expect(Set(received.compactMap(\.parentSpanID)) == Set(attempts.map(\.spanID)))
    #expect(received.allSatisfy { $0.traceID == caller.traceID })
  }

  @Test(
    "Peers as grpc-swift writes them",
    arguments: [
      ("ipv4:127.0.0.1:5000", "127.0.0.1", 5000), ("ipv6:[::1]:443", "::1", 443),
      ("unix:/tmp/socket", "/tmp/socket", nil),
    ] as [(String, String, Int?)]
  )
  func peers(text: String, address: String, port: Int?) throws {
    let peer = try #require(MeshServerTracingInterceptor.peer(text))
    #expect(peer.0 == address)
    #expect(peer.1 == port)
  }

  @Test(
    "The status names of gRPC's metrics and traces",
    arguments: [
      (Status.Code.ok, "OK"), (.deadlineExceeded, "DEADLINE_EXCEEDED"),
      (.internalError, "INTERNAL"),
      (.permissionDenied, "PERMISSION_DENIED"), (.unauthenticated, "UNAUTHENTICATED"),
    ]
  )
  func statusNames(code: Status.Code, name: String) {
    #expect(meshStatusName(code) == name)
  }

  @Test(
    "Bad settings are refused with the field's name, never a trap",
    arguments: [
      (MeshServerConfiguration(serviceName: ""), "serviceName"),
      (MeshServerConfiguration(serviceName: "a", host: "example.com"), "host"),
      (MeshServerConfiguration(serviceName: "a", port: 70_000), "port"),
      (MeshServerConfiguration(serviceName: "a", port: -1), "port"),
      (MeshServerConfiguration(serviceName: "a", drain: .init(delay: .seconds(-1))), "drain.delay"),
      (
        MeshServerConfiguration(
          serviceName: "a",
          registration: .init(advertisedPort: 0)
        ), "registration.advertisedPort"
      ),
      (
        MeshServerConfiguration(serviceName: "a", registration: .init(checkInterval: .zero)),
        "registration.checkInterval"
      ),
      (
        MeshServerConfiguration(serviceName: "a", intentions: .init(wait: .zero)), "intentions.wait"
      ),
      (
        MeshServerConfiguration(
          serviceName: "a",
          authorization: .init(defaultAction: .deny),
          intentions: .init()
        ), "intentions"
      ),
      (
        MeshServerConfiguration(serviceName: "a", connections: .init(maxConcurrentStreams: 0)),
        "connections.maxConcurrentStreams"
      ),
      (
        MeshServerConfiguration(serviceName: "a", connections: .init(maxAge: .zero)),
        "connections.maxAge"
      ),
      (
        MeshServerConfiguration(
          serviceName: "a",
          connections: .init(maxRequestMessageBytes: 0)
        ), "connections.maxRequestMessageBytes"
      ),
    ]
  )
  func badSettings(configuration: MeshServerConfiguration, field: String) {
    let error = #expect(throws: MeshServerError.self) { try configuration.validate() }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.message.hasPrefix(field) == true, "\(String(describing: error))")
  }

  @Test("The environment: a service name is required; certificates, Consul and the drain are read")
  func environment() throws {
    #expect(throws: MeshServerError.self) { try MeshServerConfiguration.fromEnvironment([:]) }
    let configuration = try MeshServerConfiguration.fromEnvironment([
      "MESH_SERVICE_NAME": "orders", "MESH_SERVER_PORT": "9443", "MESH_CERTS_DIR": "/certs",
      "CONSUL_HTTP_ADDR": "127.0.0.1:8600", "MESH_ADVERTISE_ADDRESS": "10.0.0.7",
      "MESH_DRAIN_DELAY": "2500ms", "MESH_DRAIN_GRACE_PERIOD": "10",
    ])
    #expect(configuration.serviceName == "orders")
    #expect(configuration.port == 9443)
    #expect(configuration.tls != nil)
    #expect(configuration.registration?.consul.address.absoluteString == "http://127.0.0.1:8600")
    #expect(configuration.registration?.advertisedAddress == "10.0.0.7")
    #expect(configuration.drain == .init(delay: .milliseconds(2500), gracePeriod: .seconds(10)))
    #expect(configuration.intentions == nil)
    let following = try MeshServerConfiguration.fromEnvironment([
      "MESH_SERVICE_NAME": "orders", "CONSUL_HTTP_ADDR": "127.0.0.1:8600",
      "MESH_INTENTIONS": "allow",
    ])
    #expect(following.intentions?.defaultAction == .allow)
    #expect(following.intentions?.consul.address.absoluteString == "http://127.0.0.1:8600")
    for (name, value) in [
      ("MESH_SERVER_PORT", "99999"), ("MESH_DRAIN_DELAY", "soon"), ("MESH_SERVER_HOST", "a b"),
      ("MESH_ADVERTISE_PORT", "0"), ("MESH_INTENTIONS", "yes"),
    ] {
      let error = #expect(throws: MeshServerError.self) {
        try MeshServerConfiguration.fromEnvironment([
          "MESH_SERVICE_NAME": "orders", "CONSUL_HTTP_ADDR": "127.0.0.1:8500", name: value,
        ])
      }
      #expect(error?.message.contains(name) == true || name == "MESH_SERVER_HOST")
    }
  }
}

/// Fails the first `test.Echo/Echo` call with UNAVAILABLE (a retryable failure), then passes
/// calls on.
final class FailFirst: ServerInterceptor {
  private let calls = MeshMutex(0)

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    guard context.descriptor == EchoService.method else { return try await next(request, context) }
    let first = self.calls.withLock { count -> Bool in
      count += 1
      return count == 1
    }
    if first { throw RPCError(code: .unavailable, message: "The first call fails.") }
    return try await next(request, context)
  }
}
