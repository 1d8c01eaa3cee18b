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

import MeshDiscovery
import MeshTestKit
import Testing

private struct RegistryDown: Error, Equatable {}

@Suite("MeshScriptedDiscovery")
struct ScriptedDiscoveryTests {
  let a = MeshEndpoint(id: "a", host: "127.0.0.1", port: 1)
  let b = MeshEndpoint(id: "b", host: "127.0.0.1", port: 2)

  @Test("A watch starts with the target's list, gets updates, and ends with a scripted failure")
  func updatesAndFailure() async throws {
    let discovery = MeshScriptedDiscovery(["greeter": [self.a]])
    var watch = discovery.watch("greeter").makeAsyncIterator()
    #expect(try await watch.next()?.endpoints == [self.a])
    discovery.update("greeter", endpoints: [self.a, self.b])
    #expect(try await watch.next()?.endpoints == [self.a, self.b])
    discovery.fail("greeter", with: RegistryDown())
    await #expect(throws: RegistryDown()) { _ = try await watch.next() }
    // The next watch works, and starts with the newest list.
    var again = discovery.watch("greeter").makeAsyncIterator()
    #expect(try await again.next()?.endpoints == [self.a, self.b])
    #expect(discovery.watchCount(of: "greeter") == 2)
    #expect(discovery.watchCount(of: "other") == 0)
  }

  @Test("Every watch can be made to fail at once, until the failure is lifted")
  func everyWatchFails() async throws {
    let discovery = MeshScriptedDiscovery()
    discovery.failEveryWatch(of: "greeter", with: RegistryDown())
    for _ in 0..<2 {
      var watch = discovery.watch("greeter").makeAsyncIterator()
      await #expect(throws: RegistryDown()) { _ = try await watch.next() }
    }
    await discovery.waitForWatches(of: "greeter", count: 2)
    discovery.failEveryWatch(of: "greeter", with: nil)
    var watch = discovery.watch("greeter").makeAsyncIterator()
    discovery.update("greeter", endpoints: [self.b])
    #expect(try await watch.next()?.endpoints == [self.b])
  }

  @Test("Waiting for watches resumes when the consumer watches")
  func waitForWatches() async throws {
    let discovery = MeshScriptedDiscovery()
    async let waited: Void = discovery.waitForWatches(of: "greeter", count: 1)
    let watch = discovery.watch("greeter")
    await waited
    #expect(discovery.watchCount(of: "greeter") == 1)
    _ = watch
  }
}
