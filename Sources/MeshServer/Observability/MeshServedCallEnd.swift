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

internal import GRPCCore
internal import MeshCore
internal import Tracing

/// How a served call ended, told exactly once: when its response has been produced, when the
/// handler fails, or — if grpc-swift drops the response unproduced because the client went
/// away — when it is let go (CANCELLED). A call the client reset is CANCELLED whatever its
/// handler returned: no status reached the client.
final class MeshServedCallEnd: Sendable {
  private let cancellation: ServerContext.RPCCancellationHandle
  private let action: MeshMutex<(@Sendable (Status.Code, (any Error)?) -> Void)?>

  init(
    cancellation: ServerContext.RPCCancellationHandle,
    _ action: @escaping @Sendable (Status.Code, (any Error)?) -> Void
  ) {
    self.cancellation = cancellation
    self.action = MeshMutex(action)
  }

  func end(_ error: (any Error)?) {
    let action = self.action.withLock { action in
      defer { action = nil }
      return action
    }
    guard let action else { return }
    let code: Status.Code =
      switch error {
      case nil: self.cancellation.isCancelled ? .cancelled : .ok
      case let error as RPCError: Status.Code(error.code)
      case let error as any RPCErrorConvertible: Status.Code(error.rpcErrorCode)
      default: self.cancellation.isCancelled ? .cancelled : .unknown
      }
    action(code, error)
  }

  deinit {
    self.end(RPCError(code: .cancelled, message: "the response was never produced"))
  }

  /// Runs `next` (the handler and what follows), and its response's producer, within
  /// `serviceContext` when given; tells this end when they are done.
  func observe<Output: Sendable>(
    within serviceContext: ServiceContext? = nil,
    _ next: () async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    let response: StreamingServerResponse<Output>
    do {
      if let serviceContext {
        response = try await ServiceContext.withValue(serviceContext) { try await next() }
      } else {
        response = try await next()
      }
    } catch {
      self.end(error)
      throw error
    }
    switch response.accepted {
    case .failure(let error):
      self.end(error)
      return response
    case .success(var contents):
      let producer = contents.producer
      // This lives as long as the producer: dropped uncalled, its deinit ends the call.
      contents.producer = { writer in
        do {
          let trailers: Metadata
          if let serviceContext {
            trailers = try await ServiceContext.withValue(serviceContext) {
              try await producer(writer)
            }
          } else {
            trailers = try await producer(writer)
          }
          self.end(nil)
          return trailers
        } catch {
          self.end(error)
          throw error
        }
      }
      return StreamingServerResponse(accepted: .success(contents))
    }
  }
}
