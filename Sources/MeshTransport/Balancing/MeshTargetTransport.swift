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

/// A client handle on a shared ``MeshBalancingTransport``: its RPCs go through that transport
/// (the same endpoints, connections, health streams and breakers as every other handle on the
/// target) with a default timeout of the handle's own.
///
/// Running it (`GRPCClient.runConnections()`) does not run the shared transport, and shutting it
/// down does not shut the shared transport down: whoever made the shared transport runs it.
public struct MeshTargetTransport<
  Factory: MeshSubchannelFactory,
  Clock: _Concurrency.Clock
>: ClientTransport where Clock.Duration == Duration {
  public typealias Bytes = Factory.Subchannel.Bytes

  /// The shared transport.
  public let base: MeshBalancingTransport<Factory, Clock>
  /// The timeout of RPCs whose call options set none; nil: the shared transport's default.
  public let defaultTimeout: Duration?
  private let stopped = MeshSignal()

  /// A handle on `base` whose RPCs default to `defaultTimeout` (the method's own timeout and the
  /// call's still apply as on the shared transport).
  public init(base: MeshBalancingTransport<Factory, Clock>, defaultTimeout: Duration?) {
    self.base = base
    self.defaultTimeout = defaultTimeout
  }

  public var retryThrottle: RetryThrottle? { nil }

  /// Nil, as the shared transport's: it runs each method's timeout and retries itself.
  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    nil
  }

  /// Returns once the handle is shut down; the shared transport is run by its owner.
  public func connect() async throws {
    await self.stopped.wait()
  }

  /// Ends ``connect()``; RPCs in flight go on on the shared transport.
  public func beginGracefulShutdown() {
    self.stopped.fire()
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    try await self.base.withStream(
      descriptor: descriptor,
      options: options,
      defaultTimeout: self.defaultTimeout ?? self.base.defaultTimeout,
      closure
    )
  }
}
