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
import GRPCNIOTransportHTTP2Posix
import MeshHealth
import MeshProto
import SwiftProtobuf

// A server that hosts the grpc.health.v1 service, and a client that uses it the way a load
// balancer, Consul or a Kubernetes probe would: Check, List, and a Watch that sees every change.

let service = "demo.Echo"

typealias HealthClient = Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>

/// Calls Check and prints what it answered, status or error.
func check(_ client: HealthClient, _ name: String) async {
  do {
    let response = try await client.check(.with { $0.service = name })
    print("client: Check(\"\(name)\") -> \(response.status)")
  } catch let error as RPCError {
    print("client: Check(\"\(name)\") -> \(error.code)")
  } catch {
    print("client: Check(\"\(name)\") -> \(error)")
  }
}

// The server side: these are the lines a service adds at start-up.
let health = MeshHealthService()
let serverTransport = HTTP2ServerTransport.Posix(
  address: .ipv4(host: "127.0.0.1", port: 0),
  transportSecurity: .plaintext
)

try await withGRPCServer(transport: serverTransport, services: [health]) { server in
  guard let port = try await serverTransport.listeningAddress.ipv4?.port else {
    fatalError("the server did not bind an IPv4 address")
  }
  print("server: listening on 127.0.0.1:\(port); \"\" is SERVING, \(service) is not known yet")

  // The client side: any grpc.health.v1 client works; here, the generated Swift one.
  let clientTransport = try HTTP2ClientTransport.Posix(
    target: .ipv4(address: "127.0.0.1", port: port),
    transportSecurity: .plaintext
  )
  try await withGRPCClient(transport: clientTransport) { grpcClient in
    let client = Grpc_Health_V1_Health.Client(wrapping: grpcClient)

    await check(client, "")
    await check(client, service)

    try await client.watch(.with { $0.service = service }) { response in
      var updates = response.messages.makeAsyncIterator()
      func next() async throws {
        if let message = try await updates.next() {
          print("client: Watch(\"\(service)\") -> \(message.status)")
        }
      }

      try await next()  // SERVICE_UNKNOWN: the stream stays open until the service is known

      print("server: setServing(service: \"\(service)\")")
      health.setServing(service: service)
      try await next()

      print("server: setNotServing(service: \"\(service)\")")
      health.setNotServing(service: service)
      try await next()
      await check(client, service)

      print("server: setServing(service: \"\(service)\")")
      health.setServing(service: service)
      try await next()

      let list = try await client.list(.init())
      let statuses = list.statuses.sorted { $0.key < $1.key }
        .map { "\"\($0.key)\": \($0.value.status)" }
      print("client: List -> [\(statuses.joined(separator: ", "))]")

      print("server: enterTerminalState() (draining before shutdown)")
      health.enterTerminalState()
      try await next()
    }
    await check(client, "")
  }

  print("server: shutting down")
  server.beginGracefulShutdown()
}
print("done: open watchers = \(health.watcherCount)")
