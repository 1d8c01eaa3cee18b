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

import AsyncHTTPClient
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import MeshConsul
import MeshConsulAgent
import MeshHealth
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// A raw TCP connection to the agent, for what an HTTP client does not let a test do: send half
/// a request, half-close, hold connections open.
// Used from one task at a time; Sendable only so the nested executeThenClose scopes can pass it on.
final class RawConnection: @unchecked Sendable {
  private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
  private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
  private(set) var received = ""

  init(
    _ inbound: NIOAsyncChannelInboundStream<ByteBuffer>,
    _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
  ) {
    self.inbound = inbound.makeAsyncIterator()
    self.outbound = outbound
  }

  /// Opens `count` connections to `port` and runs `body` with them; all are closed after.
  static func with<T: Sendable>(
    _ count: Int,
    port: Int,
    opened: [RawConnection] = [],
    _ body: ([RawConnection]) async throws -> T
  ) async throws -> T {
    guard opened.count < count else { return try await body(opened) }
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .channelOption(.allowRemoteHalfClosure, value: true)
      .connect(host: "127.0.0.1", port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
          try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
            wrappingChannelSynchronously: channel,
            configuration: .init(isOutboundHalfClosureEnabled: true)
          )
        }
      }
    return try await channel.executeThenClose { inbound, outbound in
      try await Self.with(
        count,
        port: port,
        opened: opened + [RawConnection(inbound, outbound)],
        body
      )
    }
  }

  func send(_ text: String) async throws {
    try await self.outbound.write(ByteBuffer(string: text))
  }

  /// Half-closes: the agent reads end-of-file, and may still answer.
  func finishSending() {
    self.outbound.finish()
  }

  /// Reads until `done` holds for everything received, or the agent closes the connection.
  /// Returns whether `done` held.
  @discardableResult
  func read(until done: (String) -> Bool = { _ in false }) async throws -> Bool {
    while !done(self.received) {
      guard let chunk = try await self.inbound.next() else { return false }
      self.received += String(buffer: chunk)
    }
    return true
  }

  /// Reads one whole response with a Content-Length.
  func readResponse() async throws -> String {
    let start = self.received.endIndex
    try await self.read { received in
      let text = received[start...]
      guard let end = text.range(of: "\r\n\r\n") else { return false }
      let head = text[..<end.lowerBound].lowercased()
      guard
        let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
        let length = Int(
          line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)
        )
      else { return true }
      return text[end.upperBound...].utf8.count >= length
    }
    return String(self.received[start...])
  }
}

@Suite("Embedded agent's HTTP server", .timeLimit(.minutes(2)))
struct ConsulAgentServerTests {
  func configuration(_ configure: (inout MeshConsulAgentConfiguration.Limits) -> Void = { _ in })
    -> MeshConsulAgentConfiguration
  {
    var configuration = MeshConsulAgentConfiguration(port: 0)
    configure(&configuration.limits)
    return configuration
  }

  @Test("Consul's limits by default")
  func defaults() {
    let limits = MeshConsulAgentConfiguration().limits
    #expect(limits.maxConnectionsPerClient == 200)
    #expect(limits.maxRequestBodySize == 4 * 1024 * 1024)
  }

  @Test("Expect: 100-continue is answered, then the body is read")
  func expectContinue() async throws {
    try await withAgent { agent, _ in
      let port = try await agent.listeningPort
      let body = #"{"ID": "c1", "Name": "continued", "Port": 1}"#
      try await RawConnection.with(1, port: port) { connections in
        let connection = connections[0]
        try await connection.send(
          "PUT /v1/agent/service/register HTTP/1.1\r\nHost: agent\r\n"
            + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n"
        )
        #expect(try await connection.read { $0.contains("100 Continue\r\n\r\n") })
        try await connection.send(body)
        let response = try await connection.readResponse()
        #expect(response.contains("HTTP/1.1 200 OK"), "\(response)")
      }
      #expect(agent.withState { $0.services["c1"] != nil })
    }
  }

  @Test("A request whose sender half-closes after sending it is still answered")
  func halfClose() async throws {
    try await withAgent { agent, _ in
      let port = try await agent.listeningPort
      try await RawConnection.with(1, port: port) { connections in
        let connection = connections[0]
        try await connection.send("GET /v1/status/leader HTTP/1.1\r\nHost: agent\r\n\r\n")
        connection.finishSending()
        try await connection.read()  // to end of file
        #expect(connection.received.hasPrefix("HTTP/1.1 200 OK"), "\(connection.received)")
        #expect(connection.received.hasSuffix("\"127.0.0.1:8300\""))
      }
    }
  }

  @Test("A request that does not arrive whole in time has its connection closed")
  func slowRequest() async throws {
    let configuration = self.configuration { $0.requestReadTimeout = .milliseconds(200) }
    try await withAgent(configuration: configuration) { agent, _ in
      let port = try await agent.listeningPort
      try await RawConnection.with(1, port: port) { connections in
        let connection = connections[0]
        try await connection.send(
          "PUT /v1/agent/service/register HTTP/1.1\r\nHost: agent\r\nContent-Length: 100\r\n\r\n{\"Na"
        )
        try await connection.read()  // returns when the agent closes the connection
        #expect(!connection.received.contains("200 OK"))
      }
      #expect(agent.withState { $0.services.isEmpty })
    }
  }

  @Test("A request head that never ends times out as an idle connection")
  func halfSentHead() async throws {
    let configuration = self.configuration { $0.idleTimeout = .milliseconds(200) }
    try await withAgent(configuration: configuration) { agent, _ in
      let port = try await agent.listeningPort
      try await RawConnection.with(1, port: port) { connections in
        try await connections[0].send("GET /v1/status/leader HTTP/1.1\r\nHost: ag")
        try await connections[0].read()
        #expect(connections[0].received.isEmpty)
      }
    }
  }

  @Test("Connections per client IP are capped; the next one gets Consul's 429")
  func connectionCap() async throws {
    let configuration = self.configuration { $0.maxConnectionsPerClient = 3 }
    try await withAgent(configuration: configuration) { agent, _ in
      let port = try await agent.listeningPort
      let request = "GET /v1/status/leader HTTP/1.1\r\nHost: agent\r\n\r\n"
      try await RawConnection.with(3, port: port) { held in
        for connection in held {
          try await connection.send(request)
          #expect(try await connection.readResponse().hasPrefix("HTTP/1.1 200 OK"))
        }
        #expect(agent.openConnections(from: "127.0.0.1") == 3)
        try await RawConnection.with(1, port: port) { refused in
          try await refused[0].read()  // answered at once, then closed
          #expect(refused[0].received.hasPrefix("HTTP/1.1 429"), "\(refused[0].received)")
          #expect(
            refused[0].received.hasSuffix(
              "Your IP is issuing too many concurrent connections, please rate limit your calls\n"
            )
          )
        }
        // The held connections still work.
        try await held[0].send(request)
        #expect(try await held[0].readResponse().hasPrefix("HTTP/1.1 200 OK"))
      }
      // Closed connections are no longer counted: a new one is served. (The agent notices the
      // closes asynchronously; each attempt is a full exchange, not a sleep.)
      var served = false
      for _ in 0..<1000 where !served {
        served = try await RawConnection.with(1, port: port) { connections in
          try await connections[0].send(request)
          return try await connections[0].readResponse().hasPrefix("HTTP/1.1 200 OK")
        }
      }
      #expect(served)
    }
  }

  @Test("A bad registration over HTTP gets a short error, however large the body")
  func largeBadBodyOverHTTP() async throws {
    try await withAgent { _, client in
      let filler = String(repeating: "x", count: 4_000_000)
      let response = try await raw(
        .PUT,
        client,
        "/v1/agent/service/register",
        body: #"{"Name": "a", "Tags": "\#(filler)"}"#
      )
      #expect(response.status == 400)
      #expect(response.body.utf8.count < 400)
    }
  }

  @Test("A re-registered gRPC check is probed with its new target at once; the old result goes")
  func reregisteredCheckIsProbedAgain() async throws {
    let health = MeshHealthService()
    health.setServing(service: "greeter")
    let transport = HTTP2ServerTransport.Posix(
      address: .ipv4(host: "127.0.0.1", port: 0),
      transportSecurity: .plaintext
    )
    let server = GRPCServer(transport: transport, services: [health])
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      let port = try #require(try await transport.listeningAddress.ipv4?.port)
      try await withAgent { _, client in
        func register(_ target: String) async throws {
          try await client.register(
            ConsulServiceRegistration(
              id: "r1",
              name: "probed",
              port: port,
              // An hour: any probe seen in this test is the one a registration starts.
              check: .grpc(target, interval: .seconds(3600), checkID: "probe")
            )
          )
        }
        /// Follows the check with blocking queries until `done` holds.
        func check(until done: (ConsulHealthCheck) -> Bool) async throws -> ConsulHealthCheck {
          var index = 0
          while true {
            let response = try await raw(
              .GET,
              client,
              "/v1/health/checks/probed?index=\(index)&wait=30s"
            )
            let checks = try JSONDecoder().decode(
              [ConsulHealthCheck].self,
              from: Data(response.body.utf8)
            )
            if let check = checks.first, done(check) { return check }
            index = Int(response.headers.first(name: "X-Consul-Index") ?? "") ?? 0
          }
        }
        try await register("127.0.0.1:\(port)/greeter")
        let passing = try await check { $0.status == .passing }
        #expect(passing.output == "gRPC check 127.0.0.1:\(port)/greeter: success")

        // Nothing listens on port 1.
        try await register("127.0.0.1:1/greeter")
        let reset = try await check { _ in true }
        #expect(reset.status == .critical, "the old passing result does not linger")
        let probed = try await check { $0.output.contains("127.0.0.1:1/greeter") }
        #expect(probed.status == .critical)
      }
      server.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }
}
