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

internal import CoreMetrics
internal import MeshTransport
public import Prometheus

/// The mesh's metrics for Prometheus: a swift-metrics factory over a swift-prometheus registry
/// that names every instrument as OpenTelemetry's Prometheus exporter does
/// (`grpc.client.call.duration` is `grpc_client_call_duration_seconds`, labelled `grpc_method`,
/// `grpc_target`, `grpc_status`) with gRPC's bucket boundaries (gRFC A66, A96), and the text
/// exposition Prometheus scrapes.
///
/// ```swift
/// let prometheus = MeshPrometheusMetrics()
/// MetricsSystem.bootstrap(prometheus.factory)      // or pass it as `metrics:` in a configuration
/// // GET /metrics answers prometheus.exposition() with MeshPrometheusMetrics.contentType
/// ```
public struct MeshPrometheusMetrics: Sendable {
  /// The registry the instruments live in.
  public let registry: PrometheusCollectorRegistry
  /// The factory to record through.
  public let factory: PrometheusMetricsFactory

  /// The content type of ``exposition()``: Prometheus's text format 0.0.4.
  public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

  public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
    self.registry = registry
    var factory = PrometheusMetricsFactory(registry: registry)
    for (name, instrument) in MeshMetricNames.instruments where instrument.kind == .histogram {
      let exported = MeshMetricNames.prometheusName(name)
      if instrument.unit == "s" {
        factory.durationHistogramBuckets[exported] = instrument.buckets.map { .seconds($0) }
      } else {
        factory.valueHistogramBuckets[exported] = instrument.buckets
      }
    }
    factory.nameAndLabelSanitizer = { name, labels in
      (
        MeshMetricNames.prometheusName(name),
        labels.map { (MeshMetricNames.prometheusLabel($0.0), $0.1) }
      )
    }
    self.factory = factory
  }

  /// Every metric in Prometheus's text format, with a HELP line for each of the mesh's.
  public func exposition() -> String {
    let text = self.registry.emitToString()
    var result = ""
    result.reserveCapacity(text.utf8.count + 64 * Self.help.count)
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      if line.hasPrefix("# TYPE ") {
        let name = line.dropFirst("# TYPE ".count).prefix { $0 != " " }
        if let help = Self.help[String(name)] {
          result += "# HELP \(name) \(help)\n"
        }
      }
      result += line
      result += "\n"
    }
    // The split adds a line after the text's final newline.
    if result.hasSuffix("\n\n") { result.removeLast() }
    return result
  }

  /// HELP texts by exported name.
  private static let help: [String: String] = Dictionary(
    uniqueKeysWithValues: MeshMetricNames.instruments.map {
      (MeshMetricNames.prometheusName($0.key), $0.value.description)
    }
  )
}
