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
import GRPCCore
import Greeter
import MeshClient
import SwiftProtobuf

// A mesh client of the greeter: it finds the instances of the service "greeter" in Consul,
// balances over those passing their checks, and calls over mTLS, configured by the environment
// (and MESH_CONFIG_FILE):
//
//   MESH_SERVICE_NAME=greeter-client MESH_CERTS_DIR=certs CONSUL_HTTP_ADDR=127.0.0.1:8500 \
//     swift run --package-path Examples greeter-client [name]
//
// It greets three times (unary), streams three greetings, and chats (bidirectional streaming).

let name = CommandLine.arguments.dropFirst().first ?? "world"
func show(_ method: String, _ reply: Greeter_V1_HelloReply) {
  print("\(method): \(reply.message) (served by \(reply.servedBy), who saw \(reply.caller))")
}
do {
  try await withMeshClient(try MeshClientConfiguration.fromEnvironment()) { mesh in
    let greeter = Greeter_V1_Greeter.Client(wrapping: try mesh.client(for: "greeter"))
    for _ in 0..<3 {
      show("SayHello", try await greeter.sayHello(.with { $0.name = name }))
    }
    let stream = Greeter_V1_StreamHellosRequest.with {
      $0.name = name
      $0.count = 3
      $0.intervalMs = 100
    }
    try await greeter.streamHellos(stream) { response in
      for try await reply in response.messages { show("StreamHellos", reply) }
    }
    try await greeter.chat { writer in
      for friend in ["Ada", "Grace", "Linus"] {
        try await writer.write(.with { $0.name = friend })
      }
    } onResponse: { response in
      for try await reply in response.messages { show("Chat", reply) }
    }
  }
} catch {
  FileHandle.standardError.write(Data("greeter-client: \(error)\n".utf8))
  exit(1)
}
