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

/// Deadline propagation: the remaining time of the RPC a server handler is serving, for the
/// calls it makes through the mesh.
///
/// ``MeshDeadlinePropagationInterceptor`` sets it for each incoming RPC; the balancing transport
/// reads it, so a handler's calls inherit the time left (less the target's propagation margin)
/// with no code in the handler. Calls made outside a handler can set it with
/// ``withDeadline(_:operation:)``.
public enum MeshPropagatedDeadline {
  @TaskLocal
  public static var current: ContinuousClock.Instant?

  /// Runs `operation` with calls through the mesh bounded by `deadline` (the earlier of it and any
  /// deadline already in force).
  public static func withDeadline<Result>(
    _ deadline: ContinuousClock.Instant,
    isolation: isolated (any Actor)? = #isolation,
    operation: () async throws -> Result
  ) async rethrows -> Result {
    let effective = Self.current.map { min($0, deadline) } ?? deadline
    return try await Self.$current.withValue(effective, operation: operation, isolation: isolation)
  }
}

/// A server interceptor that makes an incoming RPC's deadline (its `grpc-timeout`) the deadline
/// of the calls its handler makes through the mesh, streaming responses included.
///
/// Cancellation follows as well: a call through the mesh made while serving an RPC is cancelled
/// when that RPC is (by its client, its deadline, or server shutdown).
///
/// ```swift
/// let server = GRPCServer(transport: transport, services: [service],
///                         interceptors: [MeshDeadlinePropagationInterceptor()])
/// ```
public struct MeshDeadlinePropagationInterceptor: ServerInterceptor {
  public init() {}

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next:
      @Sendable (StreamingServerRequest<Input>, ServerContext) async throws ->
      StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    guard let text = request.metadata.meshFirstString("grpc-timeout"),
      let timeout = MeshGRPCTimeout.decode(text)
    else {
      return try await next(request, context)
    }
    let deadline = ContinuousClock.now.advanced(by: timeout)
    var response = try await MeshPropagatedDeadline.withDeadline(deadline) {
      try await next(request, context)
    }
    // A streaming response runs its producer after the interceptors return: bound it too.
    if case .success(var contents) = response.accepted {
      let producer = contents.producer
      contents.producer = { writer in
        try await MeshPropagatedDeadline.withDeadline(deadline) { try await producer(writer) }
      }
      response.accepted = .success(contents)
    }
    return response
  }
}

/// The `grpc-timeout` header's format: at most eight digits and a unit (H, M, S, m, u, n).
public enum MeshGRPCTimeout {
  public static func decode(_ text: String) -> Duration? {
    guard let unit = text.last, (2...9).contains(text.utf8.count) else { return nil }
    let digits = text.dropLast()
    guard digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let value = Int64(digits)
    else { return nil }
    switch unit {
    case "H": return .seconds(value * 3600)
    case "M": return .seconds(value * 60)
    case "S": return .seconds(value)
    case "m": return .milliseconds(value)
    case "u": return .microseconds(value)
    case "n": return .nanoseconds(value)
    default: return nil
    }
  }

  /// The most digits ``encode(_:)`` writes: seven, one fewer than the protocol allows, because
  /// grpc-swift 2.4.3's servers refuse a header longer than eight characters (digits and unit)
  /// and then run the RPC with no deadline at all, although its own clients write eight digits.
  public static let maxDigits = 7

  /// The finest unit that fits ``maxDigits`` digits, rounded up to whole units (a peer given a
  /// little more than the remaining time still ends before the caller, who enforces the exact
  /// deadline).
  public static func encode(_ duration: Duration) -> String {
    let (seconds, attoseconds) = max(duration, .nanoseconds(1)).components
    let nanoseconds = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    let units: [(Character, Double)] = [
      ("n", 1), ("u", 1e3), ("m", 1e6), ("S", 1e9), ("M", 60e9), ("H", 3600e9),
    ]
    for (unit, scale) in units {
      let value = (nanoseconds / scale).rounded(.up)
      if value <= 9_999_999 { return "\(Int64(value))\(unit)" }
    }
    return "9999999H"
  }
}
