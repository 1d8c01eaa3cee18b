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
internal import MeshTransport

/// The examples' `greeter.v1.Greeter`: each reply names the instance that answered and the
/// caller's verified identity, so that a client sees the mesh balance and authenticate.
public struct GreeterService: Greeter_V1_Greeter.SimpleServiceProtocol {
  /// The instance's name, put in every reply's `served_by`.
  public let instance: String

  public init(instance: String) {
    self.instance = instance
  }

  public func sayHello(
    request: Greeter_V1_HelloRequest,
    context: ServerContext
  ) async throws -> Greeter_V1_HelloReply {
    self.reply(to: request.name, context: context)
  }

  public func streamHellos(
    request: Greeter_V1_StreamHellosRequest,
    response: RPCWriter<Greeter_V1_HelloReply>,
    context: ServerContext
  ) async throws {
    guard request.count <= 1000, request.intervalMs <= 10_000 else {
      throw RPCError(
        code: .invalidArgument,
        message: "count must be at most 1000 and interval_ms at most 10000"
      )
    }
    for index in 0..<request.count {
      if index > 0, request.intervalMs > 0 {
        try await Self.pause(.milliseconds(request.intervalMs), context: context)
      }
      try await response.write(self.reply(to: request.name, context: context))
    }
  }

  public func chat(
    request: RPCAsyncSequence<Greeter_V1_HelloRequest, any Error>,
    response: RPCWriter<Greeter_V1_HelloReply>,
    context: ServerContext
  ) async throws {
    for try await message in request {
      try await response.write(self.reply(to: message.name, context: context))
    }
  }

  private func reply(to name: String, context: ServerContext) -> Greeter_V1_HelloReply {
    var reply = Greeter_V1_HelloReply()
    reply.message = "Hello, \(name.isEmpty ? "world" : name)"
    reply.servedBy = self.instance
    reply.caller = MeshCaller.current(in: context).map { "\($0.identity)" } ?? ""
    return reply
  }

  /// Waits `duration`, or fails with CANCELLED as soon as the RPC is cancelled (the client gone or
  /// past its deadline, the server's grace period over): an abandoned stream stops at once.
  private static func pause(_ duration: Duration, context: ServerContext) async throws {
    let slept = await withTaskGroup(of: Bool.self) { group in
      group.addTask { (try? await Task.sleep(for: duration)) != nil }
      group.addTask {
        _ = try? await context.cancellation.cancelled
        return false
      }
      let first = await group.next() ?? false
      group.cancelAll()
      return first
    }
    guard slept else { throw RPCError(code: .cancelled, message: "the RPC was cancelled") }
  }
}
