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

import CoreMetrics
import Foundation
import GRPCCore
import InteropSupport
import MeshCore
import MeshDiscovery
import MeshPrometheus
import MeshProto
import MeshTestKit
import MeshTransport
import MetricsTestKit
import Testing

/// gRPC's client instruments, recorded by the balancing transport over in-process endpoints:
/// gRFC A66 per call and per attempt, A96's retries and hedges, A91's ejections.
@Suite("Client metrics (gRFC A66, A91, A96)", .timeLimit(.minutes(1)))
struct ClientMetricsTests {
  typealias Transport = MeshBalancingTransport<MeshInProcessSubchannelFactory, ContinuousClock>

  static let method = ("grpc.method", "grpc.health.v1.Health/Check")
  static let target = ("grpc.target", "mesh:///greeter")
  static func status(_ name: String) -> (String, String) { ("grpc.status", name) }

  /// Makes one call that `a` fails with UNAVAILABLE and `b` answers after a retry, then runs
  /// `body` on the transport.
  static func callRetriedOnce(
    metrics: any MetricsFactory,
    _ body: (Transport) async throws -> Void = { _ in }
  ) async throws {
    try await withInProcessFleet(["a", "b"]) { fleet in
      fleet.faults(of: "a").set(.fail(.unavailable, times: 1))
      let retry = MeshMethodPolicy(
        retry: MeshRetryPolicy(
          maxAttempts: 3,
          retryableStatusCodes: [.unavailable],
          initialBackoff: .nanoseconds(1),
          maxBackoff: .nanoseconds(1)
        )
      )
      try await withInProcessTransport(
        to: fleet,
        clock: ContinuousClock(),
        configuration: .testing(policy: .pickFirst, resilience: .testing(retry)),
        metrics: metrics
      ) { health, transport in
        await transport.waitForPickableEndpoints(2)
        let reply = try await health.check(.init())
        #expect(reply.status == .serving)
        try await body(transport)
      }
    }
  }

  @Test("A retried call: two attempts, each with its status and sizes; one call, one retry")
  func retriedCall() async throws {
    let metrics = TestMetrics()
    try await Self.callRetriedOnce(metrics: metrics) { transport in
      // The gauges, as a scrape (or the once-a-second sample) records them.
      transport.recordMetrics()
      for (state, count) in [("known", 2), ("pickable", 2), ("ejected", 0), ("half_open", 0)] {
        let gauge = try metrics.expectGauge("mesh.endpoints", [Self.target, ("state", state)])
        #expect(gauge.lastValue == Double(count), "\(state)")
      }
      #expect(try metrics.expectGauge("mesh.pending_calls", [Self.target]).lastValue == 0)
      let connections = try metrics.expectGauge("grpc.subchannel.open_connections", [Self.target])
      #expect(connections.lastValue == 2)
      #expect(try metrics.expectCounter("mesh.discovery.updates", [Self.target]).totalValue == 1)
      let updated = try metrics.expectGauge("mesh.discovery.last_success_timestamp", [Self.target])
      #expect((updated.lastValue ?? 0) > 1_700_000_000)
    }
    let (method, target) = (Self.method, Self.target)
    #expect(
      try metrics.expectCounter("grpc.client.attempt.started", [method, target]).totalValue == 2
    )
    for status in ["UNAVAILABLE", "OK"] {
      let attempt = try metrics.expectTimer(
        "grpc.client.attempt.duration",
        [method, target, Self.status(status)]
      )
      #expect(attempt.values.count == 1, "\(status)")
    }
    // The request is empty; the reply is SERVING: two bytes (field 1, varint 1).
    let sent = try metrics.expectRecorder(
      "grpc.client.attempt.sent_total_compressed_message_size",
      [method, target, Self.status("OK")]
    )
    #expect(sent.values == [0])
    let received = try metrics.expectRecorder(
      "grpc.client.attempt.rcvd_total_compressed_message_size",
      [method, target, Self.status("OK")]
    )
    #expect(received.values == [2])
    // One call, which succeeded.
    let calls = metrics.timers(label: "grpc.client.call.duration")
    #expect(calls.count == 1)
    let call = try metrics.expectTimer(
      "grpc.client.call.duration",
      [method, target, Self.status("OK")]
    )
    #expect(call.values.count == 1)
    #expect(try metrics.expectRecorder("grpc.client.call.retries", [method, target]).values == [1])
    #expect(
      try metrics.expectTimer("grpc.client.call.retry_delay", [method, target]).values.count == 1
    )
    // gRFC A96: no transparent retry or hedge, so nothing is recorded for them.
    #expect(
      try metrics.expectRecorder("grpc.client.call.transparent_retries", [method, target])
        .values.isEmpty
    )
    #expect(try metrics.expectRecorder("grpc.client.call.hedges", [method, target]).values.isEmpty)
  }

  @Test("A hedged call: one hedge; the losing attempt is CANCELLED")
  func hedgedCall() async throws {
    let metrics = TestMetrics()
    try await withInProcessFleet(["a", "b"]) { fleet in
      fleet.faults(of: "a").set(.hang)
      let hedging = MeshMethodPolicy(
        hedging: MeshHedgingPolicy(maxAttempts: 2, hedgingDelay: .milliseconds(1))
      )
      try await withInProcessTransport(
        to: fleet,
        clock: ContinuousClock(),
        configuration: .testing(policy: .pickFirst, resilience: .testing(hedging)),
        metrics: metrics
      ) { health, transport in
        await transport.waitForPickableEndpoints(2)
        _ = try await health.check(.init())
      }
    }
    let (method, target) = (Self.method, Self.target)
    #expect(try metrics.expectRecorder("grpc.client.call.hedges", [method, target]).values == [1])
    #expect(
      try metrics.expectCounter("grpc.client.attempt.started", [method, target]).totalValue == 2
    )
    for status in ["CANCELLED", "OK"] {
      let attempt = try metrics.expectTimer(
        "grpc.client.attempt.duration",
        [method, target, Self.status(status)]
      )
      #expect(attempt.values.count == 1, "\(status)")
    }
    #expect(
      try metrics.expectTimer("grpc.client.call.duration", [method, target, Self.status("OK")])
        .values.count == 1
    )
  }

  @Test("A call with no endpoint: a call duration, and no attempt")
  func callWithoutAttempt() async throws {
    let metrics = TestMetrics()
    try await withInProcessFleet(["a"]) { fleet in
      try await withInProcessTransport(
        to: fleet,
        discovery: MeshStaticDiscovery(["greeter": []]),
        clock: ContinuousClock(),
        configuration: .testing(),
        metrics: metrics
      ) { health, _ in
        await #expect(throws: RPCError.self) { _ = try await health.check(.init()) }
      }
    }
    let (method, target) = (Self.method, Self.target)
    #expect(
      try metrics.expectTimer(
        "grpc.client.call.duration",
        [method, target, Self.status("UNAVAILABLE")]
      ).values.count == 1
    )
    #expect(
      try metrics.expectCounter("grpc.client.attempt.started", [method, target]).totalValue == 0
    )
    #expect(metrics.timers(label: "grpc.client.attempt.duration").allSatisfy { $0.values.isEmpty })
  }

  @Test("Exported for Prometheus with OpenTelemetry's names and A66's buckets; promtool accepts it")
  func prometheusExposition() async throws {
    let prometheus = MeshPrometheusMetrics()
    try await Self.callRetriedOnce(metrics: prometheus.factory)
    let text = prometheus.exposition()
    let labels = #"grpc_method="grpc.health.v1.Health/Check",grpc_target="mesh:///greeter""#
    let expected = [
      "# HELP grpc_client_call_duration_seconds Time of a call as its caller sees it, all "
        + "attempts included.",
      "# TYPE grpc_client_call_duration_seconds histogram",
      #"grpc_client_call_duration_seconds_bucket{\#(labels),grpc_status="OK",le="100.0"} 1"#,
      #"grpc_client_call_duration_seconds_count{\#(labels),grpc_status="OK"} 1"#,
      #"grpc_client_attempt_duration_seconds_count{\#(labels),grpc_status="UNAVAILABLE"} 1"#,
      "# TYPE grpc_client_attempt_started_total counter",
      #"grpc_client_attempt_started_total{\#(labels)} 2"#,
      #"grpc_client_attempt_rcvd_total_compressed_message_size_bytes_bucket{\#(labels),grpc_status="OK",le="1024.0"} 1"#,
      #"grpc_client_call_retries_bucket{\#(labels),le="1.0"} 1"#,
    ]
    let lines = Set(text.split(separator: "\n").map(String.init))
    let missing = expected.filter { !lines.contains($0) }
    #expect(missing.isEmpty, "missing from the exposition: \(missing)")
    // Prometheus's own linter: names, types, HELP texts, histogram series.
    try #require(
      Promtool.isInstalled,
      "promtool is Debian's prometheus package (.ci/run installs it)"
    )
    let lint = try Promtool.run(["check", "metrics"], input: text)
    #expect(lint.status == 0, "\(lint.output)")
  }
}
