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

import GRPCCore
import MeshClient
import MeshCore
import MeshDiscovery
import MeshTransport
import Testing

/// UTF-8 text as a message.
private struct Text: MessageSerializer, MessageDeserializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: String) throws -> Bytes {
    Bytes(Array(message.utf8))
  }

  func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> String {
    serializedMessageBytes.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
  }
}

/// `test.Collect/Collect`, client streaming: reads the whole request and answers with how many
/// messages it read; the first `failures` calls fail UNAVAILABLE once they have read it, or at
/// once (`beforeReading`, firing `failed`) while the client is still sending.
private final class CollectService: RegistrableRPCService, Sendable {
  static let method = MethodDescriptor(fullyQualifiedService: "test.Collect", method: "Collect")
  private let state: MeshMutex<(failures: Int, counts: [Int])>
  private let beforeReading: Bool
  let failed = MeshSignal()

  init(failures: Int, beforeReading: Bool = false) {
    self.state = MeshMutex((failures, []))
    self.beforeReading = beforeReading
  }

  /// The number of messages each call read, in order.
  var counts: [Int] { self.state.withLock { $0.counts } }

  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    router.registerHandler(
      forMethod: Self.method,
      deserializer: Text(),
      serializer: Text()
    ) { request, _ in
      if self.beforeReading {
        let fail = self.state.withLock { state in
          guard state.failures > 0 else { return false }
          state.failures -= 1
          return true
        }
        if fail {
          self.failed.fire()
          throw RPCError(code: .unavailable, message: "Injected before reading the request.")
        }
      }
      var count = 0
      for try await _ in request.messages { count += 1 }
      let fail = self.state.withLock { state in
        state.counts.append(count)
        guard state.failures > 0 else { return false }
        state.failures -= 1
        return true
      }
      if fail { throw RPCError(code: .unavailable, message: "Injected after reading the request.") }
      return StreamingServerResponse(single: ServerResponse(message: "\(count)"))
    }
  }
}

/// The client's subchannel factory, counting the first attempts made in the caller's task.
private struct CountingFactory: MeshSubchannelFactory {
  final class Count: Sendable {
    let value = MeshMutex(0)
  }

  let base: MeshClientSubchannelFactory
  let direct = Count()

  func makeSubchannel(for endpoint: MeshEndpoint) throws -> MeshSubchannel {
    try self.base.makeSubchannel(for: endpoint)
  }

  var requestFailureEndsResponse: Bool { self.base.requestFailureEndsResponse }
  var opensConnectedStreams: Bool { self.base.opensConnectedStreams }

  func withConnectedStream<T: Sendable>(
    on subchannel: MeshSubchannel,
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<MeshSubchannel.Inbound, MeshSubchannel.Outbound>, ClientContext)
      async throws -> T
  ) async throws -> T? {
    try await self.base.withConnectedStream(
      on: subchannel,
      descriptor: descriptor,
      options: options
    ) { stream, context in
      self.direct.value.withLock { $0 += 1 }
      return try await closure(stream, context)
    }
  }
}

private typealias CollectTransport = MeshBalancingTransport<
  MeshAnySubchannelFactory, ContinuousClock
>

/// Two loopback servers of `service` on `kind`, and a client balancing over them (round robin,
/// fast retries) once both are pickable.
private func withCollectServers(
  _ service: CollectService,
  on kind: TestTransport,
  factory: CountingFactory,
  _ body: (GRPCClient<CollectTransport>, CollectTransport) async throws -> Void
) async throws {
  try await withThrowingTaskGroup(of: Void.self) { group in
    var endpoints: [MeshEndpoint] = []
    var stops: [@Sendable () -> Void] = []
    for index in 0..<2 {
      let (port, stop) = try await kind.startServer(services: [service], in: &group)
      endpoints.append(MeshEndpoint(id: "s\(index)", host: "127.0.0.1", port: port))
      stops.append(stop)
    }
    let transport = try MeshBalancingTransport(
      service: "collect",
      discovery: MeshStaticDiscovery(["collect": endpoints]),
      factory: MeshAnySubchannelFactory(factory),
      configuration: .testing(
        policy: .roundRobin,
        resilience: .testing(MeshMethodPolicy(retry: .fast))
      )
    )
    try await withGRPCClient(transport: transport) { client in
      await transport.waitForPickableEndpoints(2)
      try await body(client, transport)
    }
    for stop in stops { stop() }
  }
}

extension GRPCClient {
  /// Calls `test.Collect/Collect` with what `producer` writes.
  fileprivate func collect(
    _ producer: @escaping @Sendable (RPCWriter<String>) async throws -> Void
  ) async throws -> String {
    try await self.clientStreaming(
      request: StreamingClientRequest(of: String.self, producer: producer),
      descriptor: CollectService.method,
      serializer: Text(),
      deserializer: Text(),
      options: .defaults
    ) { try $0.message }
  }
}

/// On both transports even under a sanitizer (two light tests): the native one is where the
/// first attempt runs in the caller's task, the code under test.
@Suite("First attempts in the caller's task", .timeLimit(.minutes(2)))
struct DirectAttemptTests {
  @Test(
    "On connected native subchannels each RPC's first attempt is the caller's own; when it fails, a retry replays the whole request",
    arguments: TestTransport.allCases
  )
  func firstAttemptDirect(kind: TestTransport) async throws {
    let service = CollectService(failures: 1)
    let factory = CountingFactory(base: kind.plaintextSubchannels)
    try await withCollectServers(service, on: kind, factory: factory) { client, transport in
      for _ in 0..<6 {
        let reply = try await client.collect { writer in
          for text in ["a", "b", "c"] { try await writer.write(text) }
        }
        #expect(reply == "3")
      }
      #expect(transport.stats.retriesTotal == 1)
      // Every attempt, the retry included, gave its breakers' slots back with its RPC.
      #expect(transport.stats.attemptsInFlight == 0)
      #expect(transport.stats.retriesInFlight == 0)
    }
    // The first call failed once it had sent its request; the retry, on the other server,
    // carried all of it again.
    #expect(service.counts == Array(repeating: 3, count: 7))
    // On the native transport every first attempt was made in the caller's task (the retry was
    // not); grpc-swift's NIO transport cannot open a stream only if connected, so none was.
    #expect(factory.direct.value.withLock { $0 } == (kind == .native ? 6 : 0))
  }

  @Test(
    "A first attempt that fails while its request is still being sent: the retry gets all of it",
    arguments: TestTransport.allCases
  )
  func fallBackMidRequest(kind: TestTransport) async throws {
    let service = CollectService(failures: 1, beforeReading: true)
    let factory = CountingFactory(base: kind.plaintextSubchannels)
    try await withCollectServers(service, on: kind, factory: factory) { client, transport in
      let reply = try await client.collect { writer in
        try await writer.write("a")
        // The first attempt's server has failed the call: the rest is sent after.
        await service.failed.wait()
        for text in ["b", "c", "d"] { try await writer.write(text) }
      }
      #expect(reply == "4")
      #expect(transport.stats.retriesTotal == 1)
      #expect(transport.stats.attemptsInFlight == 0)
      #expect(transport.stats.retriesInFlight == 0)
    }
    #expect(service.counts == [4])
  }
}
