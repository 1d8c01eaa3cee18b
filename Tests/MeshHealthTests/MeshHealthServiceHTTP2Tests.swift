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
import Testing

/// Behaviour that depends on a real HTTP/2 connection: a client's cancellation reaches the server
/// as RST_STREAM, which the in-process transport does not model.
@Suite("MeshHealthService over HTTP/2", .timeLimit(.minutes(2)))
struct MeshHealthServiceHTTP2Tests {
  @Test("A Watch the caller cancels removes its watcher")
  func cancelledWatchIsRemoved() async throws {
    let health = MeshHealthService()

    try await withLoopbackHealthServer(health) { port in
      try await withLoopbackHealthClient(port: port) { client async throws in
        await withThrowingTaskGroup(of: Void.self) { group in
          for service in ["a", "a", "b"] {
            group.addTask {
              try await client.watch(.with { $0.service = service }) { response in
                for try await _ in response.messages {}
              }
            }
          }
          await health.waitForWatcherCount(3)
          group.cancelAll()
          // Returns once every server handler has removed its watcher; a leak hangs here until
          // the suite's time limit fails the test.
          await health.waitForWatcherCount(0)
          while let _ = try? await group.next() {}
        }

        // Watching still works afterwards, and one finished Watch leaves nothing behind.
        try await client.watch(.with { $0.service = "a" }) { response async throws in
          var messages = response.messages.makeAsyncIterator()
          #expect(try await messages.next()?.status == .serviceUnknown)
          #expect(health.watcherCount == 1)
        }
        await health.waitForWatcherCount(0)
      }
    }
  }

  @Test("Watch over HTTP/2 delivers each change to a Swift client")
  func watchChangesOverHTTP2() async throws {
    let health = MeshHealthService()
    try await withLoopbackHealthServer(health) { port in
      try await withLoopbackHealthClient(port: port) { client async throws in
        try await client.watch(.with { $0.service = "" }) { response async throws in
          var messages = response.messages.makeAsyncIterator()
          #expect(try await messages.next()?.status == .serving)
          health.setNotServing()
          #expect(try await messages.next()?.status == .notServing)
          health.setServing()
          #expect(try await messages.next()?.status == .serving)
        }
      }
    }
  }

  @Test("Stopping the server ends open Watch streams instead of hanging")
  func serverStopEndsWatches() async throws {
    let health = MeshHealthService()
    let transport = HTTP2ServerTransport.Posix(
      address: .ipv4(host: "127.0.0.1", port: 0),
      transportSecurity: .plaintext
    )
    let server = GRPCServer(transport: transport, services: [health])

    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      guard let port = try await transport.listeningAddress.ipv4?.port else {
        Issue.record("no IPv4 address")
        return
      }

      group.addTask {
        try? await withLoopbackHealthClient(port: port) { client in
          try await client.watch(.with { $0.service = "" }) { response in
            for try await _ in response.messages {}
          }
        }
      }
      await health.waitForWatcherCount(1)

      // Drain first, as a service would: health, then the server's graceful shutdown (GOAWAY,
      // the listener closes; the Watch stays open). Then stop hard: the handler must see the RPC
      // cancellation and return, or this group never finishes. Cancelling a NIO server that
      // still listens can leave an accepted connection unserved, which traps in SwiftNIO
      // (apple/swift-nio#3481): CI runs under ThreadSanitizer crashed so.
      health.enterTerminalState()
      server.beginGracefulShutdown()
      group.cancelAll()
      while let _ = try? await group.next() {}
    }
    #expect(health.watcherCount == 0)
  }
}
