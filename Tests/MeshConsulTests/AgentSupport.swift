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

import AsyncHTTPClient
import Foundation
import MeshConsul
import MeshConsulAgent
import NIOCore
import NIOHTTP1

/// Runs `body` with an embedded agent on a free port and a client of it.
func withAgent(
  configuration: MeshConsulAgentConfiguration = MeshConsulAgentConfiguration(port: 0),
  _ body: (MeshConsulAgent<ContinuousClock>, ConsulClient) async throws -> Void
) async throws {
  let agent = MeshConsulAgent(configuration: configuration)
  try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await agent.run() }
    let port = try await agent.listeningPort
    let client = try ConsulClient(
      ConsulClientConfiguration(address: URL(string: "http://127.0.0.1:\(port)")!)
    )
    do {
      try await body(agent, client)
    } catch {
      agent.beginGracefulShutdown()
      throw error
    }
    agent.beginGracefulShutdown()
    try await group.waitForAll()
  }
}

/// A raw HTTP exchange with an agent, for what the typed client does not expose.
struct RawResponse {
  var status: Int
  var headers: HTTPHeaders
  var body: String
}

func raw(
  _ method: HTTPMethod,
  _ client: ConsulClient,
  _ pathAndQuery: String,
  body: String? = nil
) async throws -> RawResponse {
  var request = HTTPClientRequest(
    url: "\(client.configuration.address.absoluteString)\(pathAndQuery)"
  )
  request.method = method
  if let body {
    request.body = .bytes(ByteBuffer(string: body))
  }
  let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
  let bytes = try await response.body.collect(upTo: 16 * 1024 * 1024)
  return RawResponse(
    status: Int(response.status.code),
    headers: response.headers,
    body: String(buffer: bytes)
  )
}
