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
import Logging
import MeshCertificates
import MeshClient
import MeshConsul
import MeshConsulAgent
import MeshHealth
import MeshOTel
import MeshPrometheus
import MeshProto
import MeshTransport
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

// Unary calls (grpc.health.v1 Check) against one mTLS server, at 1 and 64 in flight:
//   raw:     a GRPCClient over one HTTP2ClientTransport.Posix with the same mTLS;
//   mesh:    MeshClient.client(for:) — Consul discovery (the embedded agent), P2C, mTLS;
//   bare:    the same with resilience off;
//   metered: the same as mesh, with its metrics going to a Prometheus registry;
//   traced:  metered, and every call traced (Sent and Attempt spans, the W3C context sent) with
//            MeshOTel's tracer, exporting over OTLP/gRPC to a sink in this process that accepts
//            every export (the whole path: spans, batching, serialization, the export RPCs);
//   sampled: traced, with 1 % of traces recorded (the others carry an unsampled context), as a
//            busy service samples.
// Rounds alternate raw and mesh in one process, so both see the same machine state.
// Then the P2C pick cost at 10, 1,000 and 10,000 endpoints, and what a health change (a picker
// rebuild) costs at each.

let round = environmentDuration("MESH_BENCH_SECONDS", default: .seconds(3))
let roundSeconds = round / .seconds(1)
let rounds = environmentInteger("MESH_BENCH_ROUNDS", default: 3, in: 1...100)

// MARK: - Setup

let certs = MeshCertificateDirectory(
  path: FileManager.default.temporaryDirectory.appendingPathComponent(
    "mesh-bench-\(UUID().uuidString)"
  ).path
)
defer { try? FileManager.default.removeItem(atPath: certs.path) }
let authority = try MeshCertificateAuthority.create(trustDomain: "mesh.local")
try certs.write(authority)
for service in ["bench", "bench-client", "consul-agent"] {
  try certs.write(try authority.issue(service: service))
}
let serverCredentials = try await MeshCredentials(.directory(certs.path, service: "bench"))
let clientCredentials = try await MeshCredentials(.directory(certs.path, service: "bench-client"))
let agentCredentials = try await MeshCredentials(.directory(certs.path, service: "consul-agent"))
let benchIdentity = try MeshServiceIdentity.spiffe(trustDomain: "mesh.local", service: "bench")

try await withThrowingTaskGroup(of: Void.self) { group in
  let serverTransport = HTTP2ServerTransport.Posix(
    address: .ipv4(host: "127.0.0.1", port: 0),
    transportSecurity: try serverCredentials.serverTransportSecurity(),
    config: serverCredentials.serverConfig()
  )
  let health = MeshHealthService()
  let server = GRPCServer(transport: serverTransport, services: [health])
  group.addTask { try await server.serve() }
  let port = try await serverTransport.listeningAddress.ipv4!.port

  let agent = MeshConsulAgent(
    configuration: MeshConsulAgentConfiguration(port: 0, checkCredentials: agentCredentials)
  )
  group.addTask { try await agent.run() }
  let agentPort = try await agent.listeningPort
  let consul = try ConsulClient(.init(address: URL(string: "http://127.0.0.1:\(agentPort)")!))
  try await consul.register(
    ConsulServiceRegistration(
      id: "bench-1",
      name: "bench",
      address: "127.0.0.1",
      port: port,
      check: .grpc("127.0.0.1:\(port)", interval: .seconds(1), useTLS: true)
    )
  )
  var index: UInt64 = 0
  while true {
    let response = try await consul.healthService(
      "bench",
      index: index > 0 ? index : nil,
      wait: .seconds(10)
    )
    index = response.index
    if !response.value.isEmpty { break }
  }

  let rawTransport = try HTTP2ClientTransport.Posix(
    target: .ipv4(address: "127.0.0.1", port: port),
    transportSecurity: try clientCredentials.clientTransportSecurity(
      server: .exactly(benchIdentity)
    ),
    config: clientCredentials.clientConfig()
  )
  let environmentConfiguration = try MeshClientConfiguration.fromEnvironment([
    "CONSUL_HTTP_ADDR": "127.0.0.1:\(agentPort)", "MESH_SERVICE_NAME": "bench-client",
    "MESH_CERTS_DIR": certs.path,
  ])

  // The same mesh client with resilience off (no retries, per-try timeout, budget or ejection):
  // the difference to "mesh" is what the resilience machinery costs per call.
  var configuration = environmentConfiguration
  if ProcessInfo.processInfo.environment["MESH_BENCH_NO_PER_TRY"] != nil {
    configuration.resilience.defaults.retry?.perTryTimeout = nil
  }
  if ProcessInfo.processInfo.environment["MESH_BENCH_NO_RETRY"] != nil {
    configuration.resilience.defaults.retry = nil
  }
  var meteredConfiguration = configuration
  let prometheus = MeshPrometheusMetrics()
  meteredConfiguration.metrics = prometheus.factory
  // The OTLP sink and the tracer exporting to it.
  let sinkTransport = HTTP2ServerTransport.Posix(
    address: .ipv4(host: "127.0.0.1", port: 0),
    transportSecurity: .plaintext
  )
  let sink = OTLPSink()
  let sinkServer = GRPCServer(transport: sinkTransport, services: [sink])
  group.addTask { try await sinkServer.serve() }
  let sinkPort = try await sinkTransport.listeningAddress.ipv4!.port
  let tracing = try MeshOTel.tracing(
    MeshOTelConfiguration(
      serviceName: "bench-client",
      endpoint: "http://127.0.0.1:\(sinkPort)",
      exportInterval: .milliseconds(200)
    )
  )
  var tracedConfiguration = meteredConfiguration
  tracedConfiguration.tracer = tracing.tracer
  let sampling = try MeshOTel.tracing(
    MeshOTelConfiguration(
      serviceName: "bench-client-sampled",
      endpoint: "http://127.0.0.1:\(sinkPort)",
      exportInterval: .milliseconds(200),
      samplingRatio: 0.01
    )
  )
  let exporter = ServiceGroup(
    configuration: ServiceGroupConfiguration(
      services: [.init(service: tracing.service), .init(service: sampling.service)],
      logger: Logger(label: "otel", factory: { _ in SwiftLogNoOpLogHandler() })
    )
  )
  group.addTask {
    // The sink stops once the exporters have exported their last spans.
    try await exporter.run()
    sinkServer.beginGracefulShutdown()
  }
  var sampledConfiguration = meteredConfiguration
  sampledConfiguration.tracer = sampling.tracer
  var bareConfiguration = configuration
  bareConfiguration.resilience = MeshResiliencePolicy(
    defaults: MeshMethodPolicy(),
    retryBudget: nil,
    outlierDetection: nil
  )

  try await withGRPCClient(transport: rawTransport) { rawClient in
    try await withMeshClient(configuration) { mesh in
      try await withMeshClient(bareConfiguration) { bareMesh in
        try await withMeshClient(meteredConfiguration) { meteredMesh in
          try await withMeshClient(tracedConfiguration) { tracedMesh in
            try await withMeshClient(sampledConfiguration) { sampledMesh in
              let raw = Grpc_Health_V1_Health.Client(wrapping: rawClient)
              let meshed = Grpc_Health_V1_Health.Client(wrapping: try mesh.client(for: "bench"))
              let bare = Grpc_Health_V1_Health.Client(wrapping: try bareMesh.client(for: "bench"))
              let metered = Grpc_Health_V1_Health.Client(
                wrapping: try meteredMesh.client(for: "bench")
              )
              let traced = Grpc_Health_V1_Health.Client(
                wrapping: try tracedMesh.client(for: "bench")
              )
              let sampled = Grpc_Health_V1_Health.Client(
                wrapping: try sampledMesh.client(for: "bench")
              )
              // Warm up every path (connections, discovery, caches and pools).
              _ = try await measure(concurrency: 8, for: .seconds(1)) {
                _ = try await raw.check(.init())
              }
              _ = try await measure(concurrency: 8, for: .seconds(1)) {
                _ = try await meshed.check(.init())
              }
              _ = try await measure(concurrency: 8, for: .seconds(1)) {
                _ = try await bare.check(.init())
              }
              _ = try await measure(concurrency: 8, for: .seconds(1)) {
                _ = try await metered.check(.init())
              }
              _ = try await measure(concurrency: 8, for: .seconds(1)) {
                _ = try await traced.check(.init())
              }
              _ = try await measure(concurrency: 8, for: .seconds(1)) {
                _ = try await sampled.check(.init())
              }

              print(
                "Unary Check over mTLS, one server; \(rounds) alternating rounds of \(format(roundSeconds)) s each"
              )
              print("in flight | client  | RPC/s   | p50 µs | p99 µs")
              print("----------|---------|---------|--------|-------")
              for concurrency in [1, 64] {
                var rawTotal = LoadMeasurement()
                var meshTotal = LoadMeasurement()
                var bareTotal = LoadMeasurement()
                var meteredTotal = LoadMeasurement()
                var tracedTotal = LoadMeasurement()
                var sampledTotal = LoadMeasurement()
                for _ in 0..<rounds {
                  bareTotal.merge(
                    try await measure(concurrency: concurrency, for: round) {
                      _ = try await bare.check(.init())
                    }
                  )
                  rawTotal.merge(
                    try await measure(concurrency: concurrency, for: round) {
                      _ = try await raw.check(.init())
                    }
                  )
                  meshTotal.merge(
                    try await measure(concurrency: concurrency, for: round) {
                      _ = try await meshed.check(.init())
                    }
                  )
                  meteredTotal.merge(
                    try await measure(concurrency: concurrency, for: round) {
                      _ = try await metered.check(.init())
                    }
                  )
                  tracedTotal.merge(
                    try await measure(concurrency: concurrency, for: round) {
                      _ = try await traced.check(.init())
                    }
                  )
                  sampledTotal.merge(
                    try await measure(concurrency: concurrency, for: round) {
                      _ = try await sampled.check(.init())
                    }
                  )
                }
                for (name, m) in [
                  ("raw", rawTotal), ("bare", bareTotal), ("mesh", meshTotal),
                  ("metered", meteredTotal), ("traced", tracedTotal), ("sampled", sampledTotal),
                ] {
                  print(
                    "\(String(repeating: " ", count: 9 - String(concurrency).count))\(concurrency) | \(name.padding(toLength: 7, withPad: " ", startingAt: 0)) | \(format(m.throughput).padding(toLength: 7, withPad: " ", startingAt: 0)) | \(format(m.percentile(0.5)).padding(toLength: 6, withPad: " ", startingAt: 0)) | \(format(m.percentile(0.99)))"
                  )
                }
                print(
                  "ratio mesh/raw at \(concurrency) in flight: throughput \(format(meshTotal.throughput / rawTotal.throughput, 3))x, "
                    + "p50 \(format(meshTotal.percentile(0.5) / rawTotal.percentile(0.5), 3))x, "
                    + "p99 \(format(meshTotal.percentile(0.99) / rawTotal.percentile(0.99), 3))x"
                )
                print(
                  "ratio mesh/bare (resilience on/off) at \(concurrency) in flight: throughput \(format(meshTotal.throughput / bareTotal.throughput, 3))x, "
                    + "p50 \(format(meshTotal.percentile(0.5) / bareTotal.percentile(0.5), 3))x, "
                    + "p99 \(format(meshTotal.percentile(0.99) / bareTotal.percentile(0.99), 3))x"
                )
                print(
                  "ratio metered/mesh (metrics on/off) at \(concurrency) in flight: throughput \(format(meteredTotal.throughput / meshTotal.throughput, 3))x, "
                    + "p50 \(format(meteredTotal.percentile(0.5) / meshTotal.percentile(0.5), 3))x, "
                    + "p99 \(format(meteredTotal.percentile(0.99) / meshTotal.percentile(0.99), 3))x"
                )
                print(
                  "ratio traced/metered (tracing on/off) at \(concurrency) in flight: throughput \(format(tracedTotal.throughput / meteredTotal.throughput, 3))x, "
                    + "p50 \(format(tracedTotal.percentile(0.5) / meteredTotal.percentile(0.5), 3))x, "
                    + "p99 \(format(tracedTotal.percentile(0.99) / meteredTotal.percentile(0.99), 3))x"
                )
                print(
                  "ratio sampled/metered (tracing 1 % on/off) at \(concurrency) in flight: throughput \(format(sampledTotal.throughput / meteredTotal.throughput, 3))x, "
                    + "p50 \(format(sampledTotal.percentile(0.5) / meteredTotal.percentile(0.5), 3))x, "
                    + "p99 \(format(sampledTotal.percentile(0.99) / meteredTotal.percentile(0.99), 3))x"
                )
                print(
                  "ratio traced/mesh (metrics and tracing on/off) at \(concurrency) in flight: throughput \(format(tracedTotal.throughput / meshTotal.throughput, 3))x, "
                    + "p99 \(format(tracedTotal.percentile(0.99) / meshTotal.percentile(0.99), 3))x"
                )
              }
              print("OTLP sink: \(sink.exports) exports, \(sink.bytes) bytes received")
            }
          }
        }
      }
    }
  }

  // MARK: - Pick cost
  print("")
  print("P2C pick cost (pick + started + finished), 1,000,000 picks each")
  var baseline = 0.0
  for count in [10, 1_000, 10_000] {
    var picker = MeshPickerState<ContinuousClock.Instant>(policy: .leastRequest)
    picker.update((0..<count).map { MeshPickerEndpoint(id: "e\($0)") })
    var random = MeshFastRandom()
    let now = ContinuousClock.now
    let picks = 1_000_000
    let start = ContinuousClock.now
    for _ in 0..<picks {
      if let id = picker.pick(now: now, using: &random) {
        picker.started(id)
        picker.finished(id, latency: .zero, now: now)
      }
    }
    let nanoseconds = start.duration(to: .now) / .nanoseconds(1) / Double(picks)
    if count == 10 { baseline = nanoseconds }
    print(
      "\(count) endpoints: \(format(nanoseconds, 1)) ns/pick (\(format(nanoseconds / baseline, 2))x of 10)"
    )
  }

  // MARK: - Health change cost
  // A health change (an endpoint turning SERVING or NOT_SERVING, ejected or readmitted) rebuilds
  // the picker from the eligible endpoints, O(n); an incremental update would be O(1). Measured
  // here against the pick cost, to see whether that is worth its complexity.
  print("")
  print("Health change cost (picker rebuilt with one endpoint out, then back), 10,000 changes each")
  for count in [10, 1_000, 10_000] {
    let all = (0..<count).map { MeshPickerEndpoint(id: "e\($0)") }
    let lessOne = Array(all.dropFirst())
    var picker = MeshPickerState<ContinuousClock.Instant>(policy: .leastRequest)
    picker.update(all)
    let changes = 10_000
    let start = ContinuousClock.now
    for change in 0..<changes {
      picker.update(change.isMultiple(of: 2) ? lessOne : all)
    }
    let microseconds = start.duration(to: .now) / .microseconds(1) / Double(changes)
    print("\(count) endpoints: \(format(microseconds, 2)) µs/change")
  }

  agent.beginGracefulShutdown()
  server.beginGracefulShutdown()
  await exporter.triggerGracefulShutdown()
  try await group.waitForAll()
}

/// Accepts OTLP trace exports (`TraceService/Export`) and answers each with an empty
/// `ExportTraceServiceResponse` (zero bytes), counting them: the collector end of the traced client.
final class OTLPSink: RegistrableRPCService, Sendable {
  private let counts = Mutex((exports: 0, bytes: 0))

  var exports: Int { self.counts.withLock { $0.exports } }
  var bytes: Int { self.counts.withLock { $0.bytes } }

  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    router.registerHandler(
      forMethod: MethodDescriptor(
        fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService",
        method: "Export"
      ),
      deserializer: RawBytes(),
      serializer: RawBytes()
    ) { request, _ in
      for try await message in request.messages {
        self.counts.withLock {
          $0.exports += 1
          $0.bytes += message.count
        }
      }
      return StreamingServerResponse(single: ServerResponse(message: []))
    }
  }
}

/// Messages as their bytes.
struct RawBytes: MessageSerializer, MessageDeserializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
    Bytes(message)
  }

  func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
    serializedMessageBytes.withUnsafeBytes { Array($0) }
  }
}
