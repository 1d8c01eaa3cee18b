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

package import GRPCCore

/// The names of the mesh's instruments: gRPC's own (gRFC A66, A91, A94, A96) and the mesh's,
/// in OpenTelemetry's dotted form. A Prometheus backend shows them as OpenTelemetry does
/// (`grpc.client.call.duration`, in seconds: `grpc_client_call_duration_seconds`).
public enum MeshMetricNames {
  // gRFC A66: per call and per attempt.
  public static let clientAttemptStarted = "grpc.client.attempt.started"
  public static let clientAttemptDuration = "grpc.client.attempt.duration"
  public static let clientAttemptSentSize = "grpc.client.attempt.sent_total_compressed_message_size"
  public static let clientAttemptReceivedSize =
    "grpc.client.attempt.rcvd_total_compressed_message_size"
  public static let clientCallDuration = "grpc.client.call.duration"
  public static let serverCallStarted = "grpc.server.call.started"
  public static let serverCallDuration = "grpc.server.call.duration"
  public static let serverCallSentSize = "grpc.server.call.sent_total_compressed_message_size"
  public static let serverCallReceivedSize = "grpc.server.call.rcvd_total_compressed_message_size"
  // gRFC A96: retries, transparent retries and hedges per call, and the time spent between
  // attempts.
  public static let clientCallRetries = "grpc.client.call.retries"
  public static let clientCallTransparentRetries = "grpc.client.call.transparent_retries"
  public static let clientCallHedges = "grpc.client.call.hedges"
  public static let clientCallRetryDelay = "grpc.client.call.retry_delay"
  // gRFC A91: outlier detection.
  public static let ejectionsEnforced = "grpc.lb.outlier_detection.ejections_enforced"

  // gRFC A94: connections.
  public static let openConnections = "grpc.subchannel.open_connections"
  // The mesh's own, per target.
  public static let endpoints = "mesh.endpoints"
  public static let pendingCalls = "mesh.pending_calls"
  public static let breakerRejections = "mesh.circuit_breaker.rejections"
  public static let budgetRefusals = "mesh.retry_budget.refusals"
  public static let discoveryUpdates = "mesh.discovery.updates"
  public static let discoveryErrors = "mesh.discovery.errors"
  public static let discoveryLastSuccess = "mesh.discovery.last_success_timestamp"
  // The mesh's own, per process.
  public static let certificateExpiration = "mesh.certificate.expiration_timestamp"
  public static let healthServing = "mesh.server.health.serving"
  public static let authorizationDecisions = "mesh.server.authorization.decisions"

  // Labels.
  public static let method = "grpc.method"
  public static let target = "grpc.target"
  public static let status = "grpc.status"
  public static let detectionMethod = "grpc.lb.outlier_detection.detection_method"
  /// An endpoint's state in ``endpoints``: `known`, `pickable`, `ejected`, `half_open`.
  public static let state = "state"
  /// A circuit breaker in ``breakerRejections``: `max_connections`, `max_pending_requests`,
  /// `max_requests`, `max_retries`, `retry_budget`.
  public static let breaker = "breaker"
  /// This process's identity in ``certificateExpiration`` (its SPIFFE ID or DNS name).
  public static let identity = "identity"
  /// A served service's name in ``healthServing`` (`""` is the whole server).
  public static let service = "grpc.service"
  /// An authorization outcome in ``authorizationDecisions``: `allow`, `deny`, `unauthenticated`,
  /// `unavailable` (Consul's intentions not loaded yet).
  public static let decision = "decision"

  /// How an instrument is exported: its kind and unit (UCUM, as OpenTelemetry writes it).
  public struct Instrument: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
      case counter
      case histogram
      case gauge
    }

    public var kind: Kind
    public var unit: String
    /// The bucket bounds of a histogram, in its unit.
    public var buckets: [Double]
    /// What it measures (Prometheus's HELP).
    public var description: String
  }

  /// gRFC A66's latency buckets, in seconds.
  public static let latencyBuckets: [Double] = [
    0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005,
    0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13,
    0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1, 2, 5, 10, 20, 50, 100,
  ]
  /// gRFC A66's size buckets, in bytes.
  public static let sizeBuckets: [Double] = [
    0, 1024, 2048, 4096, 16384, 65536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864,
    268_435_456, 1_073_741_824, 4_294_967_296,
  ]
  /// gRFC A96's buckets of retries and hedges, and of transparent retries.
  public static let retryBuckets: [Double] = [1, 2, 3, 4, 5]
  public static let transparentRetryBuckets: [Double] = [1, 2, 3, 4, 5, 10]

  /// Every instrument the mesh records, by name.
  public static let instruments: [String: Instrument] = [
    clientAttemptStarted: Instrument(
      kind: .counter,
      unit: "{attempt}",
      buckets: [],
      description: "Attempts started, retries and hedges included."
    ),
    clientAttemptDuration: Instrument(
      kind: .histogram,
      unit: "s",
      buckets: latencyBuckets,
      description: "Time of an attempt on its endpoint, from its stream to the end of its response."
    ),
    clientAttemptSentSize: Instrument(
      kind: .histogram,
      unit: "By",
      buckets: sizeBuckets,
      description: "Message bytes an attempt sent."
    ),
    clientAttemptReceivedSize: Instrument(
      kind: .histogram,
      unit: "By",
      buckets: sizeBuckets,
      description: "Message bytes an attempt received."
    ),
    clientCallDuration: Instrument(
      kind: .histogram,
      unit: "s",
      buckets: latencyBuckets,
      description: "Time of a call as its caller sees it, all attempts included."
    ),
    serverCallStarted: Instrument(
      kind: .counter,
      unit: "{call}",
      buckets: [],
      description: "Calls a server started, denied ones included."
    ),
    serverCallDuration: Instrument(
      kind: .histogram,
      unit: "s",
      buckets: latencyBuckets,
      description: "Time of a call on the server, from its headers to its status."
    ),
    serverCallSentSize: Instrument(
      kind: .histogram,
      unit: "By",
      buckets: sizeBuckets,
      description: "Message bytes a server sent in a call."
    ),
    serverCallReceivedSize: Instrument(
      kind: .histogram,
      unit: "By",
      buckets: sizeBuckets,
      description: "Message bytes a server received in a call."
    ),
    clientCallRetries: Instrument(
      kind: .histogram,
      unit: "{retry}",
      buckets: retryBuckets,
      description: "Retries of a call that had any."
    ),
    clientCallTransparentRetries: Instrument(
      kind: .histogram,
      unit: "{transparent_retry}",
      buckets: transparentRetryBuckets,
      description:
        "Transparent retries (attempts whose stream never opened) of a call that had any."
    ),
    clientCallHedges: Instrument(
      kind: .histogram,
      unit: "{hedge}",
      buckets: retryBuckets,
      description: "Hedged attempts of a call that had any."
    ),
    clientCallRetryDelay: Instrument(
      kind: .histogram,
      unit: "s",
      buckets: latencyBuckets,
      description: "Time a retried call spent between attempts."
    ),
    ejectionsEnforced: Instrument(
      kind: .counter,
      unit: "{ejection}",
      buckets: [],
      description: "Endpoints ejected by outlier detection."
    ),
    openConnections: Instrument(
      kind: .gauge,
      unit: "{connection}",
      buckets: [],
      description: "Connections open to a target's endpoints."
    ),
    endpoints: Instrument(
      kind: .gauge,
      unit: "{endpoint}",
      buckets: [],
      description:
        "A target's endpoints by state: known (from discovery), pickable, ejected, half_open."
    ),
    pendingCalls: Instrument(
      kind: .gauge,
      unit: "{call}",
      buckets: [],
      description: "Calls waiting for a pickable endpoint."
    ),
    breakerRejections: Instrument(
      kind: .counter,
      unit: "{call}",
      buckets: [],
      description: "Calls and retries a circuit breaker failed fast, by breaker."
    ),
    budgetRefusals: Instrument(
      kind: .counter,
      unit: "{retry}",
      buckets: [],
      description: "Retries the retry budget refused."
    ),
    discoveryUpdates: Instrument(
      kind: .counter,
      unit: "{update}",
      buckets: [],
      description: "Endpoint sets discovery delivered."
    ),
    discoveryErrors: Instrument(
      kind: .counter,
      unit: "{error}",
      buckets: [],
      description: "Failed discovery watches (the last endpoints stay in use)."
    ),
    certificateExpiration: Instrument(
      kind: .gauge,
      unit: "s",
      buckets: [],
      description: "When this process's certificate expires (Unix time), by identity."
    ),
    healthServing: Instrument(
      kind: .gauge,
      unit: "{status}",
      buckets: [],
      description: "1 while the health servicer reports the service SERVING, else 0."
    ),
    authorizationDecisions: Instrument(
      kind: .counter,
      unit: "{call}",
      buckets: [],
      description: "Calls authorization decided, by method and decision."
    ),
    discoveryLastSuccess: Instrument(
      kind: .gauge,
      unit: "s",
      buckets: [],
      description:
        "When discovery last answered without an error (Unix time; sampled each second while it "
        + "does); its age is time() minus it."
    ),
  ]

  /// The name Prometheus shows for an instrument, as OpenTelemetry's Prometheus exporter writes
  /// it: dots become underscores, the unit is a suffix (`_seconds`, `_bytes`; annotations in
  /// braces are dropped), and counters end in `_total`. A name the mesh does not record (an
  /// application's own) only has its dots replaced.
  public static func prometheusName(_ name: String) -> String {
    var result = name.replacingDots()
    guard let instrument = Self.instruments[name] else { return result }
    switch instrument.unit {
    case "s": result += "_seconds"
    case "By": result += "_bytes"
    default: ()
    }
    if instrument.kind == .counter { result += "_total" }
    return result
  }

  /// A label's name as Prometheus shows it (`grpc.method`: `grpc_method`).
  public static func prometheusLabel(_ name: String) -> String {
    name.replacingDots()
  }
}

extension String {
  fileprivate func replacingDots() -> String {
    String(self.map { $0 == "." ? "_" : $0 })
  }
}

/// A status code's canonical name, as gRPC's metrics and traces write it (`OK`,
/// `DEADLINE_EXCEEDED`).
package func meshStatusName(_ code: Status.Code) -> String {
  switch code {
  case .ok: "OK"
  case .cancelled: "CANCELLED"
  case .unknown: "UNKNOWN"
  case .invalidArgument: "INVALID_ARGUMENT"
  case .deadlineExceeded: "DEADLINE_EXCEEDED"
  case .notFound: "NOT_FOUND"
  case .alreadyExists: "ALREADY_EXISTS"
  case .permissionDenied: "PERMISSION_DENIED"
  case .resourceExhausted: "RESOURCE_EXHAUSTED"
  case .failedPrecondition: "FAILED_PRECONDITION"
  case .aborted: "ABORTED"
  case .outOfRange: "OUT_OF_RANGE"
  case .unimplemented: "UNIMPLEMENTED"
  case .internalError: "INTERNAL"
  case .unavailable: "UNAVAILABLE"
  case .dataLoss: "DATA_LOSS"
  case .unauthenticated: "UNAUTHENTICATED"
  default: "UNKNOWN"
  }
}
