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
import MeshAdmin
import MeshCertificates
import MeshClient
import MeshConsul
import MeshConsulAgent
import MeshCore
import MeshHealth
import MeshServer
import MeshTransport
import SwiftProtobuf
import Synchronization
import UnixSignals

// The mesh end to end:
//   - the embedded Consul-compatible agent,
//   - three instances of "greeter" (the examples' greeter.v1.Greeter service), each a MeshServer in
//     a child process: mTLS with certificates made on the fly, the health servicer, and
//     self-registration with a gRPC health check that the agent runs over mTLS,
//   - a mesh client calling greeter.v1.Greeter steadily, by the service's name: SayHello, and
//     every tenth call StreamHellos (server streaming).
// The story, at fifths of the run, each step announced as it happens: greeter-2 is flaky from the
// start (it fails every third call from the client with UNAVAILABLE: the mesh retries those on
// another instance, and outlier detection ejects it); at 1/5 greeter-0 is killed (kill -9: its
// calls in flight are retried elsewhere); at 2/5 it is restarted (it registers again and is picked
// again); at 3/5 greeter-2 heals (its ejection ends, it is probed and readmitted) and greeter's
// certificate is rotated (each instance reloads it); at 4/5 greeter-1 drains (NOT_SERVING,
// deregistered, stopped with no failed call). Every second it prints per-instance call counts,
// errors, retries, ejected instances and latency percentiles; the last line is a summary:
// total=<n> failed=<n> retries=<n> budget_refused=<n> ejections=<n> p50_ms=<x> p99_ms=<x>.
//
// Its flags are checked before anything starts (a bad one exits with status 1). The temporary
// folder with the CA key is removed however the demo ends: finished, failed, or stopped by
// SIGINT or SIGTERM (it then exits with 128 + the signal's number).

/// The demo's `print`: each line is flushed, so that whoever reads the output through a pipe or a
/// file (a script, a test, `tee`) sees it as it happens, not when a buffer fills.
func print(_ line: String) {
  Swift.print(line)
  fflush(nil)
}

/// Counts the greeter calls an instance serves; when flaky, fails every third call from the demo
/// client with UNAVAILABLE.
final class Served: ServerInterceptor, Sendable {
  private let count = Mutex(0)
  let flaky = Mutex(false)
  var value: Int { self.count.withLock { $0 } }

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    if context.descriptor.service == Greeter_V1_Greeter.descriptor {
      let call = self.count.withLock {
        $0 += 1
        return $0
      }
      let caller = MeshCaller.current(in: context)?.identity.spiffeID ?? ""
      if caller.hasSuffix("/demo-client") && self.flaky.withLock({ $0 }) && call % 3 == 0 {
        throw RPCError(code: .unavailable, message: "flaky instance")
      }
    }
    return try await next(request, context)
  }
}

/// Client-side results: latencies in milliseconds, and failures.
final class Results: Sendable {
  private let state = Mutex((latencies: [Double](), failures: 0, errors: [String: Int]()))

  func record(milliseconds: Double) { self.state.withLock { $0.latencies.append(milliseconds) } }

  func fail(_ error: any Error) {
    let key = (error as? RPCError).map { "\($0.code) (\($0.message.prefix(90)))" } ?? "\(error)"
    self.state.withLock {
      $0.failures += 1
      $0.errors[key, default: 0] += 1
    }
  }

  var snapshot: (latencies: [Double], failures: Int, errors: [String: Int]) {
    self.state.withLock { $0 }
  }

  static func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
  }
}

// MARK: - An instance (a child process of the demo)

/// `mesh-demo --instance <index> <certs> <agent port>`: one greeter instance, a MeshServer that
/// registers itself in the agent as `greeter-<index>` with a gRPC check and runs an admin
/// endpoint. It prints `LISTENING <port> <admin port>`, then answers commands on stdin: `count`
/// (prints `COUNT <n>`), `not-serving`, `flaky`, `healthy`; stdin closing drains it.
func runInstance(index: String, certificates: String, agentPort: String) async throws {
  let served = Served()
  var configuration = try MeshServerConfiguration.fromEnvironment([
    "MESH_SERVICE_NAME": "greeter", "MESH_CERTS_DIR": certificates,
    "MESH_SERVER_HOST": "127.0.0.1", "MESH_SERVER_PORT": "0",
    "CONSUL_HTTP_ADDR": "127.0.0.1:\(agentPort)", "MESH_DRAIN_DELAY": "0",
    "MESH_ADMIN_ADDRESS": "127.0.0.1:0",
  ])
  configuration.registration?.id = "greeter-\(index)"
  configuration.registration?.checkInterval = .seconds(1)
  configuration.registration?.checkTimeout = .seconds(2)
  // The demo rotates the greeter's certificate mid-run: re-read the files every second.
  configuration.tls?.credentials.reloadInterval = .seconds(1)
  // Authorization by caller identity: only demo-client may call the greeter; anyone in the mesh
  // may ask its health (Consul's checks, the clients' health checking, `mesh health`).
  configuration.authorization = MeshAuthorizationPolicy(
    rules: [
      .allow(from: .service("demo-client"), to: .service("greeter.v1.Greeter")),
      .allow(from: .trustDomain("mesh.local"), to: .service("grpc.health.v1.Health")),
    ],
    defaultAction: .deny
  )
  let server = try await MeshServer(
    configuration: configuration,
    services: [GreeterService(instance: "greeter-\(index)")],
    interceptors: [served]
  )
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.run() }
    let port = try await server.listeningPort
    let adminPort = try await server.admin?.listeningPort ?? 0
    print("LISTENING \(port) \(adminPort)")
    fflush(nil)
    // Commands from the parent, read off the cooperative pool; stdin closing ends the instance.
    let thread = Thread {
      while let line = readLine() {
        switch line {
        case "count": print("COUNT \(served.value)")
        case "not-serving":
          // Consul's check (the whole server) and the clients' health checking (the service).
          server.health.setNotServing()
          server.health.setNotServing(service: Greeter_V1_Greeter.descriptor.fullyQualifiedService)
        case "flaky": served.flaky.withLock { $0 = true }
        case "healthy": served.flaky.withLock { $0 = false }
        default: break
        }
        fflush(nil)
      }
      server.beginGracefulShutdown()
    }
    thread.start()
    try await group.waitForAll()
  }
}

/// A greeter instance running as a child process.
final class InstanceProcess: @unchecked Sendable {
  let process = Process()
  private let input: FileHandle
  private let lines: AsyncStream<String>
  private var iterator: AsyncStream<String>.AsyncIterator
  private(set) var port = 0
  private(set) var adminPort = 0
  private(set) var isAlive = true

  init(index: Int, certificates: String, agentPort: Int) throws {
    self.process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    self.process.arguments = ["--instance", "\(index)", certificates, "\(agentPort)"]
    let stdin = Pipe()
    let stdout = Pipe()
    self.process.standardInput = stdin
    self.process.standardOutput = stdout
    self.input = stdin.fileHandleForWriting
    let lines = outputLines(of: stdout.fileHandleForReading)
    self.lines = lines
    self.iterator = lines.makeAsyncIterator()
    try self.process.run()
  }

  func waitUntilListening() async throws {
    while let line = await self.iterator.next() {
      let words = line.split(separator: " ")
      if words.count == 3, words[0] == "LISTENING", let port = Int(words[1]),
        let adminPort = Int(words[2])
      {
        self.port = port
        self.adminPort = adminPort
        return
      }
    }
    throw DemoError("an instance exited before listening")
  }

  func send(_ command: String) {
    try? self.input.write(contentsOf: Data("\(command)\n".utf8))
  }

  /// The RPCs it served; nil once it is dead.
  func servedCount() async -> Int? {
    guard self.isAlive else { return nil }
    self.send("count")
    while let line = await self.iterator.next() {
      if line.hasPrefix("COUNT "), let count = Int(line.dropFirst(6)) { return count }
    }
    return nil
  }

  /// SIGKILL: the process dies at once, as a crashed one does.
  func kill() {
    guard self.isAlive else { return }
    self.isAlive = false
    _ = Foundation.kill(self.process.processIdentifier, SIGKILL)
  }

  func stop() {
    guard self.isAlive else { return }
    self.isAlive = false
    try? self.input.close()
    self.process.waitUntilExit()
  }

  /// Closes its stdin (a graceful drain: NOT_SERVING, deregistered, GOAWAY, calls in flight
  /// finish) and returns when it has exited, with its exit status.
  func drain() async -> Int32 {
    guard self.isAlive else { return -1 }
    self.isAlive = false
    try? self.input.close()
    // Its output ends when it exits.
    while await self.iterator.next() != nil {}
    self.process.waitUntilExit()
    return self.process.terminationStatus
  }
}

if CommandLine.arguments.count == 5 && CommandLine.arguments[1] == "--instance" {
  let arguments = CommandLine.arguments
  do {
    try await runInstance(index: arguments[2], certificates: arguments[3], agentPort: arguments[4])
    exit(0)
  } catch {
    FileHandle.standardError.write(Data("mesh-demo instance: \(error)\n".utf8))
    exit(1)
  }
}

// MARK: - The demo

let options: DemoOptions
do {
  options = try DemoOptions(Array(CommandLine.arguments.dropFirst()))
} catch {
  FileHandle.standardError.write(Data("mesh-demo: \(error)\n".utf8))
  exit(1)
}
if options.help {
  print(DemoOptions.usage)
  exit(0)
}

/// How the demo ended, when it did not fail.
enum Outcome: Sendable {
  case finished
  case stopped(UnixSignal)
}

// Signals are trapped before the CA key exists, so that none can leave it behind.
let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
/// Fired by SIGINT or SIGTERM: the demo stops in order (traffic, instances, then the agent
/// gracefully), as it does when its time is up. Cancelling it instead would stop the agent's HTTP
/// server while connections are still being accepted, which NIO traps on (apple/swift-nio#3481).
let stopRequested = MeshSignal()
// Certificates made on the fly, in a temporary folder (the `mesh certs` layout).
let certs = MeshCertificateDirectory(
  path: FileManager.default.temporaryDirectory.appendingPathComponent(
    "mesh-demo-\(UUID().uuidString)"
  ).path
)
let outcome: Result<Outcome, any Error>
do {
  // The demo and the signals race; whichever ends first cancels the other.
  outcome = .success(
    try await withThrowingTaskGroup(of: Outcome.self) { group in
      group.addTask { [signals] in
        for await signal in signals { return .stopped(signal) }
        return .finished  // cancelled: the demo ended first
      }
      group.addTask { [options, certs] in
        try await runDemo(options: options, certs: certs)
        return .finished
      }
      let first = try await group.next() ?? .finished
      if case .stopped = first {
        stopRequested.fire()
        // The demo stops in order; if that takes over 10 s, it is cancelled.
        group.addTask {
          try await Task.sleep(for: .seconds(10))
          return .finished
        }
        _ = try? await group.next()
      }
      group.cancelAll()
      return first
    }
  )
} catch {
  outcome = .failure(error)
}
try? FileManager.default.removeItem(atPath: certs.path)
switch outcome {
case .success(.finished):
  break
case .success(.stopped(let signal)):
  print("demo: stopped by \(signal); removed \(certs.path)")
  exit(128 + signal.rawValue)
case .failure(let error):
  FileHandle.standardError.write(Data("mesh-demo: \(error)\n".utf8))
  exit(1)
}

/// The demo itself; cancelling it stops it (its instances are killed).
func runDemo(options: DemoOptions, certs: MeshCertificateDirectory) async throws {
  let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
  try certs.write(authority)
  for service in ["greeter", "demo-client", "consul-agent", "intruder"] {
    try certs.write(try authority.issue(service: service, ipAddresses: ["127.0.0.1"]))
  }
  print(
    "demo: made a mesh CA and certificates for greeter, demo-client, consul-agent and intruder in \(certs.path)"
  )

  let agentCredentials = try await MeshCredentials(.directory(certs.path, service: "consul-agent"))
  let agent = MeshConsulAgent(
    configuration: MeshConsulAgentConfiguration(port: 0, checkCredentials: agentCredentials)
  )

  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await agent.run() }
    let agentPort = try await agent.listeningPort
    print("demo: Consul-compatible agent on http://127.0.0.1:\(agentPort)")
    let consul = try ConsulClient(.init(address: URL(string: "http://127.0.0.1:\(agentPort)")!))

    // Three instances, each a child process (so "stop one" is a real kill -9); however the demo
    // ends, none outlives it.
    var instances: [InstanceProcess] = []
    defer { for instance in instances { instance.kill() } }
    for index in 0..<3 {
      let instance = try InstanceProcess(
        index: index,
        certificates: certs.path,
        agentPort: agentPort
      )
      instances.append(instance)  // killed however the demo ends, even before it listens
      try await instance.waitUntilListening()
      print(
        "demo: greeter-\(index) (pid \(instance.process.processIdentifier)), a MeshServer on 127.0.0.1:\(instance.port), registered itself with a gRPC check"
      )
      print("demo: admin endpoint of greeter-\(index) on http://127.0.0.1:\(instance.adminPort)/")
    }

    var configuration = try MeshClientConfiguration.fromEnvironment([
      "CONSUL_HTTP_ADDR": "127.0.0.1:\(agentPort)",
      "MESH_SERVICE_NAME": "demo-client",
      "MESH_CERTS_DIR": certs.path,
      "MESH_CLIENT_ADMIN_ADDRESS": "127.0.0.1:0",
    ])
    // The seed's retries (3 on UNAVAILABLE, 20 % + 10/s budget), with a short per-try timeout and
    // backoff, and outlier detection that acts within the demo's seconds.
    var resilience = MeshResiliencePolicy()
    resilience.defaults.retry = MeshRetryPolicy(
      perTryTimeout: .seconds(1),
      initialBackoff: .milliseconds(10),
      maxBackoff: .milliseconds(100)
    )
    // At most one retry per worker can be in flight, so the 'max retries' breaker (5 by default)
    // is set to the workers: it guards a fleet against retry storms, which this client's few
    // workers cannot make, and with more workers than 5 retrying at once (one instance killed,
    // another failing a third of its calls) it would fail calls the retries would have saved.
    resilience.circuitBreakers.maxRetries = max(
      resilience.circuitBreakers.maxRetries,
      options.concurrency
    )
    resilience.outlierDetection = MeshOutlierDetectionPolicy(
      interval: .seconds(1),
      baseEjectionTime: .seconds(2),
      maxEjectionTime: .seconds(6),
      minimumRequests: 20,
      failurePercentageThreshold: 0.2
    )
    configuration.targets["greeter"] = .init(timeout: .seconds(2), resilience: resilience)
    // Client-side health checking (gRFC A17) of the service the instances serve.
    configuration.healthCheckServiceName = Greeter_V1_Greeter.descriptor.fullyQualifiedService
    let results = Results()
    var totals = MeshTransportStats()

    try await withMeshClient(configuration) { mesh in
      if let admin = mesh.admin {
        print("demo: admin endpoint of demo-client on \(try await admin.url)")
        print("demo:   (/metrics, /clusters, /config_dump, /certs, /ready, /logging)")
        print("demo: while it runs, from another terminal at the repository's root:")
        print("demo:   swift run mesh clusters \(try await admin.url)")
      }
      let tools =
        "--consul http://127.0.0.1:\(agentPort) --certs \(certs.path) --identity demo-client"
      print("demo:   swift run mesh status \(tools)")
      print("demo:   swift run mesh check \(tools)")
      let greeter = Greeter_V1_Greeter.Client(wrapping: try mesh.client(for: "greeter"))
      let start = ContinuousClock.now
      let end = start.advanced(by: options.duration)
      let seconds = options.duration / .seconds(1)
      print(
        "demo: sending traffic to 'greeter' for \(seconds) s with \(options.concurrency) workers"
      )
      instances[2].send("flaky")
      print("demo: >>> greeter-2 is flaky: it fails every third call with UNAVAILABLE")

      // Another service of the mesh, with a certificate from the same CA, that the greeter's
      // policy does not let in.
      var intruder = configuration
      intruder.serviceName = "intruder"
      intruder.tls = .init(credentials: .directory(certs.path, service: "intruder"))
      intruder.admin = nil
      // Its refused call shows in the demo client's metrics, as PERMISSION_DENIED.
      intruder.metrics = mesh.admin?.metricsFactory
      try await withMeshClient(intruder) { intruderMesh in
        let client = Greeter_V1_Greeter.Client(wrapping: try intruderMesh.client(for: "greeter"))
        do {
          _ = try await client.sayHello(.with { $0.name = "intruder" })
          throw DemoError("the greeter let intruder in: its authorization policy did not hold")
        } catch let error as RPCError where error.code == .permissionDenied {
          print(
            "demo: >>> intruder (spiffe://mesh.local/ns/default/svc/intruder) called SayHello: refused by authorization (\(error.code))"
          )
        }
      }

      try await withThrowingTaskGroup(of: Void.self) { traffic in
        for _ in 0..<options.concurrency {
          traffic.addTask {
            var calls = 0
            while ContinuousClock.now < end && !Task.isCancelled && !stopRequested.hasFired {
              calls += 1
              let before = ContinuousClock.now
              do {
                if calls.isMultiple(of: 10) {
                  // Every tenth call streams: three greetings in one server-streaming RPC.
                  let replies = try await greeter.streamHellos(
                    .with {
                      $0.name = "demo"
                      $0.count = 3
                    }
                  ) { response in
                    var count = 0
                    for try await _ in response.messages { count += 1 }
                    return count
                  }
                  guard replies == 3 else {
                    throw RPCError(code: .internalError, message: "\(replies) of 3 replies")
                  }
                } else {
                  _ = try await greeter.sayHello(.with { $0.name = "demo" })
                }
                results.record(milliseconds: before.duration(to: .now) / .milliseconds(1))
              } catch {
                results.fail(error)
              }
            }
          }
        }

        // The timeline and the per-second report.
        var second = 0
        // What happens when, as fractions of the run: each step once, announced as it happens.
        var step = 0
        var awaitingRestartedPick = false
        var previous = instances.map { _ in 0 }
        var previousCount = 0
        var previousRetries = 0
        var previousEjected: Set<String> = []
        while ContinuousClock.now < end && !stopRequested.hasFired {
          await stopRequested.cancelling { try? await Task.sleep(for: .seconds(1)) }
          if stopRequested.hasFired { break }
          second += 1
          let elapsed = start.duration(to: .now) / .seconds(1)
          if step == 0 && elapsed >= seconds / 5 {
            step += 1
            instances[0].kill()
            print("demo: >>> killed greeter-0 (kill -9): its calls in flight are retried elsewhere")
          } else if step == 1 && elapsed >= 2 * seconds / 5 {
            step += 1
            let restarted = try InstanceProcess(
              index: 0,
              certificates: certs.path,
              agentPort: agentPort
            )
            instances[0] = restarted
            try await restarted.waitUntilListening()
            previous[0] = 0
            awaitingRestartedPick = true
            print(
              "demo: >>> restarted greeter-0 (pid \(restarted.process.processIdentifier)) on 127.0.0.1:\(restarted.port): it registers again and is picked once its check passes"
            )
            print("demo: admin endpoint of greeter-0 on http://127.0.0.1:\(restarted.adminPort)/")
          } else if step == 2 && elapsed >= 3 * seconds / 5 {
            step += 1
            instances[2].send("healthy")
            print(
              "demo: >>> greeter-2 is healthy again: once its ejection ends it is probed and readmitted"
            )
            let rotated = try authority.issue(service: "greeter", ipAddresses: ["127.0.0.1"])
            try certs.write(rotated, force: true)
            print(
              "demo: >>> rotated greeter's certificate and key (\(rotated.identity)): each instance reloads them within 1 s; new connections use them"
            )
          } else if step == 3 && elapsed >= 4 * seconds / 5 {
            step += 1
            print("demo: >>> draining greeter-1: NOT_SERVING, deregistered, calls in flight finish")
            let status = await instances[1].drain()
            print("demo: >>> greeter-1 drained and exited (status \(status))")
          }
          var counts: [Int] = []
          for (index, instance) in instances.enumerated() {
            counts.append(await instance.servedCount() ?? previous[index])
          }
          if awaitingRestartedPick && counts[0] > 0 {
            awaitingRestartedPick = false
            print("demo: >>> the restarted greeter-0 is picked again (\(counts[0]) calls so far)")
          }
          let stats = mesh.stats(for: "greeter") ?? MeshTransportStats()
          for id in stats.ejectedEndpoints.subtracting(previousEjected).sorted() {
            print("demo: >>> outlier detection ejected \(id)")
          }
          for id in previousEjected.subtracting(stats.ejectedEndpoints).sorted() {
            print("demo: >>> \(id)'s ejection ended: probing it")
          }
          previousEjected = stats.ejectedEndpoints
          let snapshot = results.snapshot
          let recent = Array(snapshot.latencies[previousCount...]).sorted()
          let perInstance = zip(counts, previous).enumerated()
            .map { "greeter-\($0.offset)=\($0.element.0 - $0.element.1)" }.joined(separator: " ")
          print(
            String(
              format: "t=%2ds %@ errors=%d retries=%d ejected=%@ p50_ms=%.2f p99_ms=%.2f",
              second,
              perInstance,
              snapshot.failures,
              stats.retriesTotal - previousRetries,
              stats.ejectedEndpoints.isEmpty
                ? "-" : stats.ejectedEndpoints.sorted().joined(separator: ","),
              Results.percentile(recent, 0.5),
              Results.percentile(recent, 0.99)
            )
          )
          previous = counts
          previousCount = snapshot.latencies.count
          previousRetries = stats.retriesTotal
        }
        try await traffic.waitForAll()
      }
      totals = mesh.stats(for: "greeter") ?? MeshTransportStats()
    }

    let snapshot = results.snapshot
    let sorted = snapshot.latencies.sorted()
    if !snapshot.errors.isEmpty {
      print(
        "demo: errors: \(snapshot.errors.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: "; "))"
      )
    }
    if totals.retriesRefusedByBudget > 0 {
      print(
        """
        demo: the retry budget (20 % of calls + 10/s) refused \(totals.retriesRefusedByBudget) \
        retries once the flaky instance was the only one serving: retries never multiply an outage
        """
      )
    }
    // SayHello and StreamHellos are both idempotent: the mesh may retry either.
    print(
      "demo: every call accounted for: \(sorted.count) succeeded + \(snapshot.failures) failed = \(sorted.count + snapshot.failures); failed calls to idempotent methods: \(snapshot.failures)"
    )
    let passing = try await consul.healthService("greeter").value.map(\.service.id)
    print("demo: Consul's passing greeter instances at the end: \(passing)")

    for instance in instances { instance.stop() }
    agent.beginGracefulShutdown()
    try await group.waitForAll()
    print(
      String(
        format:
          "total=%d failed=%d retries=%d budget_refused=%d ejections=%d p50_ms=%.2f p99_ms=%.2f",
        sorted.count + snapshot.failures,
        snapshot.failures,
        totals.retriesTotal,
        totals.retriesRefusedByBudget,
        totals.ejectionsTotal,
        Results.percentile(sorted, 0.5),
        Results.percentile(sorted, 0.99)
      )
    )
  }
}
