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
import MeshCore
import MeshTransport

/// UTF-8 text as a message.
struct TextSerializer: MessageSerializer, MessageDeserializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: String) throws -> Bytes {
    Bytes(Array(message.utf8))
  }

  func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> String {
    serializedMessageBytes.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
  }
}

/// `test.Echo/Echo`: answers with the caller's identity (`anonymous` on plaintext) and the text;
/// counts the calls.
final class EchoService: RegistrableRPCService, Sendable {
  static let method = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Echo")
  private let count = MeshMutex(0)

  var calls: Int { self.count.withLock { $0 } }

  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    router.registerHandler(
      forMethod: Self.method,
      deserializer: TextSerializer(),
      serializer: TextSerializer()
    ) { request, context in
      self.count.withLock { $0 += 1 }
      var text = ""
      for try await message in request.messages { text += message }
      let caller = MeshCaller.current.map { "\($0.identity)" } ?? "anonymous"
      return StreamingServerResponse(single: ServerResponse(message: "\(caller): \(text)"))
    }
  }
}

/// `test.Wait/Wait`: answers only once its RPC is cancelled (the client gone or past its
/// deadline), too late for anyone to read. `started` yields as each call reaches the handler, so a
/// test gives up on a call the server has seen, not on one still in flight.
final class WaitService: RegistrableRPCService, Sendable {
  static let method = MethodDescriptor(fullyQualifiedService: "test.Wait", method: "Wait")
  let started: AsyncStream<Void>
  private let continuation: AsyncStream<Void>.Continuation

  init() {
    (self.started, self.continuation) = AsyncStream.makeStream()
  }

  func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
    router.registerHandler(
      forMethod: Self.method,
      deserializer: TextSerializer(),
      serializer: TextSerializer()
    ) { request, context in
      for try await _ in request.messages {}
      self.continuation.yield()
      try? await context.cancellation.cancelled
      return StreamingServerResponse(single: ServerResponse(message: "late"))
    }
  }
}

extension GRPCClient {
  /// Calls `test.Wait/Wait`, which answers only once the call is cancelled.
  func wait(options: CallOptions) async throws -> String {
    try await self.unary(
      request: ClientRequest(message: ""),
      descriptor: WaitService.method,
      serializer: TextSerializer(),
      deserializer: TextSerializer(),
      options: options
    ) { try $0.message }
  }

  /// Calls `test.Echo/Echo` with `text`.
  func echo(_ text: String, options: CallOptions = .defaults) async throws -> String {
    try await self.unary(
      request: ClientRequest(message: text),
      descriptor: EchoService.method,
      serializer: TextSerializer(),
      deserializer: TextSerializer(),
      options: options
    ) { try $0.message }
  }
}
