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

import Testing

@testable import MeshNativeTransport

@Suite("A server's policing of its clients' pings (gRFC A8)")
struct PingStrikesTests {
  let start = ContinuousClock.now

  /// Tells `pings` of a ping `second` seconds in: true if that is too many.
  func ping(_ pings: inout MeshNativePingStrikes, at second: Int, callsOpen: Bool) -> Bool {
    pings.received(at: self.start.advanced(by: .seconds(second)), callsOpen: callsOpen)
  }

  @Test(
    "With calls open: pings at the permitted interval never strike; the third early one is too many"
  )
  func withCalls() {
    var pings = MeshNativePingStrikes(.init(minInterval: .seconds(10)))
    for second in stride(from: 0, through: 100, by: 10) {
      #expect(!self.ping(&pings, at: second, callsOpen: true))
    }
    #expect(pings.strikes == 0)
    // Early pings: two strikes are tolerated, the third is too many.
    #expect(!self.ping(&pings, at: 101, callsOpen: true))
    #expect(!self.ping(&pings, at: 102, callsOpen: true))
    #expect(pings.strikes == 2)
    #expect(self.ping(&pings, at: 103, callsOpen: true))
  }

  @Test("An early ping does not move the interval: the next permitted one counts from the last")
  func earlyPingsDoNotMoveTheInterval() {
    var pings = MeshNativePingStrikes(.init(minInterval: .seconds(10)))
    #expect(!self.ping(&pings, at: 0, callsOpen: true))
    #expect(!self.ping(&pings, at: 9, callsOpen: true))  // a strike
    #expect(!self.ping(&pings, at: 10, callsOpen: true))  // permitted: 10 s after 0
    #expect(pings.strikes == 1)
  }

  @Test("Headers or data sent to the client clear the strikes and the last ping")
  func resetBySending() {
    var pings = MeshNativePingStrikes(.init(minInterval: .seconds(300)))
    #expect(!self.ping(&pings, at: 0, callsOpen: true))
    #expect(!self.ping(&pings, at: 1, callsOpen: true))
    #expect(!self.ping(&pings, at: 2, callsOpen: true))
    pings.reset()
    #expect(pings.strikes == 0)
    // The next ping is the first again: permitted, and the two after it are tolerated.
    #expect(!self.ping(&pings, at: 3, callsOpen: true))
    #expect(!self.ping(&pings, at: 4, callsOpen: true))
    #expect(!self.ping(&pings, at: 5, callsOpen: true))
    #expect(self.ping(&pings, at: 6, callsOpen: true))
  }

  @Test("Without calls: two hours apart, unless pings without calls are permitted")
  func withoutCalls() {
    var strict = MeshNativePingStrikes(.init(minInterval: .seconds(10)))
    #expect(!self.ping(&strict, at: 0, callsOpen: false))
    #expect(!self.ping(&strict, at: 60, callsOpen: false))
    #expect(strict.strikes == 1)
    #expect(!self.ping(&strict, at: 7200, callsOpen: false))
    #expect(strict.strikes == 1)

    var lenient = MeshNativePingStrikes(.init(minInterval: .seconds(10), withoutCalls: true))
    for second in stride(from: 0, through: 60, by: 10) {
      #expect(!self.ping(&lenient, at: second, callsOpen: false))
    }
    #expect(lenient.strikes == 0)
  }
}
