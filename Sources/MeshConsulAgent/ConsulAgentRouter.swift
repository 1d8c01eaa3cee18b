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

internal import Foundation
internal import HTTPTypes
internal import Hummingbird
internal import Logging
internal import NIOCore

/// A request as the agent's router sees it, with no socket: what a test or a fuzz target sends.
package struct ConsulAgentHTTPRequest: Sendable {
  package var method: String
  /// The path, percent-encoded as on the wire (`/v1/agent/service/deregister/a%2Fb`).
  package var path: String
  /// The raw query string, without `?`.
  package var query: String
  package var headers: [(name: String, value: String)]
  package var body: [UInt8]

  package init(
    method: String,
    path: String,
    query: String = "",
    headers: [(name: String, value: String)] = [],
    body: [UInt8] = []
  ) {
    self.method = method
    self.path = path
    self.query = query
    self.headers = headers
    self.body = body
  }
}

/// The agent's answer to a ``ConsulAgentHTTPRequest``.
package struct ConsulAgentHTTPResponse: Sendable {
  package var status: Int
  package var headers: [(name: String, value: String)]
  package var body: [UInt8]

  /// The first value of header `name` (case-insensitive).
  package func header(_ name: String) -> String? {
    self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
  }

  package var text: String { String(decoding: self.body, as: UTF8.self) }
}

/// The request context of the agent's routes. It is made from a connection by the HTTP server,
/// or from a logger alone when the router is driven without sockets.
struct ConsulAgentRequestContext: RequestContext {
  var coreContext: CoreRequestContextStorage

  init(source: ApplicationRequestContextSource) {
    self.coreContext = CoreRequestContextStorage(source: source)
  }

  init(logger: Logger) {
    self.coreContext = CoreRequestContextStorage(source: ConsulAgentContextSource(logger: logger))
  }
}

private struct ConsulAgentContextSource: RequestContextSource {
  let logger: Logger
}

/// The agent's HTTP API on Hummingbird's router: Consul's paths, methods (405 with `Allow`,
/// `OPTIONS`), plain-text errors and body limit.
///
/// ``respond(to:)`` answers a request without sockets, through the same router and middleware
/// the HTTP server uses.
package struct ConsulAgentRouter<Clock: _Concurrency.Clock>: Sendable
where Clock.Duration == Duration {
  let core: ConsulAgentCore<Clock>
  let responder: RouterResponder<ConsulAgentRequestContext>

  /// The methods every path answers, if only with 405.
  private static var methods: [HTTPRequest.Method] {
    [.get, .head, .post, .put, .delete, .options, .patch]
  }

  init(core: ConsulAgentCore<Clock>) {
    self.core = core
    let router = Router(context: ConsulAgentRequestContext.self)
    router.add(middleware: ConsulAgentErrorMiddleware())
    for route in ConsulAgentRoutes<Clock>.all {
      for method in Self.methods {
        router.on(RouterPath(route.path), method: method) { request, context in
          try await Self.dispatch(route, request: request, context: context, core: core)
        }
      }
    }
    self.responder = router.buildResponder()
  }

  private static func dispatch(
    _ route: ConsulAgentRoutes<Clock>.Route,
    request: Request,
    context: ConsulAgentRequestContext,
    core: ConsulAgentCore<Clock>
  ) async throws -> Response {
    let allow = (["OPTIONS"] + route.methods.map(\.rawValue)).joined(separator: ",")
    if request.method == .options {
      return Response(status: .ok, headers: [.allow: allow])
    }
    guard route.methods.contains(request.method) else {
      var response = ConsulAgentReply.error(
        ConsulAgentError(405, "method \(request.method.rawValue) not allowed")
      ).response
      response.headers[.allow] = allow
      return response
    }
    var request = request
    var body = ByteBuffer()
    if request.method == .put || request.method == .post {
      body = try await request.collectBody(upTo: core.configuration.limits.maxRequestBodySize)
    }
    let parameter: String
    if route.path.hasSuffix("**") {
      let raw = context.parameters.getCatchAll().joined(separator: "/")
      guard let decoded = raw.removingPercentEncoding else {
        throw ConsulAgentError(400, "Invalid URL path escape")
      }
      parameter = decoded
    } else {
      parameter = ""
    }
    let call = ConsulAgentCall(
      method: request.method,
      query: ConsulAgentQuery(request.uri.query ?? ""),
      parameter: parameter,
      body: Array(body.readableBytesView)
    )
    return try await route.handle(core, call).response
  }

  /// Answers `request` without sockets, as the HTTP server would.
  package func respond(to request: ConsulAgentHTTPRequest) async -> ConsulAgentHTTPResponse {
    guard let method = HTTPRequest.Method(request.method) else {
      return ConsulAgentHTTPResponse(status: 400, headers: [], body: Array("Bad Request".utf8))
    }
    var fields = HTTPFields()
    for header in request.headers {
      if let name = HTTPField.Name(header.name) {
        fields.append(HTTPField(name: name, value: header.value))
      }
    }
    let path = request.query.isEmpty ? request.path : "\(request.path)?\(request.query)"
    let head = HTTPRequest(
      method: method,
      scheme: "http",
      authority: "agent",
      path: path,
      headerFields: fields
    )
    let hummingbirdRequest = Request(
      head: head,
      body: RequestBody(buffer: ByteBuffer(bytes: request.body))
    )
    let response: Response
    do {
      response = try await self.responder.respond(
        to: hummingbirdRequest,
        context: ConsulAgentRequestContext(logger: self.core.logger)
      )
    } catch {
      response = ConsulAgentReply.error(ConsulAgentErrorMiddleware.map(error)).response
    }
    let collector = ConsulAgentBodyCollector()
    try? await response.body.write(collector)
    return ConsulAgentHTTPResponse(
      status: response.status.code,
      headers: response.headers.map { ($0.name.rawName, $0.value) },
      body: collector.bytes
    )
  }
}

/// Collects a response body in memory (the router driven without sockets).
private final class ConsulAgentBodyCollector: ResponseBodyWriter {
  var bytes: [UInt8] = []

  func write(_ buffer: ByteBuffer) async throws {
    self.bytes.append(contentsOf: buffer.readableBytesView)
  }

  func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// Turns every error into Consul's kind of answer: a status and a short plain-text message, never
/// a description of internal values.
struct ConsulAgentErrorMiddleware: RouterMiddleware {
  typealias Context = ConsulAgentRequestContext

  func handle(
    _ request: Request,
    context: Context,
    next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    do {
      return try await next(request, context)
    } catch {
      return ConsulAgentReply.error(Self.map(error)).response
    }
  }

  static func map(_ error: any Error) -> ConsulAgentError {
    switch error {
    case let error as ConsulAgentError:
      return error
    // HTTPError and NIO's errors (a body past the limit is NIOTooManyBytesError) are
    // HTTPResponseErrors; their own bodies are not Consul's, so only their status is kept.
    case let error as any HTTPResponseError where error.status == .notFound:
      return ConsulAgentError(
        404,
        "Invalid URL path: not a recognized HTTP API endpoint\n",
        cause: error
      )
    case let error as any HTTPResponseError where error.status == .contentTooLarge:
      return ConsulAgentError(413, "Request body too large", cause: error)
    case let error as any HTTPResponseError:
      return ConsulAgentError(error.status.code, error.status.reasonPhrase, cause: error)
    default:
      return ConsulAgentError(500, "Internal error", cause: error)
    }
  }
}
