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

internal import HTTPTypes
private import MeshCore
internal import NIOCore
internal import NIOHTTPTypes

/// Counts open connections per client IP, shared by every connection of one agent.
final class ConsulAgentConnectionCounter: Sendable {
  private let counts = MeshMutex<[String: Int]>([:])

  /// Counts a new connection from `client`; false (and not counted) when it would pass `limit`.
  func open(_ client: String, limit: Int) -> Bool {
    self.counts.withLock { counts in
      let count = counts[client, default: 0]
      guard count < limit else { return false }
      counts[client] = count + 1
      return true
    }
  }

  func close(_ client: String) {
    self.counts.withLock { counts in
      let count = counts[client, default: 0] - 1
      counts[client] = count > 0 ? count : nil
    }
  }

  /// Open connections from `client` (for tests).
  func count(_ client: String) -> Int {
    self.counts.withLock { $0[client, default: 0] }
  }
}

/// The agent's connection rules that sit between HTTP parsing and Hummingbird's request
/// handling:
///
/// - At most `maxConnectionsPerClient` connections per client IP, as Consul's
///   `http_max_conns_per_client`: the next one is answered `429` with Consul's message and closed.
/// - A request must arrive whole within `requestReadTimeout` of its head, or the connection is
///   closed (a slow or half-sent body); Hummingbird's idle timeout covers a head that never ends.
/// - `Expect: 100-continue` is answered `100 Continue` so the client sends its body.
/// - A response that says `Connection: close` (a refused oversized body) closes the connection
///   instead of reading the rest of the body.
final class ConsulAgentConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPRequestPart
  typealias InboundOut = HTTPRequestPart
  typealias OutboundIn = HTTPResponsePart
  typealias OutboundOut = HTTPResponsePart

  static let tooManyConnections =
    "Your IP is issuing too many concurrent connections, please rate limit your calls\n"

  private let counter: ConsulAgentConnectionCounter
  private let limit: Int
  private let readTimeout: TimeAmount
  private var client: String?
  private var refused = false
  private var readTimer: Scheduled<Void>?
  private var closeAfterResponse = false

  init(counter: ConsulAgentConnectionCounter, limit: Int, readTimeout: TimeAmount) {
    self.counter = counter
    self.limit = limit
    self.readTimeout = readTimeout
  }

  func handlerAdded(context: ChannelHandlerContext) {
    if context.channel.isActive { self.opened(context) }
  }

  func channelActive(context: ChannelHandlerContext) {
    self.opened(context)
    context.fireChannelActive()
  }

  private func opened(_ context: ChannelHandlerContext) {
    guard self.client == nil, !self.refused else { return }
    let client = context.channel.remoteAddress?.ipAddress ?? "unknown"
    guard self.counter.open(client, limit: self.limit) else {
      // As Consul: answered at once, before any request is read, and closed.
      self.refused = true
      let body = ByteBuffer(string: Self.tooManyConnections)
      let head = HTTPResponse(
        status: .tooManyRequests,
        headerFields: [
          .contentType: "text/plain; charset=utf-8", .contentLength: "\(body.readableBytes)",
          .connection: "close",
        ]
      )
      context.write(self.wrapOutboundOut(.head(head)), promise: nil)
      context.write(self.wrapOutboundOut(.body(body)), promise: nil)
      let closed = context.eventLoop.makePromise(of: Void.self)
      context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: closed)
      let channel = context.channel
      closed.futureResult.whenComplete { _ in channel.close(promise: nil) }
      return
    }
    self.client = client
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.released()
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.released()
  }

  private func released() {
    self.readTimer?.cancel()
    self.readTimer = nil
    if let client = self.client {
      self.counter.close(client)
      self.client = nil
    }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard !self.refused else { return }  // nothing from a refused connection reaches the app
    switch self.unwrapInboundIn(data) {
    case .head(let head):
      self.readTimer?.cancel()
      let loop = context.eventLoop.assumeIsolated()
      self.readTimer = loop.scheduleTask(in: self.readTimeout) {
        // The request did not arrive whole in time: drop the connection, as Go's ReadTimeout.
        self.readTimer = nil
        context.close(promise: nil)
      }
      if head.headerFields[.expect]?.lowercased() == "100-continue" {
        context.writeAndFlush(
          self.wrapOutboundOut(.head(HTTPResponse(status: .continue))),
          promise: nil
        )
      }
    case .body:
      break
    case .end:
      self.readTimer?.cancel()
      self.readTimer = nil
    }
    context.fireChannelRead(data)
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    switch self.unwrapOutboundIn(data) {
    case .head(let head):
      if head.headerFields[.connection]?.lowercased() == "close" {
        self.closeAfterResponse = true
      }
      context.write(data, promise: promise)
    case .body:
      context.write(data, promise: promise)
    case .end:
      guard self.closeAfterResponse else {
        context.write(data, promise: promise)
        return
      }
      context.writeAndFlush(data, promise: promise)
      context.close(promise: nil)
    }
  }
}
