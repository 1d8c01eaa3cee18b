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

/// gRFC A66's server call instruments, through swift-metrics (the backend is the caller's):
///
/// | Instrument | Kind | Dimensions |
/// | --- | --- | --- |
/// | `grpc.server.call.started` | counter | `grpc.method` |
/// | `grpc.server.call.duration` | timer (seconds) | `grpc.method`, `grpc.status` |
///
/// `grpc.method` is `package.Service/Method`: only registered methods reach an interceptor, so
/// cardinality is bounded by the server's services. `grpc.status` is the code's canonical name
/// (`OK`, `PERMISSION_DENIED`, ...). The duration runs from the call reaching the interceptor to
/// its handler returning (for a streaming response, its last message written), failures included.
/// A MeshServer puts it outermost, so calls its authorization denies are counted too.
public struct MeshServerMetricsInterceptor: ServerInterceptor {
  private let instruments: Instruments

  /// Instruments from `factory`; by default swift-metrics' bootstrapped (or task-local) one.
  public init(factory: any MetricsFactory = MetricsSystem.factory) {
    self.instruments = Instruments(factory: factory)
  }

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    let method = context.descriptor.fullyQualifiedMethod
    let start = ContinuousClock.now
    let instruments = self.instruments
    instruments.started(method).increment()
    let response: StreamingServerResponse<Output>
    do {
      response = try await next(request, context)
    } catch {
      instruments.finished(method, error, since: start)
      throw error
    }
    switch response.accepted {
    case .failure(let error):
      instruments.finished(method, error, since: start)
      return response
    case .success(var contents):
      let producer = contents.producer
      contents.producer = { writer in
        do {
          let trailers = try await producer(writer)
          instruments.finished(method, nil, since: start)
          return trailers
        } catch {
          instruments.finished(method, error, since: start)
          throw error
        }
      }
      return StreamingServerResponse(accepted: .success(contents))
    }
  }

  /// The instruments, made once per method (and status) and kept.
  private final class Instruments: Sendable {
    private let factory: any MetricsFactory
    private let counters = MeshMutex<[String: Counter]>([:])
    private let timers = MeshMutex<[TimerKey: Timer]>([:])

    private struct TimerKey: Hashable {
      var method: String
      var status: Status.Code
    }

    init(factory: any MetricsFactory) {
      self.factory = factory
    }

    func started(_ method: String) -> Counter {
      if let counter = self.counters.withLock({ $0[method] }) { return counter }
      // Made outside the lock (the factory may take its own); a race makes one twice, harmlessly:
      // a factory hands out the same series for the same label and dimensions.
      let counter = Counter(
        label: "grpc.server.call.started",
        dimensions: [("grpc.method", method)],
        factory: self.factory
      )
      return self.counters.withLock { counters in
        if let existing = counters[method] { return existing }
        counters[method] = counter
        return counter
      }
    }

    func finished(_ method: String, _ error: (any Error)?, since start: ContinuousClock.Instant) {
      let elapsed = start.duration(to: .now)
      let code: Status.Code =
        switch error {
        case nil: .ok
        case let error as RPCError: Status.Code(error.code)
        case let error as any RPCErrorConvertible: Status.Code(error.rpcErrorCode)
        case is CancellationError: .cancelled
        default: .unknown
        }
      let key = TimerKey(method: method, status: code)
      let timer: Timer
      if let existing = self.timers.withLock({ $0[key] }) {
        timer = existing
      } else {
        let made = Timer(
          label: "grpc.server.call.duration",
          dimensions: [("grpc.method", method), ("grpc.status", meshStatusName(code))],
          preferredDisplayUnit: .seconds,
          factory: self.factory
        )
        timer = self.timers.withLock { timers in
          if let existing = timers[key] { return existing }
          timers[key] = made
          return made
        }
      }
      timer.recordNanoseconds(MeshInput.nanoseconds(clamping: elapsed))
    }
  }
}

/// A status code's canonical name, as gRPC's metrics and traces write it (`OK`,
/// `DEADLINE_EXCEEDED`).
func meshStatusName(_ code: Status.Code) -> String {
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
