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

public import GRPCCore
internal import MeshCore
internal import MeshTransport
public import Tracing

/// Continues the caller's trace on the server: reads W3C `traceparent`/`tracestate` (or whatever
/// the tracer propagates) from the call's metadata and records the call as a server span named
/// as gRFC A72 names it, `Recv.<service>.<method>`, with OpenTelemetry's RPC attributes
/// (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, `network.peer.address`,
/// `network.peer.port`). The handler runs with the span as its `ServiceContext`, so its own
/// calls (through the mesh client) and its log lines carry the trace.
///
/// The span ends when the call's response ends, streaming responses included; a call whose
/// response grpc-swift never produced (the client went away) ends it CANCELLED.
public struct MeshServerTracingInterceptor: ServerInterceptor {
  private let tracer: any Tracer

  /// Traces with `tracer`; by default swift-distributed-tracing's bootstrapped one.
  public init(tracer: any Tracer = InstrumentationSystem.tracer) {
    self.tracer = tracer
  }

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    // The health service's calls are probes (Consul's checks, clients' Watch streams that last
    // as long as their connections): not traced.
    if context.descriptor.service.fullyQualifiedService == "grpc.health.v1.Health" {
      return try await next(request, context)
    }
    var parent = ServiceContext.current ?? .topLevel
    self.tracer.extract(request.metadata, into: &parent, using: MeshMetadataExtractor())
    let descriptor = context.descriptor
    let span = self.tracer.startSpan(
      "Recv.\(descriptor.service.fullyQualifiedService).\(descriptor.method)",
      context: parent,
      ofKind: .server
    )
    span.attributes["rpc.system"] = "grpc"
    span.attributes["rpc.service"] = descriptor.service.fullyQualifiedService
    span.attributes["rpc.method"] = descriptor.method
    if let (address, port) = Self.peer(context.remotePeer) {
      span.attributes["network.peer.address"] = address
      if let port { span.attributes["network.peer.port"] = port }
    }
    let end = MeshServedCallEnd(cancellation: context.cancellation) { code, error in
      if code != .ok, let error { span.recordError(error) }
      MeshCallTrace.finish(
        span,
        code: code,
        message: error.map { ($0 as? RPCError)?.message ?? "\($0)" } ?? ""
      )
    }
    return try await end.observe(within: span.context) { try await next(request, context) }
  }

  /// The address and port in grpc-swift's peer text (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`,
  /// `unix:/path`).
  static func peer(_ text: String) -> (String, Int?)? {
    guard let colon = text.firstIndex(of: ":") else { return nil }
    let kind = text[..<colon]
    let rest = text[text.index(after: colon)...]
    switch kind {
    case "ipv4":
      guard let last = rest.lastIndex(of: ":") else { return (String(rest), nil) }
      return (String(rest[..<last]), Int(rest[rest.index(after: last)...]))
    case "ipv6":
      guard rest.hasPrefix("["), let close = rest.lastIndex(of: "]") else {
        return (String(rest), nil)
      }
      let address = String(rest[rest.index(after: rest.startIndex)..<close])
      let after = rest[rest.index(after: close)...]
      return (address, after.hasPrefix(":") ? Int(after.dropFirst()) : nil)
    case "unix":
      return (String(rest), nil)
    default:
      return nil
    }
  }
}

/// Reads trace context from gRPC metadata.
struct MeshMetadataExtractor: Extractor {
  func extract(key: String, from carrier: Metadata) -> String? {
    for value in carrier[stringValues: key] { return value }
    return nil
  }
}
