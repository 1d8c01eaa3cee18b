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
import MeshConsul
import Testing

@Suite("Consul client errors", .timeLimit(.minutes(1)))
struct ConsulClientErrorTests {
  @Test("A refused connection is a typed error that keeps async-http-client's error as its cause")
  func causeIsKept() async throws {
    // async-http-client keeps retrying a refused connection until the request's deadline.
    var configuration = ConsulClientConfiguration(address: URL(string: "http://127.0.0.1:1")!)
    configuration.requestTimeout = .milliseconds(300)
    let client = try ConsulClient(configuration)
    let error = await #expect(throws: MeshConsulError.self) {
      _ = try await client.healthService("greeter")
    }
    #expect(error?.code == .connectionFailed || error?.code == .timeout)
    #expect(error?.cause != nil)
    #expect(error?.isRetryable == true)
    try await client.shutdown()
  }
}
