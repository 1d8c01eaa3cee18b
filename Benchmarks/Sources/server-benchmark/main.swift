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

import BenchmarkSupport
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import MeshCertificates
import MeshCore
import MeshHealth
import MeshProto
import MeshServer
import MeshTransport
import Synchronization

// The server half's benchmarks:
//   1. Health Watch fan-out: one MeshServer (mTLS), MESH_BENCH_WATCH_STREAMS (10,000) open Watch
//      streams over MESH_BENCH_WATCH_CONNECTIONS (100) client connections; the server's status
//      flips MESH_BENCH_WATCH_CHANGES (10) times, and each flip is timed until every stream has
//      seen it. The watchers run in this process, so their own cost is in the figure.
//   2. MeshServer against a bare GRPCServer serving the same service (grpc.health.v1 Check) with
//      the same transport settings, in alternating rounds:
//      a. under h2load (nghttp2-client: a C load generator in its own process, fast enough for the
//         server's cost to show), plaintext (h2load has no client certificates), 1 and 64 in flight;
//      b. under a grpc-swift client over mTLS (the same certificates; the MeshServer also checks
//         an authorization rule per call), 1 and 64 in flight.
// Run: swift run -c release --package-path Benchmarks server-benchmark

let round = environmentDuration("MESH_BENCH_SECONDS", default: .seconds(5))
let rounds = environmentInteger("MESH_BENCH_ROUNDS", default: 3, in: 1...100)
let watchStreams = environmentInteger(
  "MESH_BENCH_WATCH_STREAMS",
  default: 10_000,
  in: 1...1_000_000
)
let watchConnections = environmentInteger(
  "MESH_BENCH_WATCH_CONNECTIONS",
  default: 100,
  in: 1...10_000
)
let watchChanges = environmentInteger("MESH_BENCH_WATCH_CHANGES", default: 10, in: 1...1_000)
let watchTLS = environmentInteger("MESH_BENCH_WATCH_TLS", default: 1, in: 0...1) == 1

struct BenchmarkError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

// MARK: - Watch fan-out

/// When each stream saw the change being timed.
final class Arrivals: Sendable {
  private struct State {
    var expected = Grpc_Health_V1_HealthCheckResponse.ServingStatus.serving
    var start = ContinuousClock.now
    var latencies: [Double] = []  // microseconds
    var waiter: CheckedContinuation<[Double]?, Never>?
    var cancelled = false
    var unexpected = 0
  }

  private let state = Mutex(State())
  let total: Int

  init(total: Int) { self.total = total }

  /// Starts timing the change to `status`: from now, until every stream has seen it.
  func begin(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus) {
    self.state.withLock {
      $0.cancelled = false
      $0.expected = status
      $0.start = .now
      $0.latencies = []
      $0.latencies.reserveCapacity(self.total)
    }
  }

  func saw(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus) {
    let now = ContinuousClock.now
    let done: (CheckedContinuation<[Double]?, Never>, [Double])? = self.state.withLock { state in
      guard status == state.expected else {
        state.unexpected += 1
        return nil
      }
      state.latencies.append(state.start.duration(to: now) / .microseconds(1))
      guard state.latencies.count == self.total, let waiter = state.waiter else { return nil }
      state.waiter = nil
      return (waiter, state.latencies)
    }
    if let (waiter, latencies) = done { waiter.resume(returning: latencies) }
  }

  /// Each stream's latency once all have seen the change; nil if cancelled first.
  func wait() async -> [Double]? {
    await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        let ready: [Double]?? = self.state.withLock { state in
          if state.latencies.count == self.total { return .some(state.latencies) }
          // Cancelled before the continuation existed: onCancel found nothing to resume.
          if state.cancelled { return .some(nil) }
          state.waiter = continuation
          return nil
        }
        if let ready { continuation.resume(returning: ready) }
      }
    } onCancel: {
      let waiter = self.state.withLock { state in
        defer { state.waiter = nil }
        state.cancelled = true
        return state.waiter
      }
      waiter?.resume(returning: nil)
    }
  }

  /// Like ``wait()``, but fails after `limit`.
  func wait(atMost limit: Duration) async throws -> [Double] {
    try await withThrowingTaskGroup(of: [Double]?.self) { group in
      group.addTask { await self.wait() }
      group.addTask {
        try await Task.sleep(for: limit)
        return nil
      }
      let first = try await group.next() ?? nil
      group.cancelAll()
      guard let first else {
        let seen = self.state.withLock { $0.latencies.count }
        throw BenchmarkError("only \(seen) of \(self.total) streams saw the change within \(limit)")
      }
      return first
    }
  }

  var unexpected: Int { self.state.withLock { $0.unexpected } }
}

/// Opens `streams` Watch streams of "" over `connections` connections to `port`, each reporting
/// what it receives to `arrivals`; returns when cancelled.
func watch(
  port: Int,
  streams total: Int,
  connections: Int,
  tls: Bool,
  arrivals: Arrivals
) async throws {
  try await withThrowingTaskGroup(of: Void.self) { watchers in
    for connection in 0..<connections {
      let streams = total / connections + (connection < total % connections ? 1 : 0)
      watchers.addTask {
        let transport = try HTTP2ClientTransport.Posix(
          target: .ipv4(address: "127.0.0.1", port: port),
          transportSecurity: tls ? clientSecurity : .plaintext,
          config: tls ? clientConfig : .defaults
        )
        try await withGRPCClient(transport: transport) { client in
          let health = Grpc_Health_V1_Health.Client(wrapping: client)
          try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<streams {
              group.addTask {
                try await health.watch(.init()) { response in
                  for try await message in response.messages { arrivals.saw(message.status) }
                }
              }
            }
            try await group.waitForAll()
          }
        }
      }
    }
    try await watchers.waitForAll()
  }
}

/// Times `watchChanges` status flips of `server` until `arrived` says every stream saw each.
func timeChanges(
  server: MeshServer,
  arrived: (Grpc_Health_V1_HealthCheckResponse.ServingStatus, () -> Void) async throws -> [Double]
) async throws -> (maxima: [Double], all: LoadMeasurement) {
  var maxima: [Double] = []
  var all = LoadMeasurement()
  for change in 1...watchChanges {
    let status: Grpc_Health_V1_HealthCheckResponse.ServingStatus =
      change.isMultiple(of: 2) ? .serving : .notServing
    let latencies = try await arrived(status) {
      if status == .serving { server.health.setServing() } else { server.health.setNotServing() }
    }
    let measured = LoadMeasurement(calls: latencies.count, seconds: 0, latencies: latencies)
    maxima.append(measured.percentile(1))
    all.merge(measured)
  }
  return (maxima, all)
}

func report(_ maxima: [Double], _ all: LoadMeasurement?) {
  var line =
    "a status change reached all \(watchStreams) streams in: median \(format(LoadMeasurement(latencies: maxima).percentile(0.5) / 1000, 1)) ms, "
    + "worst \(format((maxima.max() ?? 0) / 1000, 1)) ms over \(watchChanges) changes"
  if let all {
    line +=
      " (per stream: p50 \(format(all.percentile(0.5) / 1000, 1)) ms, p99 \(format(all.percentile(0.99) / 1000, 1)) ms)"
  }
  print(line)
}

/// Runs `body` with the watchers open (`watchStreams` streams, every one SERVING), then closes
/// them.
func withOpenWatchers(
  port: Int,
  _ body: (Arrivals) async throws -> Void
) async throws {
  let arrivals = Arrivals(total: watchStreams)
  arrivals.begin(.serving)
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask {
      try await watch(
        port: port,
        streams: watchStreams,
        connections: watchConnections,
        tls: watchTLS,
        arrivals: arrivals
      )
    }
    _ = try await arrivals.wait(atMost: .seconds(120))
    try await body(arrivals)
    group.cancelAll()
    while true {
      do {
        guard try await group.next() != nil else { break }
      } catch {
        continue  // the watchers' cancellation
      }
    }
  }
}

/// The watchers in this process.
func watchFanOut(server: MeshServer, port: Int) async throws {
  let opening = ContinuousClock.now
  try await withOpenWatchers(port: port) { arrivals in
    print(
      "\(watchStreams) Watch streams over \(watchConnections) connections open and SERVING after \(format(opening.duration(to: .now) / .seconds(1), 1)) s"
    )
    let (maxima, all) = try await timeChanges(server: server) { status, change in
      arrivals.begin(status)
      change()
      return try await arrivals.wait(atMost: .seconds(60))
    }
    report(maxima, all)
    if arrivals.unexpected > 0 { print("note: \(arrivals.unexpected) unexpected messages") }
  }
}

/// CPU seconds (user + system) a process has used, from /proc.
func cpuSeconds(of pid: Int32) -> Double {
  guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
    let end = stat.lastIndex(of: ")")
  else { return 0 }
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  let fields = stat[stat.index(after: end)...].split(separator: " ")
  guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
    return 0
  }
  return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The watchers in a child process (this executable, `--watchers`): the figure without the
/// watchers' CPU on the server's cores' time line, and each side's CPU per change.
func watchFanOutInChild(server: MeshServer, port: Int) async throws {
  let child = Process()
  child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
  child.arguments = ["--watchers", "\(port)", certs.path]
  let input = Pipe()
  let output = Pipe()
  child.standardInput = input
  child.standardOutput = output
  try child.run()
  defer { if child.isRunning { child.terminate() } }
  var iterator = lines(of: output.fileHandleForReading).makeAsyncIterator()
  func expect(_ word: String) async throws {
    guard let line = await iterator.next(), line == word else {
      throw BenchmarkError("the watchers' process did not say \(word)")
    }
  }
  try await expect("OPEN")
  let ownStart = cpuSeconds(of: getpid())
  let childStart = cpuSeconds(of: child.processIdentifier)
  let (maxima, _) = try await timeChanges(server: server) { status, change in
    try input.fileHandleForWriting.write(contentsOf: Data("EXPECT \(status.rawValue)\n".utf8))
    try await expect("READY")
    let start = ContinuousClock.now
    change()
    try await expect("SAW")
    return [start.duration(to: .now) / .microseconds(1)]
  }
  let serverCPU = (cpuSeconds(of: getpid()) - ownStart) / Double(watchChanges) * 1000
  let watchersCPU =
    (cpuSeconds(of: child.processIdentifier) - childStart) / Double(watchChanges) * 1000
  report(maxima, nil)
  print(
    "CPU per change: server \(format(serverCPU, 0)) ms, watchers \(format(watchersCPU, 0)) ms (the server's is an upper bound: the process also times and reads the child)"
  )
  try input.fileHandleForWriting.close()
  child.waitUntilExit()
}

/// `--watchers <port> <certificates>`: the child of ``watchFanOutInChild``. Prints `OPEN` once
/// every stream saw SERVING; then for each `EXPECT <status>` line, `READY`, and `SAW` once every
/// stream has seen that status.
func runWatchers(port: Int) async throws {
  func say(_ line: String) {
    print(line)
    fflush(nil)
  }
  try await withOpenWatchers(port: port) { arrivals in
    say("OPEN")
    for await line in lines(of: FileHandle.standardInput) {
      guard line.hasPrefix("EXPECT "), let raw = Int(line.dropFirst(7)),
        let status = Grpc_Health_V1_HealthCheckResponse.ServingStatus(rawValue: raw)
      else { break }
      arrivals.begin(status)
      say("READY")
      _ = try await arrivals.wait(atMost: .seconds(60))
      say("SAW")
    }
  }
}

// MARK: - h2load

/// h2load's throughput and its requests' latencies (microseconds), against `url`.
func h2load(url: String, body: String, inFlight: Int, for duration: Duration) throws
  -> LoadMeasurement
{
  let log = FileManager.default.temporaryDirectory
    .appendingPathComponent("h2load-\(UUID().uuidString).log").path
  defer { try? FileManager.default.removeItem(atPath: log) }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  let seconds = max(1, Int(duration / .seconds(1)))
  process.arguments = [
    "h2load", "--clients=1", "--threads=1", "--max-concurrent-streams=\(inFlight)",
    "--duration=\(seconds)", "--warm-up-time=1", "--data=\(body)",
    "--header=content-type: application/grpc", "--header=te: trailers", "--log-file=\(log)", url,
  ]
  let output = Pipe()
  process.standardOutput = output
  process.standardError = FileHandle.nullDevice
  try process.run()
  let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  process.waitUntilExit()
  guard process.terminationStatus == 0,
    let finished = text.split(separator: "\n").first(where: { $0.hasPrefix("finished in") }),
    let rate = finished.split(separator: ",").dropFirst().first?
      .split(separator: " ").first.flatMap({ Double($0) }),
    text.contains(" 0 failed, 0 errored")
  else {
    throw BenchmarkError("h2load failed:\n\(text)")
  }
  // Each line: start time, HTTP status, microseconds taken.
  let latencies = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
    .compactMap { line in line.split(separator: "\t").dropFirst(2).first.flatMap { Double($0) } }
  guard let calls = MeshInput.int64(truncating: rate) else {
    throw BenchmarkError("h2load reported \(rate) requests a second")
  }
  return LoadMeasurement(calls: Int(calls), seconds: 1, latencies: latencies)
}

func row(_ name: String, _ inFlight: Int, _ m: LoadMeasurement) -> String {
  "\(String(repeating: " ", count: max(0, 9 - String(inFlight).count)))\(inFlight) | \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) | \(format(m.throughput).padding(toLength: 7, withPad: " ", startingAt: 0)) | \(format(m.percentile(0.5)).padding(toLength: 6, withPad: " ", startingAt: 0)) | \(format(m.percentile(0.99)))"
}

func ratios(_ mesh: LoadMeasurement, _ bare: LoadMeasurement, _ inFlight: Int) -> String {
  "ratio MeshServer/GRPCServer at \(inFlight) in flight: throughput \(format(mesh.throughput / bare.throughput, 3))x, "
    + "p50 \(format(mesh.percentile(0.5) / bare.percentile(0.5), 3))x, "
    + "p99 \(format(mesh.percentile(0.99) / bare.percentile(0.99), 3))x"
}

// MARK: - Setup

// `--watchers <port> <certificates>`: the watchers' child process of the fan-out benchmark.
let watchersPort: Int? =
  CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "--watchers"
  ? try MeshInput.port(CommandLine.arguments[2], field: "--watchers") : nil
let certs = MeshCertificateDirectory(
  path: watchersPort != nil
    ? CommandLine.arguments[3]
    : FileManager.default.temporaryDirectory.appendingPathComponent(
      "mesh-server-bench-\(UUID().uuidString)"
    ).path
)
if watchersPort == nil {
  let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
  try certs.write(authority)
  for service in ["bench", "bench-client"] {
    try certs.write(try authority.issue(service: service))
  }
}
defer { if watchersPort == nil { try? FileManager.default.removeItem(atPath: certs.path) } }
let serverCredentials = try await MeshCredentials(.directory(certs.path, service: "bench"))
let clientCredentials = try await MeshCredentials(.directory(certs.path, service: "bench-client"))
let clientSecurity = try clientCredentials.clientTransportSecurity(
  server: .exactly(try MeshServiceIdentity.spiffe(trustDomain: "mesh.local", service: "bench"))
)
let clientConfig = clientCredentials.clientConfig()

/// A MeshServer of the health service alone (it adds it), drained at once.
func meshServer(tls: Bool) -> MeshServerConfiguration {
  var configuration = MeshServerConfiguration(serviceName: "bench", host: "127.0.0.1", port: 0)
  configuration.drain = .init(delay: .zero, gracePeriod: .seconds(1))
  if tls {
    configuration.tls = .init(credentials: .directory(certs.path, service: "bench"))
    configuration.authorization = MeshAuthorizationPolicy(
      rules: [.allow(from: .service("bench-client"), to: .service("grpc.health.v1.Health"))],
      defaultAction: .deny
    )
  }
  return configuration
}

/// A bare GRPCServer with the health service and the settings a MeshServer gives its transport.
func bareServer(tls: Bool) throws -> (
  GRPCServer<HTTP2ServerTransport.Posix>, HTTP2ServerTransport.Posix
) {
  var config = tls ? serverCredentials.serverConfig() : .defaults
  let defaults = MeshServerConfiguration.Connections()
  config.http2.maxConcurrentStreams = defaults.maxConcurrentStreams
  config.rpc.maxRequestPayloadSize = defaults.maxRequestMessageBytes
  let transport = HTTP2ServerTransport.Posix(
    address: .ipv4(host: "127.0.0.1", port: 0),
    transportSecurity: tls ? try serverCredentials.serverTransportSecurity() : .plaintext,
    config: config
  )
  return (GRPCServer(transport: transport, services: [MeshHealthService()]), transport)
}

// MARK: - 1. Watch fan-out

if let watchersPort {
  try await runWatchers(port: watchersPort)
  exit(0)
}
print("Health Watch fan-out on one MeshServer (\(watchTLS ? "mTLS" : "plaintext"))")
print("- the watchers in this process:")
try await withMeshServer(meshServer(tls: watchTLS), services: []) { server in
  try await watchFanOut(server: server, port: try await server.listeningPort)
}
print("- the watchers in a child process:")
try await withMeshServer(meshServer(tls: watchTLS), services: []) { server in
  try await watchFanOutInChild(server: server, port: try await server.listeningPort)
}

// MARK: - 2a. h2load, plaintext

print("")
/// Whether h2load runs here.
func h2loadFound() -> Bool {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  process.arguments = ["h2load", "--version"]
  process.standardOutput = FileHandle.nullDevice
  process.standardError = FileHandle.nullDevice
  guard (try? process.run()) != nil else { return false }
  process.waitUntilExit()
  return process.terminationStatus == 0
}
if h2loadFound() {
  // One gRPC message: uncompressed, an empty HealthCheckRequest.
  let body = FileManager.default.temporaryDirectory
    .appendingPathComponent("check-\(UUID().uuidString).bin").path
  try Data([0, 0, 0, 0, 0]).write(to: URL(fileURLWithPath: body))
  defer { try? FileManager.default.removeItem(atPath: body) }
  let (bare, bareTransport) = try bareServer(tls: false)
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await bare.serve() }
    let barePort = try await bareTransport.listeningAddress.ipv4!.port
    try await withMeshServer(meshServer(tls: false), services: []) { mesh in
      let meshPort = try await mesh.listeningPort
      print(
        "Unary Check under h2load (1 connection, plaintext), \(rounds) alternating rounds of \(round) each"
      )
      print("in flight | server     | RPC/s   | p50 µs | p99 µs")
      print("----------|------------|---------|--------|-------")
      for inFlight in [1, 64] {
        var bareTotal = LoadMeasurement()
        var meshTotal = LoadMeasurement()
        for _ in 0..<rounds {
          for (port, isMesh) in [(barePort, false), (meshPort, true)] {
            let m = try h2load(
              url: "http://127.0.0.1:\(port)/grpc.health.v1.Health/Check",
              body: body,
              inFlight: inFlight,
              for: round
            )
            if isMesh { meshTotal.merge(m) } else { bareTotal.merge(m) }
          }
        }
        print(row("GRPCServer", inFlight, bareTotal))
        print(row("MeshServer", inFlight, meshTotal))
        print(ratios(meshTotal, bareTotal, inFlight))
      }
    }
    bare.beginGracefulShutdown()
    try await group.waitForAll()
  }
} else {
  print("h2load not found (Debian: apt-get install nghttp2-client): the h2load rounds are skipped")
}

// MARK: - 2b. grpc-swift client, mTLS

print("")
let (bare, bareTransport) = try bareServer(tls: true)
try await withThrowingTaskGroup(of: Void.self) { group in
  group.addTask { try await bare.serve() }
  let barePort = try await bareTransport.listeningAddress.ipv4!.port
  try await withMeshServer(meshServer(tls: true), services: []) { mesh in
    let meshPort = try await mesh.listeningPort
    func transport(_ port: Int) throws -> HTTP2ClientTransport.Posix {
      try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port),
        transportSecurity: clientSecurity,
        config: clientConfig
      )
    }
    try await withGRPCClient(transport: try transport(barePort)) { bareClient in
      try await withGRPCClient(transport: try transport(meshPort)) { meshClient in
        let toBare = Grpc_Health_V1_Health.Client(wrapping: bareClient)
        let toMesh = Grpc_Health_V1_Health.Client(wrapping: meshClient)
        _ = try await measure(concurrency: 8, for: .seconds(1)) {
          _ = try await toBare.check(.init())
        }
        _ = try await measure(concurrency: 8, for: .seconds(1)) {
          _ = try await toMesh.check(.init())
        }
        print(
          "Unary Check from a grpc-swift client over mTLS, \(rounds) alternating rounds of \(round) each"
        )
        print("in flight | server     | RPC/s   | p50 µs | p99 µs")
        print("----------|------------|---------|--------|-------")
        for inFlight in [1, 64] {
          var bareTotal = LoadMeasurement()
          var meshTotal = LoadMeasurement()
          for _ in 0..<rounds {
            bareTotal.merge(
              try await measure(concurrency: inFlight, for: round) {
                _ = try await toBare.check(.init())
              }
            )
            meshTotal.merge(
              try await measure(concurrency: inFlight, for: round) {
                _ = try await toMesh.check(.init())
              }
            )
          }
          print(row("GRPCServer", inFlight, bareTotal))
          print(row("MeshServer", inFlight, meshTotal))
          print(ratios(meshTotal, bareTotal, inFlight))
        }
      }
    }
  }
  bare.beginGracefulShutdown()
  try await group.waitForAll()
}
