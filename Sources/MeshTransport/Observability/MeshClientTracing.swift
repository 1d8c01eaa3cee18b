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
internal import MeshCore
internal import MeshDiscovery
package import Tracing

/// One call's client spans, as gRFC A72 names them: the call, `Sent.<service>.<method>` (a
/// client span, child of the caller's context), and each attempt,
/// `Attempt.<service>.<method>` (its child), with OpenTelemetry's RPC attributes, A72's
/// `previous-rpc-attempts` and `transparent-retry`, and the endpoint chosen. The call's span
/// carries the retries, hedges and refusals as events; an attempt's span, the ejection its
/// failure caused. Each attempt's context goes to its server in the request metadata (W3C
/// `traceparent`/`tracestate` with OpenTelemetry's tracer).
package final class MeshCallTrace: Sendable {
  let tracer: any Tracer
  let span: any Span
  private let service: String
  private let method: String
  private let ended = MeshMutex(false)

  init(tracer: any Tracer, descriptor: MethodDescriptor, target: String) {
    self.tracer = tracer
    self.service = descriptor.service.fullyQualifiedService
    self.method = descriptor.method
    let span = tracer.startSpan(
      "Sent.\(self.service).\(self.method)",
      context: ServiceContext.current ?? .topLevel,
      ofKind: .client
    )
    self.span = span
    // A span the sampler dropped records nothing: its attributes are not even made.
    guard span.isRecording else { return }
    span.attributes["rpc.system"] = "grpc"
    span.attributes["rpc.service"] = self.service
    span.attributes["rpc.method"] = self.method
    span.attributes["server.address"] = target
  }

  /// The span of attempt `number` (0 first) on `endpoint`; `transparent` when it follows an
  /// attempt whose stream never opened (gRFC A6's transparent retry).
  func startAttempt(number: Int, transparent: Bool, endpoint: MeshEndpoint) -> any Span {
    let span = self.tracer.startSpan(
      "Attempt.\(self.service).\(self.method)",
      context: self.span.context,
      ofKind: .internal
    )
    guard span.isRecording else { return span }
    span.attributes["rpc.system"] = "grpc"
    span.attributes["rpc.service"] = self.service
    span.attributes["rpc.method"] = self.method
    span.attributes["previous-rpc-attempts"] = number
    span.attributes["transparent-retry"] = transparent
    span.attributes["server.address"] = endpoint.host
    span.attributes["server.port"] = endpoint.port
    span.attributes["network.peer.address"] = endpoint.host
    span.attributes["network.peer.port"] = endpoint.port
    span.attributes["mesh.endpoint"] = endpoint.id
    if let zone = endpoint.zone { span.attributes["mesh.zone"] = zone }
    return span
  }

  /// An event of the call: a retry, a hedge, a refusal.
  func event(_ name: String, _ attributes: @autoclosure () -> SpanAttributes = [:]) {
    guard self.span.isRecording else { return }
    self.span.addEvent(SpanEvent(name: name, attributes: attributes()))
  }

  /// Ends the call's span once, with the status its caller read.
  func end(_ code: Status.Code, message: String) {
    let first = self.ended.withLock { ended -> Bool in
      defer { ended = true }
      return !ended
    }
    guard first else { return }
    Self.finish(self.span, code: code, message: message)
  }

  /// Sets a span's gRPC status (A72: OK, or ERROR with the code's name and the message) and ends
  /// it: the client's spans and the server's (`MeshServerTracingInterceptor`).
  package static func finish(_ span: any Span, code: Status.Code, message: String) {
    guard span.isRecording else {
      span.end()
      return
    }
    span.attributes["rpc.grpc.status_code"] = Int(code.rawValue)
    if code == .ok {
      span.setStatus(SpanStatus(code: .ok))
    } else {
      let name = meshStatusName(code)
      span.setStatus(
        SpanStatus(code: .error, message: message.isEmpty ? name : "\(name), \(message)")
      )
    }
    span.end()
  }
}

/// Writes trace context into gRPC metadata.
struct MeshMetadataInjector: Injector {
  func inject(_ value: String, forKey key: String, into carrier: inout Metadata) {
    carrier.replaceOrAddString(value, forKey: key)
  }
}
