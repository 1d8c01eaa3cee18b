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
public import GRPCNIOTransportHTTP2Posix
public import MeshDiscovery

/// Any subchannel factory whose transports carry `GRPCNIOTransportBytes` (grpc-swift's NIO
/// transport, the native one, and a mesh client's choice between them), behind one type this
/// module knows.
///
/// A ``MeshBalancingTransport`` over this factory on the `ContinuousClock` runs each RPC in code
/// compiled for those types. A balancing transport over another factory runs the same code
/// generically: called from another module, that code looks up the runtime's metadata of every
/// generic type it touches (the state machine's, the call's, the request log's) on each RPC,
/// which cost the mesh client more CPU per RPC than the whole native transport.
public struct MeshAnySubchannelFactory: MeshSubchannelFactory {
  public typealias Subchannel = MeshAnySubchannel

  private let base: any MeshAnySubchannelFactoryBox

  /// `base`'s subchannels, erased. `base`'s ``MeshSubchannelFactory/requestFailureEndsResponse``
  /// and ``MeshSubchannelFactory/opensConnectedStreams`` are read once, here.
  public init<Base: MeshSubchannelFactory>(_ base: Base)
  where Base.Subchannel.Bytes == GRPCNIOTransportBytes {
    self.base = MeshSubchannelFactoryBox(base: base)
    self.requestFailureEndsResponse = base.requestFailureEndsResponse
    self.opensConnectedStreams = base.opensConnectedStreams
  }

  public func makeSubchannel(for endpoint: MeshEndpoint) throws -> MeshAnySubchannel {
    MeshAnySubchannel(box: try self.base.makeSubchannel(for: endpoint))
  }

  public func connectionFailure(for endpoint: MeshEndpoint) -> (any Error)? {
    self.base.connectionFailure(for: endpoint)
  }

  public let requestFailureEndsResponse: Bool

  public let opensConnectedStreams: Bool

  public func withConnectedStream<T: Sendable>(
    on subchannel: MeshAnySubchannel,
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<MeshAnySubchannel.Inbound, MeshAnySubchannel.Outbound>, ClientContext)
      async throws -> T
  ) async throws -> T? {
    try await subchannel.box.withConnectedStream(
      descriptor: descriptor,
      options: options,
      closure
    )
  }
}

/// The balancing transport whose RPCs run in code compiled for its types.
typealias MeshClientTransport = MeshBalancingTransport<MeshAnySubchannelFactory, ContinuousClock>

/// A subchannel of a ``MeshAnySubchannelFactory``: its base factory's, erased.
public struct MeshAnySubchannel: ClientTransport {
  public typealias Bytes = GRPCNIOTransportBytes

  fileprivate let box: any MeshAnySubchannelBox

  /// The base factory's subchannel.
  public var base: any ClientTransport<GRPCNIOTransportBytes> { self.box.base }

  public var retryThrottle: RetryThrottle? { self.box.retryThrottle }

  public func connect() async throws {
    try await self.box.connect()
  }

  public func beginGracefulShutdown() {
    self.box.beginGracefulShutdown()
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    try await self.box.withStream(descriptor: descriptor, options: options, closure)
  }

  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    self.box.config(forMethod: descriptor)
  }
}

private protocol MeshAnySubchannelFactoryBox: Sendable {
  func makeSubchannel(for endpoint: MeshEndpoint) throws -> any MeshAnySubchannelBox
  func connectionFailure(for endpoint: MeshEndpoint) -> (any Error)?
}

private protocol MeshAnySubchannelBox: Sendable {
  var base: any ClientTransport<GRPCNIOTransportBytes> { get }
  var retryThrottle: RetryThrottle? { get }
  func connect() async throws
  func beginGracefulShutdown()
  func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<MeshAnySubchannel.Inbound, MeshAnySubchannel.Outbound>, ClientContext)
      async throws -> T
  ) async throws -> T
  func config(forMethod descriptor: MethodDescriptor) -> MethodConfig?
  func withConnectedStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<MeshAnySubchannel.Inbound, MeshAnySubchannel.Outbound>, ClientContext)
      async throws -> T
  ) async throws -> T?
}

private struct MeshSubchannelFactoryBox<Base: MeshSubchannelFactory>: MeshAnySubchannelFactoryBox
where Base.Subchannel.Bytes == GRPCNIOTransportBytes {
  let base: Base

  func makeSubchannel(for endpoint: MeshEndpoint) throws -> any MeshAnySubchannelBox {
    MeshSubchannelBox(factory: self.base, subchannel: try self.base.makeSubchannel(for: endpoint))
  }

  func connectionFailure(for endpoint: MeshEndpoint) -> (any Error)? {
    self.base.connectionFailure(for: endpoint)
  }
}

private struct MeshSubchannelBox<Base: MeshSubchannelFactory>: MeshAnySubchannelBox
where Base.Subchannel.Bytes == GRPCNIOTransportBytes {
  let factory: Base
  let subchannel: Base.Subchannel

  var base: any ClientTransport<GRPCNIOTransportBytes> { self.subchannel }

  var retryThrottle: RetryThrottle? { self.subchannel.retryThrottle }

  func connect() async throws {
    try await self.subchannel.connect()
  }

  func beginGracefulShutdown() {
    self.subchannel.beginGracefulShutdown()
  }

  func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<MeshAnySubchannel.Inbound, MeshAnySubchannel.Outbound>, ClientContext)
      async throws -> T
  ) async throws -> T {
    try await self.subchannel.withStream(descriptor: descriptor, options: options, closure)
  }

  func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    self.subchannel.config(forMethod: descriptor)
  }

  func withConnectedStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<MeshAnySubchannel.Inbound, MeshAnySubchannel.Outbound>, ClientContext)
      async throws -> T
  ) async throws -> T? {
    try await self.factory.withConnectedStream(
      on: self.subchannel,
      descriptor: descriptor,
      options: options,
      closure
    )
  }
}
