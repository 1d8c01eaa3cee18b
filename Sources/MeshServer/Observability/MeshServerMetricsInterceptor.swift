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

public import CoreMetrics
public import GRPCCore
internal import MeshCore
internal import MeshTransport

/// gRFC A66's server call instruments, through swift-metrics (the backend is the caller's):
///
/// | Instrument | Kind | Dimensions |
/// | --- | --- | --- |
/// | `grpc.server.call.started` | counter | `grpc.method` |
/// | `grpc.server.call.duration` | timer (seconds) | `grpc.method`, `grpc.status` |
///
/// `grpc.method` is `package.Service/Method`. Only registered methods reach an interceptor (grpc-swift
/// answers others UNIMPLEMENTED before any runs), so cardinality is bounded by the server's
/// services, and calls to unknown methods are not counted. `grpc.status` is the code's canonical
/// name (`OK`, `PERMISSION_DENIED`, ...); an error that is not an `RPCError` is `CANCELLED` when the
/// RPC was cancelled, else `UNKNOWN`, as grpc-swift answers it. The duration runs from the call
/// reaching the interceptor to its handler returning (for a streaming response, its last message
/// written); a call whose response is never produced (the client went away first) is recorded,
/// once, as `CANCELLED` when the executor lets it go. A MeshServer puts it outermost, so calls its
/// authorization denies are counted too.
public struct MeshServerMetricsInterceptor: ServerInterceptor {
  private let instruments: Instruments

  /// Instruments from `factory`; by default swift-metrics' bootstrapped (or task-local) one.
  /// `methods`, the server's, get their counters made at once; others on their first call.
  public init(
    factory: any MetricsFactory = MetricsSystem.factory,
    methods: [MethodDescriptor] = []
  ) {
    self.instruments = Instruments(factory: factory, methods: methods)
  }

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    let method = self.instruments.method(context.descriptor)
    method.started.increment()
    let start = ContinuousClock.now
    let instruments = self.instruments
    let end = MeshServedCallEnd(cancellation: context.cancellation) { code, _ in
      instruments.duration(method, code)
        .recordNanoseconds(MeshInput.nanoseconds(clamping: start.duration(to: .now)))
    }
    return try await end.observe { try await next(request, context) }
  }

  /// The instruments: each method's counter and its timers by status, made once and kept.
  private final class Instruments: Sendable {
    /// One method's instruments.
    final class Method: Sendable {
      let name: String
      let started: Counter
      let durations = MeshMutex<[Status.Code: Timer]>([:])

      init(name: String, factory: any MetricsFactory) {
        self.name = name
        self.started = Counter(
          label: MeshMetricNames.serverCallStarted,
          dimensions: [(MeshMetricNames.method, name)],
          factory: factory
        )
      }
    }

    private let factory: any MetricsFactory
    /// The server's methods, made at once: looked up without a lock.
    private let known: [MethodDescriptor: Method]
    /// Methods the server did not name up front.
    private let others = MeshMutex<[MethodDescriptor: Method]>([:])

    init(factory: any MetricsFactory, methods: [MethodDescriptor]) {
      self.factory = factory
      var known: [MethodDescriptor: Method] = [:]
      for method in methods {
        known[method] = Method(name: method.fullyQualifiedMethod, factory: factory)
      }
      self.known = known
    }

    func method(_ descriptor: MethodDescriptor) -> Method {
      if let method = self.known[descriptor] { return method }
      return self.others.withLock { others in
        if let method = others[descriptor] { return method }
        let method = Method(name: descriptor.fullyQualifiedMethod, factory: self.factory)
        others[descriptor] = method
        return method
      }
    }

    func duration(_ method: Method, _ code: Status.Code) -> Timer {
      method.durations.value(for: code) {
        Timer(
          label: MeshMetricNames.serverCallDuration,
          dimensions: [
            (MeshMetricNames.method, method.name), (MeshMetricNames.status, meshStatusName(code)),
          ],
          preferredDisplayUnit: .seconds,
          factory: self.factory
        )
      }
    }
  }
}
