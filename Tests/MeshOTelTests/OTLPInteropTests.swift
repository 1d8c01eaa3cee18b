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

  import Foundation
  import GRPCCore
  import InMemoryLogging
  import InteropSupport
  import Logging
  import MeshClient
  import MeshCore
  import MeshDiscovery
  import MeshOTel
  import MeshServer
  import ServiceLifecycle
  import Testing
  import Tracing

  /// A reply of `otlp_collector.py` or `traced_client.py`.
  struct OTLPPeerReply: Decodable {
    var op: String
    var port: Int?
    var spans: [CollectedSpan]?
    var error: String?
    var trace_id: String?
    var span_id: String?
    var code: String?
    var details: String?
  }

  /// A span as the Python collector received it over OTLP.
  struct CollectedSpan: Decodable {
    var trace_id: String
    var span_id: String
    var parent_span_id: String
    var name: String
    var kind: String
    var service_name: String
    var status_code: String
    var status_message: String
    var events: [String]
    var attributes: [String: Attribute]

    enum Attribute: Decodable, Equatable {
      case string(String)
      case int(Int)
      case bool(Bool)
      case other

      init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
          self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
          self = .int(value)
        } else if let value = try? container.decode(String.self) {
          self = .string(value)
        } else {
          self = .other
        }
      }
    }
  }

  /// UTF-8 text messages.
  struct Text: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: String) throws -> Bytes {
      Bytes(Array(message.utf8))
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> String {
      serializedMessageBytes.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }
  }

  /// `test.Relay/Call`: answers with its name, after calling the next service (if any) through the
  /// mesh, and logs a line about the call.
  struct RelayService: RegistrableRPCService {
    static let method = MethodDescriptor(fullyQualifiedService: "test.Relay", method: "Call")
    let name: String
    let next: MeshGRPCClient?
    let logger: Logger

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
      router.registerHandler(
        forMethod: Self.method,
        deserializer: Text(),
        serializer: Text()
      ) { request, _ in
        var text = ""
        for try await message in request.messages { text += message }
        self.logger.info("Relaying", metadata: ["relay.name": "\(self.name)"])
        if let next = self.next { text += " " + (try await next.relay(text)) }
        return StreamingServerResponse(single: ServerResponse(message: "\(self.name)(\(text))"))
      }
    }
  }

  extension GRPCClient {
    func relay(_ text: String) async throws -> String {
      try await self.unary(
        request: ClientRequest(message: text),
        descriptor: RelayService.method,
        serializer: Text(),
        deserializer: Text(),
        options: .defaults
      ) { try $0.message }
    }
  }

  @Suite("OTLP export (MeshOTel) to a Python OpenTelemetry collector", .timeLimit(.minutes(2)))
  struct OTLPInteropTests {
    /// A tracing of `service` exporting to the collector on `port` every 50 ms.
    static func tracing(_ service: String, port: Int) throws -> MeshOTel.Tracing {
      try MeshOTel.tracing(
        MeshOTelConfiguration(
          serviceName: service,
          endpoint: "http://127.0.0.1:\(port)",
          exportInterval: .milliseconds(50),
          exportTimeout: .seconds(5)
        )
      )
    }

    /// A plaintext server of `services` on a free loopback port, traced by `tracer`.
    static func server(_ name: String, tracer: any Tracer) -> MeshServerConfiguration {
      var configuration = MeshServerConfiguration(serviceName: name, host: "127.0.0.1", port: 0)
      configuration.tracer = tracer
      configuration.drain = .init(delay: .zero, gracePeriod: .seconds(5))
      return configuration
    }

    /// A plaintext mesh client calling `target` on `port`, traced by `tracer`.
    static func client(_ target: String, port: Int, tracer: any Tracer) -> MeshClientConfiguration {
      var configuration = MeshClientConfiguration(
        discovery: MeshStaticDiscovery([
          target: [MeshEndpoint(id: "\(target)-0", host: "127.0.0.1", port: port)]
        ])
      )
      configuration.tracer = tracer
      return configuration
    }

    @Test(
      "A → B → C: every span at the collector, named as gRFC A72 names them, each the child of the one before; B's log line carries the trace"
    )
    func chain() async throws {
      let collector = try PythonPeer<OTLPPeerReply>(script: "otlp_collector.py", arguments: [])
      let listening = try await collector.next { $0.op == "listening" }
      let collectorPort = try #require(listening.port)
      let (a, b, c) = (
        try Self.tracing("service-a", port: collectorPort),
        try Self.tracing("service-b", port: collectorPort),
        try Self.tracing("service-c", port: collectorPort)
      )
      let logs = InMemoryLogHandler()
      var handler = logs
      handler.metadataProvider = MeshOTel.loggingMetadataProvider
      var logger = Logger(label: "relay", factory: { [handler] _ in handler })
      logger.logLevel = .info
      // The exporters stop last (a graceful shutdown exports what they hold).
      let exporters = ServiceGroup(
        configuration: ServiceGroupConfiguration(
          services: [
            .init(service: a.service), .init(service: b.service), .init(service: c.service),
          ],
          logger: Logger(label: "otel", factory: { _ in SwiftLogNoOpLogHandler() })
        )
      )
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await exporters.run() }
        let relay = RelayService(name: "C", next: nil, logger: logger)
        try await withMeshServer(Self.server("service-c", tracer: c.tracer), services: [relay]) {
          serverC in
          let portC = try await serverC.listeningPort
          try await withMeshClient(Self.client("service-c", port: portC, tracer: b.tracer)) {
            meshB in
            let relayB = RelayService(
              name: "B",
              next: try meshB.client(for: "service-c"),
              logger: logger
            )
            try await withMeshServer(Self.server("service-b", tracer: b.tracer), services: [relayB])
            {
              serverB in
              let portB = try await serverB.listeningPort
              try await withMeshClient(Self.client("service-b", port: portB, tracer: a.tracer)) {
                meshA in
                let reply = try await a.tracer.withSpan("request") { _ in
                  try await meshA.client(for: "service-b").relay("hi")
                }
                #expect(reply == "B(hi C(hi))")
              }
            }
          }
        }
        await exporters.triggerGracefulShutdown()
        try await group.waitForAll()
      }

      try collector.send(["cmd": "spans"])
      let all = try #require(try await collector.next { $0.op == "spans" }.spans)
      // The health streams the clients keep open are traced too; this test follows the call.
      let spans = all.filter { !$0.name.contains("grpc.health.v1") }
      func one(_ name: String, _ service: String) throws -> CollectedSpan {
        let found = spans.filter { $0.name == name && $0.service_name == service }
        try #require(
          found.count == 1,
          "\(name) of \(service): \(spans.map { "\($0.service_name) \($0.name)" })"
        )
        return found[0]
      }
      let request = try one("request", "service-a")
      let sentA = try one("Sent.test.Relay.Call", "service-a")
      let attemptA = try one("Attempt.test.Relay.Call", "service-a")
      let recvB = try one("Recv.test.Relay.Call", "service-b")
      let sentB = try one("Sent.test.Relay.Call", "service-b")
      let attemptB = try one("Attempt.test.Relay.Call", "service-b")
      let recvC = try one("Recv.test.Relay.Call", "service-c")
      let chain = [request, sentA, attemptA, recvB, sentB, attemptB, recvC]
      #expect(request.parent_span_id.isEmpty)
      for (parent, child) in zip(chain, chain.dropFirst()) {
        #expect(child.trace_id == request.trace_id, "\(child.name) of \(child.service_name)")
        #expect(
          child.parent_span_id == parent.span_id,
          "\(child.name) of \(child.service_name) is not the child of \(parent.name)"
        )
      }
      #expect([sentA, sentB].allSatisfy { $0.kind == "SPAN_KIND_CLIENT" })
      #expect([recvB, recvC].allSatisfy { $0.kind == "SPAN_KIND_SERVER" })
      for span in chain.dropFirst() {
        #expect(span.attributes["rpc.system"] == .string("grpc"))
        #expect(span.attributes["rpc.service"] == .string("test.Relay"))
        #expect(span.attributes["rpc.method"] == .string("Call"))
        #expect(span.attributes["rpc.grpc.status_code"] == .int(0))
        #expect(span.status_code == "STATUS_CODE_OK")
      }
      #expect(attemptA.attributes["previous-rpc-attempts"] == .int(0))
      #expect(attemptA.attributes["transparent-retry"] == .bool(false))
      #expect(attemptA.attributes["mesh.endpoint"] == .string("service-b-0"))
      #expect(attemptB.attributes["mesh.endpoint"] == .string("service-c-0"))

      // Log lines written while serving carry the trace: B's and C's, each under its own span.
      let lines = logs.entries.filter { $0.message.description == "Relaying" }
      try #require(lines.count == 2)
      for line in lines {
        #expect(line.metadata["trace_id"]?.description == request.trace_id)
      }
      let spanIDs = Set(lines.compactMap { $0.metadata["span_id"]?.description })
      #expect(spanIDs == [recvB.span_id, recvC.span_id])
      _ = try await collector.finish()
    }

    @Test(
      "A grpcio client with OpenTelemetry's W3C propagator starts a trace a MeshServer continues"
    )
    func grpcioContinued() async throws {
      let collector = try PythonPeer<OTLPPeerReply>(script: "otlp_collector.py", arguments: [])
      let collectorPort = try #require(try await collector.next { $0.op == "listening" }.port)
      let tracing = try Self.tracing("service-c", port: collectorPort)
      let exporter = ServiceGroup(
        configuration: ServiceGroupConfiguration(
          services: [.init(service: tracing.service)],
          logger: Logger(label: "otel", factory: { _ in SwiftLogNoOpLogHandler() })
        )
      )
      let relay = RelayService(
        name: "C",
        next: nil,
        logger: Logger(label: "c", factory: { _ in SwiftLogNoOpLogHandler() })
      )
      let client = try PythonPeer<OTLPPeerReply>(script: "traced_client.py", arguments: [])
      _ = try await client.next { $0.op == "ready" }
      let call = try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await exporter.run() }
        let call = try await withMeshServer(
          Self.server("service-c", tracer: tracing.tracer),
          services: [relay]
        ) { server in
          let port = try await server.listeningPort
          try client.send([
            "cmd": "call", "target": "127.0.0.1:\(port)", "method": "/test.Relay/Call",
            "request_hex": Data("hi".utf8).map { String(format: "%02x", $0) }.joined(),
          ])
          return try await client.next { $0.op == "call" }
        }
        await exporter.triggerGracefulShutdown()
        try await group.waitForAll()
        return call
      }
      #expect(call.code == "OK", "\(call.details ?? "")")
      try collector.send(["cmd": "spans"])
      let spans = try #require(try await collector.next { $0.op == "spans" }.spans)
      let received = try #require(spans.first { $0.name == "Recv.test.Relay.Call" })
      #expect(received.trace_id == call.trace_id)
      #expect(received.parent_span_id == call.span_id)
      #expect(received.service_name == "service-c")
      _ = try await client.finish()
      _ = try await collector.finish()
    }

    @Test(
      "Bad settings and environment variables are refused with the field named, never trapped on",
      arguments: [
        ("OTEL_PROPAGATORS", "tracecontext,baggage"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector"),
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "-5"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "9223372036854775807"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
      ]
    )
    func badEnvironment(key: String, value: String) {
      #expect(throws: MeshOTelError(field: key, message: "")) {
        do throws(MeshOTelError) {
          try MeshOTel.checkEnvironment([key: value])
        } catch {
          throw MeshOTelError(field: error.field, message: "")
        }
      }
    }

    @Test(
      "Variables swift-otel reads correctly pass: the traces' own protocol wins, none turns it off"
    )
    func goodEnvironment() throws {
      try MeshOTel.checkEnvironment([
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_PROPAGATORS": "tracecontext",
      ])
    }

    @Test(
      "Bad configurations are refused with the field named",
      arguments: [
        (MeshOTelConfiguration(serviceName: ""), "serviceName"),
        (MeshOTelConfiguration(serviceName: "a", endpoint: "localhost:4317"), "endpoint"),
        (MeshOTelConfiguration(serviceName: "a", endpoint: "grpc://localhost:4317"), "endpoint"),
        (MeshOTelConfiguration(serviceName: "a", endpoint: "http://localhost"), "endpoint"),
        (MeshOTelConfiguration(serviceName: "a", endpoint: "http://300.1.1.1:4317"), "endpoint"),
        (MeshOTelConfiguration(serviceName: "a", endpoint: "http://localhost:70000"), "endpoint"),
        (MeshOTelConfiguration(serviceName: "a", exportInterval: .zero), "exportInterval"),
        (MeshOTelConfiguration(serviceName: "a", exportTimeout: .seconds(7_200)), "exportTimeout"),
        (MeshOTelConfiguration(serviceName: "a", samplingRatio: 1.5), "samplingRatio"),
        (MeshOTelConfiguration(serviceName: "a", samplingRatio: .nan), "samplingRatio"),
      ]
    )
    func badConfiguration(configuration: MeshOTelConfiguration, field: String) {
      #expect(throws: MeshOTelError.self) { try configuration.validate() }
      do {
        try configuration.validate()
      } catch {
        #expect(error.field == field)
      }
    }
  }
#endif
