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

import MeshCore
import PropertyBased
import Testing

/// Any Int64 count of nanoseconds, at every magnitude: a uniform Int64 is almost always
/// centuries long, so a random right shift spreads the values from nanoseconds to the extremes.
private let anyNanoseconds = zip(Gen.int64(), Gen.int(in: 0...63)).map { value, shift in
  value >> Int64(shift)
}

/// The tokens Go duration text is made of, and a few that it is not.
private let tokens = [
  "0", "1", "2", "5", "9", "00", "10", "999", "9223372036854775807", ".", "+", "-", "h", "m", "s",
  "ms", "us", "µs", "μs", "ns", "x", " ",
]

@Suite("Go duration properties")
struct MeshGoDurationPropertyTests {
  @Test("format then parse gives back every Int64 count of nanoseconds")
  func roundTrip() async {
    await propertyCheck(count: 5_000, input: anyNanoseconds) { nanoseconds throws in
      let duration = Duration.nanoseconds(nanoseconds)
      let text = MeshGoDuration.format(duration)
      #expect(try MeshGoDuration.parse(text) == duration, "\(nanoseconds) formatted as \(text)")
    }
  }

  @Test(
    "format then parse at the edges",
    arguments: [
      Int64.min, Int64.min + 1, -3_600_000_000_001, -1_000_000_000, -999_999, -1, 0, 1, 999,
      1_000, 1_001, 999_999, 1_000_000, 999_999_999, 1_000_000_000, 59_999_999_999,
      60_000_000_000, 3_599_999_999_999, 3_600_000_000_000, Int64.max - 1, Int64.max,
    ]
  )
  func roundTripAtEdges(nanoseconds: Int64) throws {
    let duration = Duration.nanoseconds(nanoseconds)
    #expect(try MeshGoDuration.parse(MeshGoDuration.format(duration)) == duration)
  }

  @Test("A count of nanoseconds parses to itself")
  func nanosecondsText() async {
    await propertyCheck(count: 2_000, input: anyNanoseconds) { nanoseconds throws in
      #expect(try MeshGoDuration.parse("\(nanoseconds)ns") == .nanoseconds(nanoseconds))
    }
  }

  @Test("Parts add up exactly, and a sum past Int64 is out of range")
  func partsAddUp() async {
    let units: [(String, Int64)] = [
      ("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000),
      ("h", 3_600_000_000_000),
    ]
    let count = zip(Gen.int64(in: 0...Int64.max), Gen.int(in: 0...63)).map { value, shift in
      value >> Int64(shift)
    }
    let part = zip(Gen.int(in: 0...(units.count - 1)), count)
    await propertyCheck(count: 2_000, input: part, part) { first, second throws in
      let (firstUnit, firstValue) = (units[first.0], first.1)
      let (secondUnit, secondValue) = (units[second.0], second.1)
      let text = "\(firstValue)\(firstUnit.0)\(secondValue)\(secondUnit.0)"
      let sum =
        UInt128(firstValue) * UInt128(firstUnit.1) + UInt128(secondValue) * UInt128(secondUnit.1)
      if sum <= UInt128(Int64.max) {
        #expect(try MeshGoDuration.parse(text) == .nanoseconds(Int64(sum)), "\(text)")
      } else {
        let error = #expect(throws: MeshInputError.self, "\(text)") {
          try MeshGoDuration.parse(text, field: "TTL")
        }
        #expect(error?.code == .outOfRange)
        #expect(error?.field == "TTL")
      }
    }
  }

  @Test("Any text either parses within 64 bits and survives a round trip, or is refused")
  func anyText() async {
    let text = Gen.int(in: 0...(tokens.count - 1)).array(of: 1...12).map { indexes in
      indexes.map { tokens[$0] }.joined()
    }
    await propertyCheck(count: 5_000, input: text) { text throws in
      let duration: Duration
      do throws(MeshInputError) {
        duration = try MeshGoDuration.parse(text, field: "wait")
      } catch {
        #expect(error.field == "wait")
        return
      }
      #expect(duration >= MeshGoDuration.min && duration <= MeshGoDuration.max)
      #expect(try MeshGoDuration.parse(MeshGoDuration.format(duration)) == duration, "\(text)")
    }
  }
}
