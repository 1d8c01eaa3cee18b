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
private import MeshCore

/// A server interceptor that counts the RPCs a server handles, except the balancer's own
/// health `Watch` streams: how tests see where traffic went.
public final class RPCCounter: ServerInterceptor, Sendable {
  private let count = MeshMutex(0)

  public init() {}

  /// RPCs counted so far.
  public var value: Int {
    self.count.withLock { $0 }
  }

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    if context.descriptor.method != "Watch" {
      self.count.withLock { $0 += 1 }
    }
    return try await next(request, context)
  }
}
