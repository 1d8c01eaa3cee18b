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
import Greeter
import MeshCertificates
import MeshClient
import MeshConsul
import MeshConsulAgent
import MeshDiscovery
import MeshServer
import MeshTransport
import SwiftProtobuf
import Testing

@testable import mesh_demo

/// A built executable of this package, beside this test bundle in the build folder.
private func executable(_ name: String) -> URL {
  URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    .deletingLastPathComponent().appendingPathComponent(name)
}

/// A throwaway mesh CA with certificates for the greeter, its client and the agent's checks.
/// The exit status of `process` (a signal's number + 128 when one ended it), once it has exited:
/// set before `run()`.
private func exits(of process: Process) -> AsyncStream<Int32> {
  let (statuses, continuation) = AsyncStream.makeStream(of: Int32.self)
  process.terminationHandler = { process in
    continuation.yield(
      process.terminationReason == .exit
        ? process.terminationStatus : 128 + process.terminationStatus
    )
    continuation.finish()
  }
  return statuses
}

/// The first element of `statuses` within `limit`; nil if none came in time.
private func within(_ limit: Duration, _ statuses: AsyncStream<Int32>) async -> Int32? {
  await withTaskGroup(of: Int32?.self) { group in
    group.addTask {
      for await status in statuses { return status }
      return nil
    }
    group.addTask {
      try? await Task.sleep(for: limit)
      return nil
    }
    let first = await group.next() ?? nil
    group.cancelAll()
    return first
  }
}

private func makeCertificates() throws -> MeshCertificateDirectory {
  let directory = MeshCertificateDirectory(
    path: FileManager.default.temporaryDirectory
      .appendingPathComponent("greeter-\(UUID().uuidString)").path
  )
  let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
  try directory.write(authority)
  for service in ["greeter", "greeter-client", "consul-agent"] {
    try directory.write(try authority.issue(service: service))
  }
  return directory
}

/// The greeter, telling when a StreamHellos handler has returned.
private struct ObservedGreeter: Greeter_V1_Greeter.SimpleServiceProtocol {
  let greeter = GreeterService(instance: "g-0")
  let streamsEnded: AsyncStream<Void>.Continuation

  func sayHello(
    request: Greeter_V1_HelloRequest,
    context: ServerContext
  ) async throws -> Greeter_V1_HelloReply {
    try await self.greeter.sayHello(request: request, context: context)
  }

  func streamHellos(
    request: Greeter_V1_StreamHellosRequest,
    response: RPCWriter<Greeter_V1_HelloReply>,
    context: ServerContext
  ) async throws {
    defer { self.streamsEnded.yield() }
    try await self.greeter.streamHellos(request: request, response: response, context: context)
  }

  func chat(
    request: RPCAsyncSequence<Greeter_V1_HelloRequest, any Error>,
    response: RPCWriter<Greeter_V1_HelloReply>,
    context: ServerContext
  ) async throws {
    try await self.greeter.chat(request: request, response: response, context: context)
  }
}

@Suite("The greeter example", .timeLimit(.minutes(2)))
struct GreeterExampleTests {
  @Test("Unary, server-streaming and bidirectional calls through the mesh, over mTLS")
  func methods() async throws {
    let certs = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: certs.path) }
    var configuration = MeshServerConfiguration(serviceName: "greeter", host: "127.0.0.1", port: 0)
    configuration.tls = .init(credentials: .directory(certs.path, service: "greeter"))
    let (streamsEnded, streamEnded) = AsyncStream.makeStream(of: Void.self)
    var ended = streamsEnded.makeAsyncIterator()
    let service = ObservedGreeter(streamsEnded: streamEnded)
    // The drain's grace period outlasts the suite's time limit: a handler that ignored its RPC's
    // cancellation would hold the test up until the limit fails it.
    configuration.drain = .init(delay: .zero, gracePeriod: .seconds(600))
    try await withMeshServer(configuration, services: [service]) { server in
      let port = try await server.listeningPort
      let client = MeshClientConfiguration(
        serviceName: "greeter-client",
        discovery: MeshStaticDiscovery(["greeter": [MeshEndpoint(host: "127.0.0.1", port: port)]]),
        tls: .init(credentials: .directory(certs.path, service: "greeter-client"))
      )
      try await withMeshClient(client) { mesh in
        let greeter = Greeter_V1_Greeter.Client(wrapping: try mesh.client(for: "greeter"))
        let reply = try await greeter.sayHello(.with { $0.name = "Ada" })
        #expect(reply.message == "Hello, Ada")
        #expect(reply.servedBy == "g-0")
        #expect(reply.caller == "spiffe://mesh.local/ns/default/svc/greeter-client")

        let request = Greeter_V1_StreamHellosRequest.with {
          $0.name = "Grace"
          $0.count = 3
          $0.intervalMs = 1
        }
        let streamed = try await greeter.streamHellos(request) { response in
          var messages: [String] = []
          for try await reply in response.messages { messages.append(reply.message) }
          return messages
        }
        #expect(streamed == ["Hello, Grace", "Hello, Grace", "Hello, Grace"])
        await ended.next()

        let tooMany = await #expect(throws: RPCError.self) {
          try await greeter.streamHellos(.with { $0.count = 1001 }) { response in
            for try await _ in response.messages {}
          }
        }
        #expect(tooMany?.code == .invalidArgument)
        await ended.next()

        let chatted = try await greeter.chat { writer in
          for name in ["Ada", "", "Linus"] { try await writer.write(.with { $0.name = name }) }
        } onResponse: { response in
          var messages: [String] = []
          for try await reply in response.messages { messages.append(reply.message) }
          return messages
        }
        #expect(chatted == ["Hello, Ada", "Hello, world", "Hello, Linus"])

        // A stream that would run for hours ends when its caller's deadline does: the handler
        // reacts to the RPC's cancellation rather than sleeping on.
        let long = Greeter_V1_StreamHellosRequest.with {
          $0.count = 1000
          $0.intervalMs = 10_000
        }
        var options = CallOptions.defaults
        options.timeout = .milliseconds(300)
        let expired = await #expect(throws: RPCError.self) {
          try await greeter.streamHellos(long, options: options) { response in
            for try await _ in response.messages {}
          }
        }
        #expect(expired?.code == .deadlineExceeded)
        // The handler returned (it would otherwise sleep for hours): it reacted to the RPC's
        // cancellation when the deadline passed.
        await ended.next()
      }
    }
  }

  @Test("greeter-server and greeter-client, as two processes against the agent: served, drained")
  func processes() async throws {
    let certs = try makeCertificates()
    defer { try? FileManager.default.removeItem(atPath: certs.path) }
    let agent = MeshConsulAgent(
      configuration: MeshConsulAgentConfiguration(
        port: 0,
        checkCredentials: try await MeshCredentials(
          .directory(certs.path, service: "consul-agent")
        )
      )
    )
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await agent.run() }
      defer { agent.beginGracefulShutdown() }
      let agentPort = try await agent.listeningPort
      var environment = ProcessInfo.processInfo.environment
      environment["CONSUL_HTTP_ADDR"] = "127.0.0.1:\(agentPort)"
      environment["MESH_CERTS_DIR"] = certs.path

      // The server, as a user starts it: configured by the environment alone.
      let server = Process()
      server.executableURL = executable("greeter-server")
      var serverEnvironment = environment
      serverEnvironment["MESH_SERVICE_NAME"] = "greeter"
      serverEnvironment["MESH_SERVER_HOST"] = "127.0.0.1"
      serverEnvironment["MESH_SERVER_PORT"] = "0"
      serverEnvironment["MESH_DRAIN_DELAY"] = "0"
      server.environment = serverEnvironment
      let serverOutput = Pipe()
      server.standardOutput = serverOutput
      // Its log, shown if it does not stop in time.
      let serverLog = certs.path + "/greeter-server.log"
      _ = FileManager.default.createFile(atPath: serverLog, contents: nil)
      server.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: serverLog))
      let serverLines = outputLines(of: serverOutput.fileHandleForReading)
      let serverExited = exits(of: server)
      try server.run()
      defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
      var serving: String?
      for await line in serverLines {
        serving = line
        break
      }
      #expect(serving?.hasPrefix("greeter-server: serving greeter on port ") == true)

      // It registered itself, with a gRPC check the agent runs over mTLS.
      let consul = try ConsulClient(.init(address: URL(string: "http://127.0.0.1:\(agentPort)")!))
      do {
        var registered = try await consul.healthService("greeter")
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while registered.value.first?.checks.allSatisfy({ $0.status == .passing }) != true {
          try #require(
            ContinuousClock.now < deadline,
            "greeter is not passing its checks after 60 s: \(registered.value.map(\.checks))"
          )
          registered = try await consul.healthService(
            "greeter",
            index: registered.index,
            wait: .seconds(5)
          )
        }
        #expect(registered.value.count == 1)

        let client = Process()
        client.executableURL = executable("greeter-client")
        var clientEnvironment = environment
        clientEnvironment["MESH_SERVICE_NAME"] = "greeter-client"
        client.environment = clientEnvironment
        client.arguments = ["Ada"]
        // Its output goes to a file, read once it has exited: waiting for a pipe's end of file
        // would also wait for any process that inherited the pipe (Foundation closes a child's
        // other descriptors as of a moment before it spawns: a pipe another test makes then is
        // inherited).
        let clientOutputPath = certs.path + "/greeter-client.out"
        _ = FileManager.default.createFile(atPath: clientOutputPath, contents: nil)
        client.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: clientOutputPath))
        client.standardError = client.standardOutput
        let clientExited = exits(of: client)
        try client.run()
        let clientStatus = await within(.seconds(60), clientExited)
        let clientText = (try? String(contentsOfFile: clientOutputPath, encoding: .utf8)) ?? ""
        if clientStatus == nil { kill(client.processIdentifier, SIGKILL) }
        #expect(clientStatus == 0, "greeter-client: \(clientText)")
        let lines = clientText.split(separator: "\n").map(String.init)
        #expect(lines.count == 9, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("SayHello: Hello, Ada (served by ") }.count == 3)
        #expect(lines.filter { $0.hasPrefix("StreamHellos: Hello, Ada") }.count == 3)
        #expect(lines.contains { $0.hasPrefix("Chat: Hello, Grace") })
        #expect(
          lines.allSatisfy {
            $0.hasSuffix("saw spiffe://mesh.local/ns/default/svc/greeter-client)")
          }
        )

        // SIGTERM drains it: deregistered, then it exits cleanly (its status, not a signal's).
        server.terminate()
        let serverStatus = await within(.seconds(60), serverExited)
        #expect(
          serverStatus == 0,
          "greeter-server after SIGTERM: \(serverStatus.map { "exit \($0)" } ?? "still running after 60 s"); its log:\n\((try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? "")"
        )
        #expect(try await consul.healthService("greeter").value.isEmpty)
      } catch {
        try? await consul.shutdown()
        throw error
      }
      try await consul.shutdown()
    }
  }
}
