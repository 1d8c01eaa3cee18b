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

/// A server transport that measures what interceptors cannot see, around another one: gRFC A66's
/// `grpc.server.call.sent_total_compressed_message_size` and `…rcvd_…` (message bytes per call,
/// by `grpc.method` and `grpc.status`), and the calls to methods the server does not serve, as
/// `other` (their `grpc.server.call.started` and `.duration`: grpc-swift answers them
/// UNIMPLEMENTED before any interceptor runs).
///
/// The message bytes are those the transport hands over, after any decompression.
public struct MeshServerMetricsTransport<Base: ServerTransport>: ServerTransport {
  public typealias Bytes = Base.Bytes

  /// The transport it wraps: where the server listens.
  public let base: Base
  private let instruments: Instruments?

  /// Measures the calls `base` carries with `factory`'s instruments; with swift-metrics' no-op
  /// factory, passes them on untouched.
  public init(wrapping base: Base, factory: any MetricsFactory = MetricsSystem.factory) {
    self.base = base
    self.instruments = factory is NOOPMetricsHandler ? nil : Instruments(factory: factory)
  }

  public func configure(context: GRPCServerContext) {
    self.instruments?.known.withLock { $0 = Set(context.methods) }
    self.base.configure(context: context)
  }

  public func listen(
    streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
  ) async throws {
    guard let instruments = self.instruments else {
      return try await self.base.listen(streamHandler: streamHandler)
    }
    try await self.base.listen { stream, context in
      let call = MeshServerCallSizes()
      let known = instruments.known.withLock { $0.contains(stream.descriptor) }
      let start = ContinuousClock.now
      let measured = RPCStream<Inbound, Outbound>(
        descriptor: stream.descriptor,
        inbound: RPCAsyncSequence(
          wrapping: stream.inbound.map { part in
            if case .message(let bytes) = part { call.received(bytes.count) }
            return part
          }
        ),
        outbound: RPCWriter.Closable(
          wrapping: MeshMeasuredOutbound(base: stream.outbound, call: call)
        )
      )
      await streamHandler(measured, context)
      let name = known ? stream.descriptor.fullyQualifiedMethod : "other"
      instruments.record(
        name,
        call.snapshot,
        unknownDuration: known ? nil : start.duration(to: .now)
      )
    }
  }

  public func beginGracefulShutdown() {
    self.base.beginGracefulShutdown()
  }

  /// The size recorders by method and status, made once and kept.
  private final class Instruments: Sendable {
    let factory: any MetricsFactory
    /// The server's methods (``configure(context:)`` tells them).
    let known = MeshMutex<Set<MethodDescriptor>>([])
    private let recorders = MeshMutex<[Key: (sent: Recorder, received: Recorder)]>([:])
    private let others = MeshMutex<[Status.Code: CoreMetrics.Timer]>([:])
    private let otherStarted: Counter

    struct Key: Hashable {
      var method: String
      var status: Status.Code
    }

    init(factory: any MetricsFactory) {
      self.factory = factory
      self.otherStarted = Counter(
        label: MeshMetricNames.serverCallStarted,
        dimensions: [(MeshMetricNames.method, "other")],
        factory: factory
      )
    }

    func record(_ method: String, _ sizes: MeshServerCallSizes.Snapshot, unknownDuration: Duration?)
    {
      let status = sizes.status ?? .cancelled
      let (sent, received) = self.recorders.value(for: Key(method: method, status: status)) {
        let labels = [
          (MeshMetricNames.method, method), (MeshMetricNames.status, meshStatusName(status)),
        ]
        return (
          Recorder(
            label: MeshMetricNames.serverCallSentSize,
            dimensions: labels,
            factory: self.factory
          ),
          Recorder(
            label: MeshMetricNames.serverCallReceivedSize,
            dimensions: labels,
            factory: self.factory
          )
        )
      }
      sent.record(sizes.sent)
      received.record(sizes.received)
      guard let unknownDuration else { return }
      self.otherStarted.increment()
      let timer = self.others.value(for: status) {
        CoreMetrics.Timer(
          label: MeshMetricNames.serverCallDuration,
          dimensions: [
            (MeshMetricNames.method, "other"), (MeshMetricNames.status, meshStatusName(status)),
          ],
          preferredDisplayUnit: .seconds,
          factory: self.factory
        )
      }
      timer.recordNanoseconds(MeshInput.nanoseconds(clamping: unknownDuration))
    }
  }
}

/// One call's message bytes each way, and the status it ended with.
final class MeshServerCallSizes: Sendable {
  struct Snapshot {
    var sent = 0
    var received = 0
    var status: Status.Code?
  }

  private let state = MeshMutex(Snapshot())

  var snapshot: Snapshot { self.state.withLock { $0 } }

  func received(_ count: Int) { self.state.withLock { $0.received += count } }
  func sent(_ count: Int) { self.state.withLock { $0.sent += count } }
  func ended(_ code: Status.Code) { self.state.withLock { $0.status = code } }
}

/// A call's response stream, counting its message bytes and noting its status.
struct MeshMeasuredOutbound<Bytes: GRPCContiguousBytes & Sendable>: ClosableRPCWriterProtocol {
  typealias Element = RPCResponsePart<Bytes>

  let base: RPCWriter<RPCResponsePart<Bytes>>.Closable
  let call: MeshServerCallSizes

  func write(_ element: RPCResponsePart<Bytes>) async throws {
    self.note(element)
    try await self.base.write(element)
  }

  func write(contentsOf elements: some Sequence<RPCResponsePart<Bytes>>) async throws {
    for element in elements { self.note(element) }
    try await self.base.write(contentsOf: elements)
  }

  func finish() async {
    await self.base.finish()
  }

  func finish(throwing error: any Error) async {
    await self.base.finish(throwing: error)
  }

  private func note(_ part: RPCResponsePart<Bytes>) {
    switch part {
    case .message(let bytes): self.call.sent(bytes.count)
    case .status(let status, _): self.call.ended(status.code)
    case .metadata: ()
    }
  }
}
