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

import Logging
import MeshConsulAgent
import ServiceLifecycle
import Testing

@Suite("Embedded agent's lifecycle", .timeLimit(.minutes(1)))
struct ConsulAgentLifecycleTests {
  @Test("listeningPort answers any number of callers, before and after the agent is bound")
  func listeningPortForEveryone() async throws {
    let agent = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: 0))
    try await withThrowingTaskGroup(of: Void.self) { group in
      async let first = agent.listeningPort
      async let second = agent.listeningPort
      group.addTask { try await agent.run() }
      let (a, b) = try await (first, second)
      #expect(a == b)
      #expect(a > 0)
      #expect(try await agent.listeningPort == a)
      agent.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("A port already in use fails run() and every caller of listeningPort, late ones too")
  func failedBind() async throws {
    let first = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: 0))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await first.run() }
      let port = try await first.listeningPort
      let second = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: port))
      await #expect(throws: (any Error).self) { try await second.run() }
      await #expect(throws: (any Error).self) { try await second.listeningPort }
      await #expect(throws: (any Error).self) { try await second.listeningPort }
      first.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("Every agent setting is reachable from the initialiser; .defaults is Consul's")
  func configuration() {
    let configuration = MeshConsulAgentConfiguration(
      port: 0,
      defaultQueryTime: .seconds(2),
      maxQueryTime: .seconds(3),
      limits: .init(maxRequestBodySize: 1024)
    )
    #expect(configuration.defaultQueryTime == .seconds(2))
    #expect(configuration.maxQueryTime == .seconds(3))
    #expect(configuration.limits.maxRequestBodySize == 1024)
    #expect(configuration.httpsCredentials == nil)
    let defaults = MeshConsulAgentConfiguration.defaults
    #expect(defaults.port == 8500)
    #expect(defaults.defaultQueryTime == .seconds(300))
    #expect(defaults.maxQueryTime == .seconds(600))
  }

  @Test("The agent is a Service: a ServiceGroup's graceful shutdown stops it")
  func serviceGroupShutdown() async throws {
    let agent = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: 0))
    let services = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: [.init(service: agent)],
        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
      )
    )
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await services.run() }
      _ = try await agent.listeningPort
      await services.triggerGracefulShutdown()
      try await group.waitForAll()
    }
  }
}
