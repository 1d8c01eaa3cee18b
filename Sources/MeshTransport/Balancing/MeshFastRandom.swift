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

/// A fast pseudo-random generator (xoshiro256**) for load balancing, seeded from the system's
/// generator. Picks need statistical spread, not secrecy; the system generator costs a system
/// call per draw, and P2C draws two or three times per RPC.
public struct MeshFastRandom: RandomNumberGenerator, Sendable {
  private var state: (UInt64, UInt64, UInt64, UInt64)

  /// Seeded from the system's generator.
  public init() {
    var system = SystemRandomNumberGenerator()
    self.init(seed: system.next())
  }

  /// Seeded deterministically (SplitMix64 expands the seed), for reproducible tests.
  public init(seed: UInt64) {
    var splitMix = seed
    func next() -> UInt64 {
      splitMix &+= 0x9E37_79B9_7F4A_7C15
      var z = splitMix
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    self.state = (next(), next(), next(), next())
  }

  public mutating func next() -> UInt64 {
    let result = Self.rotate(self.state.1 &* 5, 7) &* 9
    let shifted = self.state.1 << 17
    self.state.2 ^= self.state.0
    self.state.3 ^= self.state.1
    self.state.1 ^= self.state.2
    self.state.0 ^= self.state.3
    self.state.2 ^= shifted
    self.state.3 = Self.rotate(self.state.3, 45)
    return result
  }

  private static func rotate(_ value: UInt64, _ count: UInt64) -> UInt64 {
    (value << count) | (value >> (64 - count))
  }
}
