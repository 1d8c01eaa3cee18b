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

#if OTLP

  internal import Foundation
  public import Logging
  internal import MeshCore
  internal import OTel
  public import ServiceLifecycle
  public import Tracing

  /// Exports the mesh's spans over OTLP/gRPC with swift-otel, to an OpenTelemetry collector or
  /// anything that takes OTLP (Jaeger does), and puts trace and span IDs in log lines.
  ///
  /// ```swift
  /// let tracing = try MeshOTel.tracing(MeshOTelConfiguration(serviceName: "checkout"))
  /// var client = try MeshClientConfiguration.fromEnvironment()
  /// client.tracer = tracing.tracer
  /// var server = try MeshServerConfiguration.fromEnvironment()
  /// server.tracer = tracing.tracer
  /// // Run tracing.service (a swift-service-lifecycle Service) first in the service group, so that
  /// // it stops last and exports every span:
  /// let group = ServiceGroup(services: [tracing.service, server, client], logger: logger)
  /// ```
  ///
  /// Nothing global is bootstrapped: the tracer is passed to the clients and servers that use it.
  public enum MeshOTel {
    /// A tracer and the service that exports what it records.
    public struct Tracing: Sendable {
      /// Pass to `MeshClientConfiguration.tracer` and `MeshServerConfiguration.tracer` (or
      /// bootstrap `InstrumentationSystem` with it).
      public let tracer: any Tracer
      /// Exports the spans while it runs; its graceful shutdown exports the last ones (cancelling
      /// it loses them).
      public let service: any Service
    }

    /// The tracer `configuration` describes, exporting over OTLP/gRPC. OpenTelemetry's
    /// environment variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`,
    /// `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`, …) override it, as the OpenTelemetry SDKs
    /// read them; with `OTEL_SDK_DISABLED=true` the tracer records nothing.
    ///
    /// - Throws: ``MeshOTelError`` for a bad setting or environment variable (one that swift-otel
    ///   would stop the process over is refused here first).
    public static func tracing(
      _ configuration: MeshOTelConfiguration,
      logger: Logger = Logger(label: "mesh.otel", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws(MeshOTelError) -> Tracing {
      try configuration.validate()
      // swift-otel reads the process's environment itself.
      let environment = ProcessInfo.processInfo.environment
      try Self.checkEnvironment(environment)
      if environment["OTEL_SDK_DISABLED"]?.lowercased() == "true"
        || environment["OTEL_TRACES_EXPORTER"] == "none"
      {
        return Tracing(tracer: NoOpTracer(), service: MeshOTelIdleService())
      }
      var otel = OTel.Configuration.default
      otel.serviceName = configuration.serviceName
      otel.resourceAttributes = configuration.resourceAttributes
      otel.diagnosticLogger = .custom(logger)
      otel.logs.enabled = false
      otel.metrics.enabled = false
      otel.propagators = [.traceContext]
      otel.traces.exporter = .otlp
      otel.traces.otlpExporter.protocol = .grpc
      otel.traces.otlpExporter.endpoint = configuration.endpoint
      otel.traces.otlpExporter.timeout = configuration.exportTimeout
      otel.traces.batchSpanProcessor.scheduleDelay = configuration.exportInterval
      otel.traces.batchSpanProcessor.exportTimeout = configuration.exportTimeout
      if let ratio = configuration.samplingRatio {
        // Nil only for a ratio outside 0...1, which validate() refused.
        otel.traces.sampler = .parentBasedTraceIDRatio(ratio: ratio) ?? .parentBasedAlwaysOn
      }
      do {
        let backend = try OTel.makeTracingBackend(configuration: otel)
        return Tracing(tracer: backend.factory, service: backend.service)
      } catch {
        throw MeshOTelError(
          field: "configuration",
          message: "swift-otel refused the configuration: \(error)"
        )
      }
    }

    /// A metadata provider that adds `trace_id` and `span_id` (and `trace_flags`) of the current
    /// span to every log line: give it to `LoggingSystem.bootstrap(_:metadataProvider:)` or a
    /// logger, and the mesh's lines about a call carry its trace.
    public static var loggingMetadataProvider: Logger.MetadataProvider {
      OTel.makeLoggingMetadataProvider()
    }

    /// The environment variables swift-otel would stop the process over (or silently misread),
    /// refused with a clear error: propagators other than W3C trace context, OTLP over HTTP (this
    /// product exports over gRPC only), samplers it cannot build, exporters other than OTLP.
    package static func checkEnvironment(_ environment: [String: String]) throws(MeshOTelError) {
      for key in ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"] {
        if let text = environment[key] {
          try MeshOTelConfiguration.checkEndpoint(text, field: key)
        }
      }
      func integer(_ key: String, in range: ClosedRange<Int64>) throws(MeshOTelError) -> Int64? {
        guard let text = environment[key] else { return nil }
        do {
          return try MeshInput.integer(text, field: key, in: range)
        } catch {
          throw MeshOTelError(field: key, message: error.message)
        }
      }
      // Milliseconds: more than 0 (a zero delay spins a core), at most an hour.
      for key in [
        "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
      ] {
        _ = try integer(key, in: 1...3_600_000)
      }
      // The queue is allocated up front; a batch of 0 never empties it.
      let queue = try integer("OTEL_BSP_MAX_QUEUE_SIZE", in: 1...1_048_576) ?? 2_048
      _ = try integer("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", in: 1...queue)
      if let text = environment["OTEL_TRACES_SAMPLER_ARG"] {
        guard let ratio = Double(text), (0...1).contains(ratio) else {
          throw MeshOTelError(
            field: "OTEL_TRACES_SAMPLER_ARG",
            message: "must be a ratio from 0 to 1, not \(MeshInput.quoted(text))"
          )
        }
      }
      if let text = environment["OTEL_PROPAGATORS"] {
        for name in text.split(separator: ",") where !["tracecontext", "none"].contains(name) {
          throw MeshOTelError(
            field: "OTEL_PROPAGATORS",
            message: "only tracecontext (W3C) is supported, not \(MeshInput.quoted(name))"
          )
        }
      }
      // The traces' own protocol wins over the shared one.
      let protocolKey =
        environment["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] != nil
        ? "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" : "OTEL_EXPORTER_OTLP_PROTOCOL"
      if let text = environment[protocolKey], text != "grpc" {
        throw MeshOTelError(
          field: protocolKey,
          message:
            "MeshOTel exports over OTLP/gRPC only: must be grpc, not \(MeshInput.quoted(text))"
        )
      }
      let samplers = [
        "always_on", "always_off", "traceidratio", "parentbased_always_on",
        "parentbased_always_off", "parentbased_traceidratio",
      ]
      if let text = environment["OTEL_TRACES_SAMPLER"], !samplers.contains(text) {
        throw MeshOTelError(
          field: "OTEL_TRACES_SAMPLER",
          message:
            "must be one of \(samplers.joined(separator: ", ")), not \(MeshInput.quoted(text))"
        )
      }
      if let text = environment["OTEL_TRACES_EXPORTER"], text != "otlp", text != "none" {
        throw MeshOTelError(
          field: "OTEL_TRACES_EXPORTER",
          message: "must be otlp or none, not \(MeshInput.quoted(text))"
        )
      }
    }
  }

  /// What runs in place of the exporter when the SDK is disabled: nothing, until shutdown.
  struct MeshOTelIdleService: Service {
    func run() async throws {
      try await gracefulShutdown()
    }
  }
#endif
