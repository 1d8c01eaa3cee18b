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
import MeshHealth
import MeshNativeTransport
import MeshTransport
import Testing

/// A line from `Tests/Interop/echo_peer.py` or `tls_peer.py`.
struct EchoPeerReply: Decodable {
  var op: String
  var port: Int?
  var status: String?
  var code: String?
  var details: String?
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

  /// The gRPC C++ peer `name` (`echo_server`, `echo_client`), built by `Benchmarks/cpp/build.sh`.
  static func cppBinary(_ name: String) throws -> String {
    let binary = Self.cppFolder + "/" + name
    guard FileManager.default.isExecutableFile(atPath: binary) else {
      throw RPCError(
        code: .failedPrecondition,
        message: "No gRPC C++ \(name) at \(binary): run Benchmarks/cpp/build.sh "
          + "(scripts/test.sh does) or set MESH_CPP_PEERS"
      )
    }
    return binary
  }

  /// Runs `body` with this server listening on 127.0.0.1, given its port; `tls` (files of the
  /// server's certificate, key and the CA its clients' certificates must chain to): mTLS.
  func run<Result>(
    tls: (certificate: String, key: String, ca: String)? = nil,
    _ body: (Int) async throws -> Result
  ) async throws -> Result {
    let tlsArguments = tls.map {
      ["--tls-cert", $0.certificate, "--tls-key", $0.key, "--tls-ca", $0.ca]
    }
    switch self {
    case .grpcio:
      let peer = try PythonPeer<EchoPeerReply>(
        script: "echo_peer.py",
        arguments: tlsArguments ?? []
      )
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
      let server = Process()
      server.executableURL = URL(fileURLWithPath: try Self.cppBinary("echo_server"))
      server.arguments = ["--port", "0"] + (tlsArguments ?? [])
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

/// What `Benchmarks/cpp/echo_client` prints.
struct CppClientReport: Decodable {
  var rpcs: Int
  var errors: Int
}

/// Runs gRPC C++'s load generator with `arguments` and returns its report; it must exit 0.
func runCppClient(_ arguments: [String]) async throws -> CppClientReport {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: try InteropServer.cppBinary("echo_client"))
  process.arguments = arguments
  let output = Pipe()
  process.standardOutput = output
  try process.run()
  var text = ""
  for await line in lines(from: output) { text += line }
  process.waitUntilExit()
  #expect(process.terminationStatus == 0, "echo_client \(arguments.joined(separator: " "))")
  return try JSONDecoder().decode(CppClientReport.self, from: Data(text.utf8))
}

@Suite("Native transport over mTLS against grpcio and gRPC C++", .timeLimit(.minutes(2)))
struct NativeTLSInteropTests {
  @Test(
    "The native mTLS client and grpcio / gRPC C++ mTLS servers verify each other",
    arguments: InteropServer.allCases
  )
  func nativeClient(server: InteropServer) async throws {
    let pki = try NativeTestPKI(["orders", "inventory"])
    let rogue = try NativeTestPKI(["orders"])
    defer {
      pki.remove()
      rogue.remove()
    }
    let tls = try await pki.tls("orders", peers: .exactly(try pki.identity("inventory")))
    var options = CallOptions.defaults
    options.waitForReady = false
    try await server.run(tls: pki.files("inventory")) { port in
      try await withNativeClient(port: port, security: .mTLS(tls)) { client, _ in
        let reply = try await client.call("Echo", Array("over TLS".utf8))
        #expect(reply.message == Array("over TLS".utf8))
        let rounds = try await client.pingPong(rounds: 100)
        #expect(rounds == 100)
        if server == .grpcio {
          // gRPC core verified our certificate and read our SPIFFE ID.
          let caller = try await client.call("Caller", []).message
          #expect(
            String(decoding: caller, as: UTF8.self) == "spiffe://mesh.local/ns/default/svc/orders"
          )
        }
      }
      // The peer refuses a client certificate from another CA.
      let forged = try await rogue.tls("orders", alsoTrusting: pki)
      try await withNativeClient(port: port, security: .mTLS(forged)) { client, _ in
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], options: options)
        }
        #expect(error?.code == .unavailable)
      }
      // We refuse the peer when we expected another service.
      let misdirected = try await pki.tls("orders", peers: .exactly(try pki.identity("payments")))
      try await withNativeClient(port: port, security: .mTLS(misdirected)) { client, _ in
        let error = await #expect(throws: RPCError.self) {
          try await client.call("Echo", [1], options: options)
        }
        #expect(error?.code == .unavailable)
      }
      #expect(misdirected.credentials.lastVerificationFailure?.code == .identityMismatch)
    }
  }

  @Test("grpcio's mTLS client calls the native mTLS server; names are checked both ways")
  func grpcioClient() async throws {
    let pki = try NativeTestPKI(["inventory", "python-client"])
    defer { pki.remove() }
    let serverTLS = try await pki.tls(
      "inventory",
      peers: .exactly(try pki.identity("python-client"))
    )
    let health = MeshHealthService()
    try await withServer(.native, services: [health], tls: serverTLS) { port in
      for (serverName, expected) in [("inventory", "SERVING"), ("payments", nil)] {
        let client = try PythonPeer<EchoPeerReply>(
          script: "tls_peer.py",
          arguments: [
            "call", "--target", "127.0.0.1:\(port)", "--server-name", serverName,
            "--cert", pki.files("python-client").certificate,
            "--key", pki.files("python-client").key,
            "--ca", pki.files("python-client").ca,
          ]
        )
        _ = try await client.next { $0.op == "ready" }
        try client.send(["op": "check", "service": ""])
        let reply = try await client.next { $0.op == "check" }
        if let expected {
          #expect(reply.status == expected, "\(reply.details ?? "")")
        } else {
          // gRPC core checks the server's DNS name: "payments" is not ours.
          #expect(reply.code == "UNAVAILABLE")
        }
        #expect(try await client.finish() == 0)
      }
    }
  }

  @Test("gRPC C++'s client drives the native server: unary and bidi, plaintext and mTLS")
  func cppClient() async throws {
    let pki = try NativeTestPKI(["inventory", "orders"])
    defer { pki.remove() }
    let serverTLS = try await pki.tls("inventory", peers: .exactly(try pki.identity("orders")))
    let files = pki.files("orders")
    for tls in [nil, serverTLS] {
      try await withServer(.native, services: [NativeTestService()], tls: tls) { port in
        // 200 round trips each (60 s is only the limit), 8 at once.
        var common = ["--target", "127.0.0.1:\(port)", "--concurrency", "8"]
        common += ["--rpcs", "200", "--duration", "60", "--warmup", "0"]
        if tls != nil {
          common += ["--tls-ca", files.ca, "--tls-cert", files.certificate, "--tls-key", files.key]
          common += ["--server-name", "inventory"]
        }
        let unary = try await runCppClient(common + ["--method", "/test.Native/Echo"])
        #expect(unary.rpcs >= 200 && unary.errors == 0, "\(unary)")
        let bidi = try await runCppClient(
          common + ["--mode", "bidi", "--method", "/test.Native/Ping"]
        )
        #expect(bidi.rpcs >= 200 && bidi.errors == 0, "\(bidi)")
      }
    }
  }
}
