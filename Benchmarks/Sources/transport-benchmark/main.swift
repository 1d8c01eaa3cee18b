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

// Client transports against a gRPC C++ echo server (the fast server, so that the client's cost
// shows): gRPC C++'s own client (the baseline), grpc-swift's NIO transport and the mesh's native
// transport on libnghttp2 and OpenSSL, bare and under the mesh client (MeshClient with static
// discovery, with its default resilience and with resilience off: the mesh's own cost is their
// ratio to the bare transport). Unary, 64-byte messages, closed loop, at 1 and 64 in flight,
// plaintext and mTLS (certificates from the mesh CA, each side verifying the other); each figure
// the median of interleaved runs, and a ratio against gRPC C++ in the same run.
//
// Run: Benchmarks/cpp/build.sh && swift run -c release --package-path Benchmarks transport-benchmark
// Settings: BENCH_DURATION (default 5s), BENCH_RUNS (3), BENCH_SIZE (64), BENCH_CPP (folder of
// the C++ binaries, default Benchmarks/.build-cpp).

import BenchmarkSupport
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import MeshCertificates
import MeshClient
import MeshDiscovery
import MeshNativeTransport
import MeshTransport

let duration = environmentDuration("BENCH_DURATION", default: .seconds(5))
let runs = environmentInteger("BENCH_RUNS", default: 3, in: 1...20)
let size = environmentInteger("BENCH_SIZE", default: 64, in: 0...(16 << 20))
let cppFolder =
  ProcessInfo.processInfo.environment["BENCH_CPP"]
  ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent().appendingPathComponent(".build-cpp").path

/// Messages as raw bytes.
struct RawSerializer: MessageSerializer, MessageDeserializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
    Bytes(message)
  }

  func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] {
    bytes.withUnsafeBytes { Array($0) }
  }
}

let echo = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Echo")

/// This process's user and system CPU time.
func processCPU() -> Duration {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  func duration(_ time: timeval) -> Duration {
    .seconds(time.tv_sec) + .microseconds(time.tv_usec)
  }
  return duration(usage.ru_utime) + duration(usage.ru_stime)
}

/// Another process's user and system CPU time (/proc/PID/stat, in clock ticks).
func processCPU(pid: Int32) -> Duration {
  guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
    let end = stat.lastIndex(of: ")")
  else { return .zero }
  // After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
  let fields = stat[stat.index(after: end)...].split(separator: " ")
  guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]) else {
    return .zero
  }
  let ticks = Int64(sysconf(Int32(_SC_CLK_TCK)))
  return .milliseconds((user + system) * 1000 / max(ticks, 1))
}

struct Result {
  var rps: Double
  var p50: Double
  var p99: Double
  var cpuPerRPC: Double
}

/// A mesh CA and certificates for the server (`echo-server`) and the clients (`echo-client`).
struct PKI {
  let directory: MeshCertificateDirectory
  let server: MeshCredentials
  let client: MeshCredentials

  init() async throws {
    let path = FileManager.default.temporaryDirectory
      .appendingPathComponent("mesh-bench-\(UUID().uuidString)").path
    self.directory = MeshCertificateDirectory(path: path)
    let authority = try MeshCertificateAuthority.create(trustDomain: "bench.local")
    try self.directory.write(authority, force: false)
    for service in ["echo-server", "echo-client"] {
      try self.directory.write(try authority.issue(service: service), force: false)
    }
    self.server = try await MeshCredentials(.directory(path, service: "echo-server"))
    self.client = try await MeshCredentials(.directory(path, service: "echo-client"))
  }

  /// The C++ peers' flags presenting `service`'s certificate and trusting the mesh CA.
  func cppArguments(_ service: String, server: Bool) -> [String] {
    var arguments = [
      "--tls-cert", self.directory.certificatePath(service: service),
      "--tls-key", self.directory.keyPath(service: service),
      "--tls-ca", self.directory.caCertificatePath,
    ]
    if !server { arguments += ["--server-name", "echo-server"] }
    return arguments
  }
}

let pki = try await PKI()
defer { try? FileManager.default.removeItem(atPath: pki.directory.path) }

/// Starts the C++ echo server (mTLS with `tls`); returns it and its port.
func startServer(tls: Bool) throws -> (Process, Int) {
  let server = Process()
  server.executableURL = URL(fileURLWithPath: cppFolder + "/echo_server")
  server.arguments =
    ["--port", "0", "--threads", "1"] + (tls ? pki.cppArguments("echo-server", server: true) : [])
  let output = Pipe()
  server.standardOutput = output
  try server.run()
  var line = Data()
  while !line.contains(UInt8(ascii: "\n")) {
    let chunk = output.fileHandleForReading.availableData
    if chunk.isEmpty { break }
    line.append(chunk)
  }
  let text = String(decoding: line, as: UTF8.self)
  guard
    let port = text.split(separator: " ").last.flatMap({
      Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
    })
  else {
    throw RPCError(code: .internalError, message: "The C++ server said: \(text)")
  }
  return (server, port)
}

/// One run of a Swift client over `transport`.
func runSwift<Transport: ClientTransport>(
  _ transport: Transport,
  concurrency: Int
) async throws -> Result {
  try await withGRPCClient(transport: transport) { client in
    try await measureClient(client, concurrency: concurrency)
  }
}

/// One run of the mesh client with `configuration`, calling `echo-server`.
func runMesh(_ configuration: MeshClientConfiguration, concurrency: Int) async throws -> Result {
  try await withMeshClient(configuration) { mesh in
    try await measureClient(try mesh.client(for: "echo-server"), concurrency: concurrency)
  }
}

/// Unary calls with `client`, `concurrency` at a time: a warm-up, then a measured run.
func measureClient<Transport: ClientTransport>(
  _ client: GRPCClient<Transport>,
  concurrency: Int
) async throws -> Result {
  let payload = [UInt8](repeating: 1, count: size)
  @Sendable func call() async throws {
    _ = try await client.unary(
      request: ClientRequest(message: payload),
      descriptor: echo,
      serializer: RawSerializer(),
      deserializer: RawSerializer(),
      options: .defaults
    ) { try $0.message }
  }
  // Warm up: connections, caches.
  _ = try await measure(concurrency: concurrency, for: .milliseconds(500), call)
  let cpuBefore = processCPU()
  let measured = try await measure(concurrency: concurrency, for: duration, call)
  let cpu = processCPU() - cpuBefore
  return Result(
    rps: measured.throughput,
    p50: measured.percentile(0.5),
    p99: measured.percentile(0.99),
    cpuPerRPC: cpu / .microseconds(1) / Double(max(measured.calls, 1))
  )
}

/// A mesh client of the C++ server on `port` over the native transport: static discovery,
/// least-request, mTLS expecting the server's SPIFFE ID with `tls`; the mesh's default
/// resilience (the Envoy sidecars' retries, budget, breakers, outlier detection), or none.
func meshConfiguration(port: Int, tls: Bool, resilience: Bool) -> MeshClientConfiguration {
  var configuration = MeshClientConfiguration(
    serviceName: "echo-client",
    discovery: MeshStaticDiscovery([
      "echo-server": [MeshEndpoint(id: "cpp", host: "127.0.0.1", port: port)]
    ]),
    tls: tls
      ? .init(
        credentials: .directory(pki.directory.path, service: "echo-client"),
        trustDomain: "bench.local"
      ) : nil
  )
  configuration.transportKind = .native(.defaults)
  if !resilience {
    configuration.resilience = MeshResiliencePolicy(
      defaults: MeshMethodPolicy(),
      retryBudget: nil,
      outlierDetection: nil
    )
  }
  return configuration
}

/// One run of the C++ client (mTLS with `tls`).
func runCPP(port: Int, concurrency: Int, tls: Bool) throws -> Result {
  let client = Process()
  client.executableURL = URL(fileURLWithPath: cppFolder + "/echo_client")
  client.arguments =
    [
      "--target", "127.0.0.1:\(port)", "--concurrency", "\(concurrency)", "--size", "\(size)",
      "--duration", "\(duration / .seconds(1))", "--warmup", "0.5",
    ] + (tls ? pki.cppArguments("echo-client", server: false) : [])
  let output = Pipe()
  client.standardOutput = output
  try client.run()
  let data = output.fileHandleForReading.readDataToEndOfFile()
  client.waitUntilExit()
  guard
    client.terminationStatus == 0,
    let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
    let rps = json["rps"] as? Double, let p50 = json["p50_us"] as? Double,
    let p99 = json["p99_us"] as? Double, let cpu = json["cpu_us_per_rpc"] as? Double
  else {
    throw RPCError(
      code: .internalError,
      message: "The C++ client failed: \(String(decoding: data, as: UTF8.self))"
    )
  }
  return Result(rps: rps, p50: p50, p99: p99, cpuPerRPC: cpu)
}

func median(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

/// `test.Echo/Echo`: the request back (raw bytes), as the C++ server answers.
struct RawEcho: RegistrableRPCService {
  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    router.registerHandler(
      forMethod: echo,
      deserializer: RawSerializer(),
      serializer: RawSerializer()
    ) { request, _ in
      var messages: [[UInt8]] = []
      for try await message in request.messages { messages.append(message) }
      let received = messages
      return StreamingServerResponse { writer in
        for message in received { try await writer.write(message) }
        return [:]
      }
    }
  }
}

/// Runs `body` with a Swift server on `transport` (in this process), given its port.
func withSwiftServer<Transport: ServerTransport>(
  _ transport: Transport,
  port: @escaping @Sendable () async throws -> Int,
  _ body: (Int) async throws -> Void
) async throws {
  let server = GRPCServer(transport: transport, services: [RawEcho()])
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.serve() }
    try await body(try await port())
    server.beginGracefulShutdown()
    try await group.waitForAll()
  }
}

/// h2load against `port`: RPC/s with one connection and 64 streams.
func h2load(port: Int) throws -> Double {
  let body = FileManager.default.temporaryDirectory.appendingPathComponent("h2load-\(size).bin")
  var framed = Data([0])
  withUnsafeBytes(of: UInt32(size).bigEndian) { framed.append(contentsOf: $0) }
  framed.append(Data(repeating: 1, count: size))
  try framed.write(to: body)
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/h2load")
  process.arguments = [
    "-n", "200000", "-c", "1", "-m", "64", "-t", "1", "-d", body.path,
    "-H", "content-type: application/grpc", "-H", "te: trailers",
    "http://127.0.0.1:\(port)/test.Echo/Echo",
  ]
  let output = Pipe()
  process.standardOutput = output
  try process.run()
  let data = output.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  let text = String(decoding: data, as: UTF8.self)
  // "finished in 1.23s, 162601.63 req/s, ..."
  guard
    let line = text.split(separator: "\n").first(where: { $0.hasPrefix("finished in") }),
    let field = line.split(separator: ",").dropFirst().first,
    let rps = Double(field.trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
  else {
    throw RPCError(code: .internalError, message: "h2load said: \(text)")
  }
  return rps
}

let serverIdentity = try MeshServiceIdentity.spiffe(
  trustDomain: "bench.local",
  service: "echo-server"
)
let clientTLS = try MeshNativeTLS.mTLS(pki.client, peers: .exactly(serverIdentity))
let serverTLS = try MeshNativeTLS.mTLS(pki.server, peers: .trustDomain("bench.local"))

/// A Swift client's transport to `port`.
func swiftClient(_ name: String, port: Int, tls: Bool) throws -> any ClientTransport<
  GRPCNIOTransportBytes
> {
  switch name {
  case "grpc-swift (NIO)":
    return try HTTP2ClientTransport.Posix(
      target: .ipv4(address: "127.0.0.1", port: port),
      transportSecurity: tls
        ? try pki.client.clientTransportSecurity(server: .exactly(serverIdentity)) : .plaintext,
      config: tls ? pki.client.clientConfig() : .defaults
    )
  default:
    return try MeshNativeClientTransport(
      host: "127.0.0.1",
      port: port,
      security: tls ? .mTLS(clientTLS) : .plaintext
    )
  }
}

// The bare native transport, and the mesh client on it (default resilience, and resilience off):
// the mesh's own cost is the ratio of those rows.
let clients = [
  "gRPC C++", "grpc-swift (NIO)", "mesh native (nghttp2)", "mesh client (native)",
  "mesh client, resilience off (native)",
]
// Profiling: BENCH_PROFILE=<client> runs that client alone against the plaintext C++ server at
// BENCH_PROFILE_IN_FLIGHT (64) for BENCH_DURATION, prints its figures and stops (for `perf record`).
if let profiled = ProcessInfo.processInfo.environment["BENCH_PROFILE"] {
  let inFlight = environmentInteger("BENCH_PROFILE_IN_FLIGHT", default: 64, in: 1...1024)
  let (server, port) = try startServer(tls: false)
  let result: Result
  switch profiled {
  case "mesh client (native)", "mesh client, resilience off (native)":
    result = try await runMesh(
      meshConfiguration(port: port, tls: false, resilience: profiled == "mesh client (native)"),
      concurrency: inFlight
    )
  case "grpc-swift (NIO)", "mesh native (nghttp2)":
    result = try await runSwift(
      try swiftClient(profiled, port: port, tls: false),
      concurrency: inFlight
    )
  default:
    throw RPCError(code: .invalidArgument, message: "BENCH_PROFILE: no client '\(profiled)'")
  }
  print("\(profiled): \(format(result.rps)) RPC/s, CPU \(format(result.cpuPerRPC, 1)) µs/RPC")
  server.terminate()
  exit(0)
}

print("\(size)-byte unary; \(runs) interleaved runs of \(duration)")
for tls in [false, true] {
  let (server, port) = try startServer(tls: tls)
  defer { server.terminate() }
  let security = tls ? "mTLS" : "plaintext"
  for concurrency in [1, 64] {
    var results: [String: [Result]] = [:]
    for _ in 0..<runs {
      for name in clients {
        let result: Result
        switch name {
        case "gRPC C++":
          result = try runCPP(port: port, concurrency: concurrency, tls: tls)
        case "mesh client (native)", "mesh client, resilience off (native)":
          result = try await runMesh(
            meshConfiguration(port: port, tls: tls, resilience: name == "mesh client (native)"),
            concurrency: concurrency
          )
        default:
          result = try await runSwift(
            try swiftClient(name, port: port, tls: tls),
            concurrency: concurrency
          )
        }
        results[name, default: []].append(result)
      }
    }
    let baseline = median(results["gRPC C++"]!.map(\.rps))
    let baselineCPU = median(results["gRPC C++"]!.map(\.cpuPerRPC))
    print("")
    print("Clients → gRPC C++ server, \(security), \(concurrency) in flight")
    print("client | RPC/s | ×C++ | p50 µs | p99 µs | client CPU µs/RPC | ×C++")
    print("--- | --- | --- | --- | --- | --- | ---")
    for name in clients {
      let runs = results[name]!
      let rps = median(runs.map(\.rps))
      let cpu = median(runs.map(\.cpuPerRPC))
      print(
        "\(name) | \(format(rps)) | \(format(rps / baseline, 2)) | \(format(median(runs.map(\.p50)))) "
          + "| \(format(median(runs.map(\.p99)))) | \(format(cpu, 1)) | \(format(cpu / baselineCPU, 1))"
      )
    }
    // The mesh's own cost: each run's mesh client against the bare transport of the same round
    // (interleaved, so both saw the same machine), then the median of those ratios.
    let bare = results["mesh native (nghttp2)"]!
    for name in ["mesh client (native)", "mesh client, resilience off (native)"] {
      let mesh = results[name]!
      let throughput = median(zip(mesh, bare).map { $0.rps / $1.rps })
      let p99 = median(zip(mesh, bare).map { $0.p99 / $1.p99 })
      let cpu = median(zip(mesh, bare).map { $0.cpuPerRPC / $1.cpuPerRPC })
      print(
        "\(name) / bare native transport: throughput \(format(throughput, 3))×, "
          + "p99 \(format(p99, 3))×, CPU per RPC \(format(cpu, 3))×"
      )
    }
  }

  // Servers: the C++ client at 64 in flight and (plaintext) h2load, 1 connection × 64 streams.
  print("")
  print("Servers under the gRPC C++ client (64 in flight), \(security)")
  print("server | RPC/s (C++ client) | ×C++ | p99 µs | server CPU µs/RPC | h2load RPC/s | ×C++")
  print("--- | --- | --- | --- | --- | --- | ---")
  var serverRows: [(String, Result, Double)] = []
  for name in ["gRPC C++", "grpc-swift (NIO)", "mesh native (nghttp2)"] {
    var runsOfServer: [Result] = []
    var h2loads: [Double] = []
    func measureServer(port: Int, inProcess: Bool) throws {
      for _ in 0..<runs {
        // The server's CPU: this process for a Swift server (the C++ client is another
        // process), the C++ server's own otherwise. Warm-up included, so slightly high.
        func serverCPU() -> Duration {
          inProcess ? processCPU() : processCPU(pid: server.processIdentifier)
        }
        let before = serverCPU()
        var result = try runCPP(port: port, concurrency: 64, tls: tls)
        let cpu = serverCPU() - before
        result.cpuPerRPC = cpu / .microseconds(1) / (result.rps * (duration / .seconds(1) + 0.5))
        runsOfServer.append(result)
        // h2load presents no client certificate: plaintext only.
        if !tls { h2loads.append(try h2load(port: port)) }
      }
    }
    switch name {
    case "gRPC C++":
      try measureServer(port: port, inProcess: false)
    case "grpc-swift (NIO)":
      let transport = HTTP2ServerTransport.Posix(
        address: .ipv4(host: "127.0.0.1", port: 0),
        transportSecurity: tls
          ? try pki.server.serverTransportSecurity(clients: .trustDomain("bench.local"))
          : .plaintext,
        config: tls ? pki.server.serverConfig() : .defaults
      )
      try await withSwiftServer(
        transport,
        port: { try await transport.listeningAddress.ipv4!.port }
      ) {
        try measureServer(port: $0, inProcess: true)
      }
    default:
      let transport = try MeshNativeServerTransport(
        host: "127.0.0.1",
        port: 0,
        security: tls ? .mTLS(serverTLS) : .plaintext
      )
      try await withSwiftServer(transport, port: { try await transport.listeningPort }) {
        try measureServer(port: $0, inProcess: true)
      }
    }
    serverRows.append(
      (
        name,
        Result(
          rps: median(runsOfServer.map(\.rps)),
          p50: median(runsOfServer.map(\.p50)),
          p99: median(runsOfServer.map(\.p99)),
          cpuPerRPC: median(runsOfServer.map(\.cpuPerRPC))
        ), median(h2loads)
      )
    )
  }
  let serverBaseline = serverRows[0]
  for (name, result, h2) in serverRows {
    let cpu = format(result.cpuPerRPC, 1)
    let h2Columns = tls ? "– | –" : "\(format(h2)) | \(format(h2 / serverBaseline.2, 2))"
    print(
      "\(name) | \(format(result.rps)) | \(format(result.rps / serverBaseline.1.rps, 2)) | "
        + "\(format(result.p99)) | \(cpu) | \(h2Columns)"
    )
  }
}
