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
import InteropSupport
import MeshNativeTransport
import Testing

/// A line from `Tests/Interop/echo_peer.py`.
struct EchoPeerReply: Decodable {
  var op: String
  var port: Int?
}

/// The servers the native client is checked against.
enum InteropServer: String, CustomStringConvertible, CaseIterable {
  /// Python's grpcio (`Tests/Interop/echo_peer.py`): test.Native as the Swift tests serve it.
  case grpcio
  /// gRPC C++ from Debian's libgrpc++-dev (`Benchmarks/cpp/echo_server`): every method echoes
  /// each message; `echo-status` ends the call with that status.
  case cpp

  var description: String { self.rawValue }

  /// The folder of the gRPC C++ peers: `MESH_CPP_PEERS`, else where `Benchmarks/cpp/build.sh`
  /// puts them.
  static var cppFolder: String {
    ProcessInfo.processInfo.environment["MESH_CPP_PEERS"]
      ?? PythonPeer<EchoPeerReply>.repositoryRoot.appendingPathComponent("Benchmarks/.build-cpp")
      .path
  }

  /// Runs `body` with this server listening on 127.0.0.1, given its port.
  func run<Result>(_ body: (Int) async throws -> Result) async throws -> Result {
    switch self {
    case .grpcio:
      let peer = try PythonPeer<EchoPeerReply>(script: "echo_peer.py", arguments: [])
      do {
        let port = try #require(try await peer.next { $0.op == "listening" }.port)
        let result = try await body(port)
        try peer.send(["op": "quit"])
        _ = try await peer.finish()
        return result
      } catch {
        _ = await peer.kill()
        throw error
      }
    case .cpp:
      let binary = Self.cppFolder + "/echo_server"
      guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw RPCError(
          code: .failedPrecondition,
          message: "No gRPC C++ echo server at \(binary): run Benchmarks/cpp/build.sh "
            + "(scripts/test.sh does) or set MESH_CPP_PEERS"
        )
      }
      let server = Process()
      server.executableURL = URL(fileURLWithPath: binary)
      server.arguments = ["--port", "0"]
      let output = Pipe()
      server.standardOutput = output
      try server.run()
      defer {
        server.terminate()
        server.waitUntilExit()
      }
      var port: Int?
      for await line in lines(from: output) {
        if line.hasPrefix("listening on ") { port = Int(line.dropFirst("listening on ".count)) }
        break
      }
      return try await body(try #require(port, "the C++ server did not say its port"))
    }
  }
}

@Suite("Native client transport against grpcio and gRPC C++", .timeLimit(.minutes(2)))
struct NativeInteropTests {
  @Test(
    "Unary calls, an empty message, a status and its message",
    arguments: InteropServer.allCases
  )
  func unary(server: InteropServer) async throws {
    try await server.run { port in
      try await withNativeClient(port: port) { client, _ in
        let reply1 = try await client.call("Echo", Array("hello".utf8))
        #expect(reply1.message == Array("hello".utf8))
        let reply2 = try await client.call("Echo", [])
        #expect(reply2.message == [])
        let metadata: Metadata = ["echo-status": "5", "echo-message": "nowhere to be found: 100%"]
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], metadata: metadata)
        }
        #expect(error?.code == .notFound)
        #expect(error?.message == "nowhere to be found: 100%")
      }
    }
  }

  @Test("Metadata both ways, text and binary (grpcio)")
  func metadata() async throws {
    try await InteropServer.grpcio.run { port in
      try await withNativeClient(port: port) { client, _ in
        var metadata: Metadata = ["x-text": "value"]
        metadata.addBinary([0, 0xff, 7], forKey: "x-raw-bin")
        let response = try await client.call("Echo", [1], metadata: metadata)
        for received in [response.metadata, response.trailers] {
          #expect(Array(received[stringValues: "x-text"]) == ["value"])
          #expect(Array(received[binaryValues: "x-raw-bin"]) == [[0, 0xff, 7]])
        }
      }
    }
  }

  @Test("Bidirectional ping-pong, 500 rounds", arguments: InteropServer.allCases)
  func bidirectional(server: InteropServer) async throws {
    try await server.run { port in
      try await withNativeClient(port: port) { client, _ in
        let rounds = try await client.pingPong(rounds: 500)
        #expect(rounds == 500)
      }
    }
  }

  @Test("Server and client streaming (grpcio)")
  func streaming() async throws {
    try await InteropServer.grpcio.run { port in
      try await withNativeClient(port: port) { client, _ in
        let expanded = try await client.serverStreaming(
          request: ClientRequest(message: [100]),
          descriptor: NativeTestService.method("Expand"),
          serializer: RawSerializer(),
          deserializer: RawSerializer(),
          options: .defaults
        ) { response in
          var count = 0
          for try await _ in response.messages { count += 1 }
          return count
        }
        #expect(expanded == 100)
        let counted = try await client.clientStreaming(
          request: StreamingClientRequest(of: [UInt8].self) { writer in
            for _ in 0..<300 { try await writer.write(Array(repeating: 1, count: 1000)) }
          },
          descriptor: NativeTestService.method("Count"),
          serializer: RawSerializer(),
          deserializer: RawSerializer(),
          options: .defaults
        ) { try String(decoding: $0.message, as: UTF8.self) }
        #expect(counted == "300 300000")
      }
    }
  }

  @Test("An 8 MiB message each way through 64 KiB windows", arguments: InteropServer.allCases)
  func largeMessage(server: InteropServer) async throws {
    try await server.run { port in
      let settings = MeshNativeTransportSettings.defaults {
        $0.streamWindow = 65_535
        $0.connectionWindow = 65_535
      }
      try await withNativeClient(port: port, settings: settings) { client, _ in
        let large = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        var options = CallOptions.defaults
        options.maxResponseMessageBytes = 16 << 20
        let reply3 = try await client.call("Echo", large, options: options)
        #expect(reply3.message == large)
      }
    }
  }

  @Test("300 calls at once on one connection", arguments: InteropServer.allCases)
  func concurrent(server: InteropServer) async throws {
    try await server.run { port in
      try await withNativeClient(port: port) { client, transport in
        let echoed = try await client.concurrentEchoes(300)
        #expect(echoed == 300)
        #expect(transport.connectionsMade == 1)
      }
    }
  }
}
