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

import Foundation
import MeshCore
import MeshDiscovery
import NIOCore
import NIOHTTP1
import NIOPosix

/// A fake Consul that answers health queries from a script, one step per request, and records
/// what it was asked: how the watch loop meets 500s, 429s, garbage, hung requests and restarts.
final class ScriptedConsul: Sendable {
  enum Step: Sendable {
    /// Answer with this status, `X-Consul-Index` (if any) and body.
    case respond(status: Int, index: UInt64?, body: String)
    /// Never answer; the client must time out. Used when the script runs out, too.
    case hang
  }

  private let script: MeshMutex<[Step]>
  private let requests = MeshMutex<[String]>([])
  private let tokens = MeshMutex<[String?]>([])

  /// The `X-Consul-Token` of each request.
  var requestTokens: [String?] {
    self.tokens.withLock { $0 }
  }

  init(_ script: [Step]) {
    self.script = MeshMutex(script)
  }

  /// The URIs requested so far.
  var requested: [String] {
    self.requests.withLock { $0 }
  }

  private let arrivals = MeshMutex<[(count: Int, signal: MeshSignal)]>([])

  /// Returns once `count` requests have arrived.
  func waitForRequests(_ count: Int) async {
    let signal = MeshSignal()
    self.arrivals.withLock { $0.append((count, signal)) }
    if self.requested.count >= count { signal.fire() }
    await signal.wait()
  }

  /// Runs `body` with the server's port; the server stops when `body` returns.
  func run(_ body: (Int) async throws -> Void) async throws {
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .bind(host: "127.0.0.1", port: 0) { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
            wrappingChannelSynchronously: channel
          )
        }
      }
    let port = server.channel.localAddress?.port ?? 0
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        try? await server.executeThenClose { inbound in
          try await withThrowingDiscardingTaskGroup { connections in
            for try await connection in inbound {
              connections.addTask { await self.serve(connection) }
            }
          }
        }
      }
      try await body(port)
      group.cancelAll()
    }
  }

  private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>)
    async
  {
    try? await connection.executeThenClose { inbound, outbound in
      var parts = inbound.makeAsyncIterator()
      while let part = try await parts.next() {
        guard case .head(let head) = part else { continue }
        // Read the rest of the request.
        while let next = try await parts.next() {
          if case .end = next { break }
        }
        let arrived = self.requests.withLock {
          $0.append(head.uri)
          return $0.count
        }
        for waiter in self.arrivals.withLock({ $0 }) where waiter.count <= arrived {
          waiter.signal.fire()
        }
        self.tokens.withLock { $0.append(head.headers.first(name: "X-Consul-Token")) }
        let step = self.script.withLock { $0.isEmpty ? .hang : $0.removeFirst() }
        switch step {
        case .hang:
          // Hold the connection until the client gives up and closes it.
          while try await parts.next() != nil {}
          return
        case .respond(let status, let index, let body):
          var headers = HTTPHeaders()
          headers.add(name: "Content-Length", value: "\(body.utf8.count)")
          headers.add(
            name: "Content-Type",
            value: status == 200 ? "application/json" : "text/plain"
          )
          if let index { headers.add(name: "X-Consul-Index", value: "\(index)") }
          try await outbound.write(
            .head(
              HTTPResponseHead(
                version: head.version,
                status: .init(statusCode: status),
                headers: headers
              )
            )
          )
          try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
          try await outbound.write(.end(nil))
        }
      }
    }
  }
}

/// A clock whose sleeps return at once, moving its time forward and recording each sleep: the
/// watch loop's backoffs and rate limit are asserted, never waited for.
final class RecordingClock: Clock, Sendable {
  struct Instant: InstantProtocol {
    var offset: Duration

    func advanced(by duration: Duration) -> Self { Self(offset: self.offset + duration) }
    func duration(to other: Self) -> Duration { other.offset - self.offset }
    static func < (lhs: Self, rhs: Self) -> Bool { lhs.offset < rhs.offset }
  }

  private let state = MeshMutex((now: Instant(offset: .zero), sleeps: [Duration]()))

  var now: Instant { self.state.withLock { $0.now } }
  var minimumResolution: Duration { .zero }

  /// Every sleep asked for, in order.
  var sleeps: [Duration] { self.state.withLock { $0.sleeps } }

  func sleep(until deadline: Instant, tolerance: Duration?) async throws {
    try Task.checkCancellation()
    self.state.withLock { state in
      state.sleeps.append(state.now.duration(to: deadline))
      if state.now < deadline { state.now = deadline }
    }
    await Task.yield()
  }
}
