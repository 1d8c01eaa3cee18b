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
import GRPCInProcessTransport
import MeshHealth
import MeshProto
import SwiftProtobuf
import Testing

/// A health client as any generated client would use it.
typealias HealthClient = Grpc_Health_V1_Health.Client<InProcessTransport.Client>

/// Runs `body` with a client connected to a server that hosts `health`, in process.
func withInProcessHealthServer(
  _ health: MeshHealthService,
  _ body: (HealthClient) async throws -> Void
) async throws {
  let transport = InProcessTransport()
  try await withGRPCServer(transport: transport.server, services: [health]) { _ in
    try await withGRPCClient(transport: transport.client) { client async throws in
      try await body(HealthClient(wrapping: client))
    }
  }
}

extension HealthClient {
  func check(_ service: String) async throws -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
    try await self.check(.with { $0.service = service }).status
  }
}

@Suite("MeshHealthService", .timeLimit(.minutes(2)))
struct MeshHealthServiceTests {
  @Test("Check reports the whole server, known services, and NOT_FOUND for unknown ones")
  func check() async throws {
    let health = MeshHealthService()
    health.setServing(service: "up")
    health.setNotServing(service: "down")

    try await withInProcessHealthServer(health) { client async throws in
      #expect(try await client.check("") == .serving)
      #expect(try await client.check("up") == .serving)
      #expect(try await client.check("down") == .notServing)

      let error = await #expect(throws: RPCError.self) { try await client.check("missing") }
      #expect(error?.code == .notFound)

      health.setNotServing()
      #expect(try await client.check("") == .notServing)
      health.setStatus(.serving, for: "")
      #expect(try await client.check("") == .serving)

      health.clearStatus(for: "up")
      let cleared = await #expect(throws: RPCError.self) { try await client.check("up") }
      #expect(cleared?.code == .notFound)
    }
  }

  @Test("Watch sends the current status, then each change once, in order")
  func watchSendsChanges() async throws {
    let health = MeshHealthService()
    health.setServing(service: "svc")

    try await withInProcessHealthServer(health) { client async throws in
      try await client.watch(.with { $0.service = "svc" }) { response async throws in
        var messages = response.messages.makeAsyncIterator()
        #expect(try await messages.next()?.status == .serving)

        health.setServing(service: "svc")  // not a change: nothing is sent
        health.setNotServing(service: "svc")
        #expect(try await messages.next()?.status == .notServing)
        health.setServing(service: "svc")
        #expect(try await messages.next()?.status == .serving)
        health.clearStatus(for: "svc")
        #expect(try await messages.next()?.status == .serviceUnknown)
      }
    }
    #expect(health.watcherCount == 0)
  }

  @Test("Watch of an unknown service sends SERVICE_UNKNOWN, stays open, and does not register it")
  func watchUnknownService() async throws {
    let health = MeshHealthService()

    try await withInProcessHealthServer(health) { client async throws in
      try await client.watch(.with { $0.service = "later" }) { response async throws in
        var messages = response.messages.makeAsyncIterator()
        #expect(try await messages.next()?.status == .serviceUnknown)

        // Watching did not make the service known to Check or List.
        let error = await #expect(throws: RPCError.self) { try await client.check("later") }
        #expect(error?.code == .notFound)
        let listed = try await client.list(.init()).statuses
        #expect(listed.keys.sorted() == [""])

        // The stream is still open: the service's first status arrives on it.
        health.setServing(service: "later")
        #expect(try await messages.next()?.status == .serving)
      }
    }
  }

  @Test("List returns every known service")
  func list() async throws {
    let health = MeshHealthService()
    health.setServing(service: "a")
    health.setNotServing(service: "b")

    try await withInProcessHealthServer(health) { client async throws in
      let statuses = try await client.list(.init()).statuses.mapValues(\.status)
      #expect(statuses == ["": .serving, "a": .serving, "b": .notServing])
    }
  }

  @Test("List fails with RESOURCE_EXHAUSTED past 100 services")
  func listLimit() async throws {
    let health = MeshHealthService()
    for index in 1..<100 {  // 99 services plus "" is exactly the limit
      health.setServing(service: "svc-\(index)")
    }

    try await withInProcessHealthServer(health) { client async throws in
      #expect(try await client.list(.init()).statuses.count == 100)

      health.setServing(service: "one-too-many")
      let error = await #expect(throws: RPCError.self) { try await client.list(.init()) }
      #expect(error?.code == .resourceExhausted)

      health.clearStatus(for: "one-too-many")
      #expect(try await client.list(.init()).statuses.count == 100)
    }
  }

  @Test("The terminal state drains: every service NOT_SERVING, watchers told, updates ignored")
  func terminalState() async throws {
    let health = MeshHealthService()
    health.setServing(service: "svc")

    try await withInProcessHealthServer(health) { client async throws in
      try await client.watch(.with { $0.service = "svc" }) { response async throws in
        var messages = response.messages.makeAsyncIterator()
        #expect(try await messages.next()?.status == .serving)

        health.enterTerminalState()
        #expect(try await messages.next()?.status == .notServing)

        health.setServing(service: "svc")
        health.setServing()
        health.clearStatus(for: "svc")
        health.setServing(service: "new")
        #expect(try await client.check("svc") == .notServing)
        #expect(try await client.check("") == .notServing)
        let error = await #expect(throws: RPCError.self) { try await client.check("new") }
        #expect(error?.code == .notFound)
      }
    }
    #expect(health.status(of: "svc") == .notServing)
  }

  @Test("One change reaches 1,000 open Watch RPCs")
  func manyWatchers() async throws {
    let health = MeshHealthService()
    health.setServing(service: "svc")
    let watchers = 1_000

    try await withInProcessHealthServer(health) { client async throws in
      try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<watchers {
          group.addTask {
            try await client.watch(.with { $0.service = "svc" }) { response async throws in
              var messages = response.messages.makeAsyncIterator()
              #expect(try await messages.next()?.status == .serving)
              #expect(try await messages.next()?.status == .notServing)
            }
          }
        }
        await health.waitForWatcherCount(watchers)
        health.setNotServing(service: "svc")
        try await group.waitForAll()
      }
    }
    // The in-process transport ends open RPCs only when the server shuts down: that shutdown did
    // not hang on the open Watch streams, and it left no watcher behind.
    #expect(health.watcherCount == 0)
  }
}
