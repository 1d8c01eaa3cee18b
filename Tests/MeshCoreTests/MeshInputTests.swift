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
import Testing

@Suite("Go durations")
struct MeshGoDurationTests {
  @Test(
    "Parses as Go does",
    arguments: [
      ("0", Duration.zero), ("+0", .zero), ("-0", .zero), ("10s", .seconds(10)),
      ("1m30s", .seconds(90)), ("1.5h", .seconds(5400)), ("300ms", .milliseconds(300)),
      (".5s", .milliseconds(500)), ("5.s", .seconds(5)), ("1us", .microseconds(1)),
      ("1µs", .microseconds(1)), ("1μs", .microseconds(1)), ("-1.5s", .milliseconds(-1500)),
      ("2562047h47m16.854775807s", .nanoseconds(Int64.max)),
      ("-2562047h47m16.854775808s", .nanoseconds(Int64.min)),
      ("9223372036854775807ns", .nanoseconds(Int64.max)),
      ("0.000000001s", .nanoseconds(1)),
      ("1.0000000000000000000000000001s", .seconds(1)),
    ]
  )
  func parses(text: String, expected: Duration) throws {
    #expect(try MeshGoDuration.parse(text) == expected)
  }

  @Test(
    "Refuses what Go refuses",
    arguments: ["", "+", "-", "s", "1", "1x", "1.s.", ".s", "1 s", "1S", "--1s", "1e3s", "١s"]
  )
  func refusesInvalid(text: String) {
    #expect(throws: MeshInputError.self) { try MeshGoDuration.parse(text, field: "TTL") }
    do {
      _ = try MeshGoDuration.parse(text, field: "TTL")
    } catch {
      #expect(error.code == .invalid)
      #expect(error.field == "TTL")
    }
  }

  @Test(
    "Out of range is an error, never a trap",
    arguments: [
      "2562047h47m16.854775808s", "2562048h", "9223372036854775808ns",
      "-9223372036854775809ns", "99999999999999999999999h", "1e19", "10000000000000000000ns",
      "2562047h47m16.854775807s1ns",
      // Two parts of 2^63 each: their sum passes UInt64.max.
      "9223372036854775808ns9223372036854775808ns",
      "2562047h47m16.854775808s9223372036854775808ns", "-9223372036854775808ns1ns",
    ]
  )
  func refusesOutOfRange(text: String) {
    do {
      _ = try MeshGoDuration.parse(text, field: "wait")
      Issue.record("\(text) parsed")
    } catch {
      #expect(error.field == "wait")
      #expect(error.description.hasPrefix("wait: "))
    }
  }

  @Test(
    "Formats as Go does",
    arguments: [
      (Duration.zero, "0s"), (.nanoseconds(1), "1ns"), (.microseconds(1), "1µs"),
      (.milliseconds(1500), "1.5s"), (.seconds(90), "1m30s"), (.seconds(3600), "1h0m0s"),
      (.nanoseconds(Int64.max), "2562047h47m16.854775807s"), (.milliseconds(-250), "-250ms"),
      (.seconds(Int64.max), "2562047h47m16.854775807s"),
    ]
  )
  func formats(duration: Duration, text: String) {
    #expect(MeshGoDuration.format(duration) == text)
  }
}

@Suite("Checked conversions")
struct MeshInputTests {
  @Test("Doubles at and past 2^63 never reach Int64()")
  func int64Bounds() {
    #expect(MeshInput.int64(truncating: 9_223_372_036_854_775_807.0) == nil)  // that is 2^63
    #expect(MeshInput.int64(truncating: -9_223_372_036_854_775_808.0) == Int64.min)
    #expect(MeshInput.int64(truncating: .infinity) == nil)
    #expect(MeshInput.int64(truncating: .nan) == nil)
    #expect(MeshInput.int64(truncating: 1e19) == nil)
    #expect(MeshInput.int64(truncating: -1e19) == nil)
    #expect(MeshInput.int64(truncating: 1.9) == 1)
  }

  @Test("JSON nanoseconds and seconds become durations or typed errors")
  func durations() throws {
    #expect(try MeshInput.duration(nanoseconds: 1e9, field: "TTL") == .seconds(1))
    #expect(throws: MeshInputError.self) { try MeshInput.duration(nanoseconds: 1e19, field: "TTL") }
    #expect(throws: MeshInputError.self) {
      try MeshInput.duration(nanoseconds: -1e19, field: "TTL")
    }
    #expect(try MeshInput.duration(seconds: 1.5, field: "x") == .milliseconds(1500))
    #expect(throws: MeshInputError.self) { try MeshInput.duration(seconds: 1e308, field: "x") }
    #expect(throws: MeshInputError.self) { try MeshInput.duration(seconds: 1e16, field: "x") }
    #expect(throws: MeshInputError.self) { try MeshInput.duration(seconds: .nan, field: "x") }
    #expect(
      throws: MeshInputError.self
    ) { try MeshInput.duration(seconds: -1, field: "x", in: .zero...MeshGoDuration.max) }
    #expect(try MeshInput.duration("1.5", field: "x", bareSeconds: true) == .milliseconds(1500))
    #expect(try MeshInput.duration("250ms", field: "x", bareSeconds: true) == .milliseconds(250))
    #expect(throws: MeshInputError.self) {
      try MeshInput.duration("1e308", field: "x", bareSeconds: true)
    }
  }

  @Test("Integers from text and numbers are range-checked")
  func integers() throws {
    #expect(try MeshInput.integer("42", field: "n") == 42)
    #expect(try MeshInput.integer("-9223372036854775808", field: "n") == Int64.min)
    #expect(try MeshInput.integer("9223372036854775807", field: "n") == Int64.max)
    for text in ["9223372036854775808", "99999999999999999999999", "", "+1", " 1", "1.0", "0x10"] {
      #expect(throws: MeshInputError.self) { try MeshInput.integer(text, field: "n") }
    }
    #expect(throws: MeshInputError.self) { try MeshInput.integer("0", field: "n", in: 1...10) }
    #expect(throws: MeshInputError.self) { try MeshInput.integer(1.5, field: "n") }
    #expect(throws: MeshInputError.self) { try MeshInput.integer(1e19, field: "n") }
    #expect(try MeshInput.integer(3.0, field: "n", in: 1...10) == 3)
  }

  @Test("Ports are 1 to 65535")
  func ports() throws {
    #expect(try MeshInput.port(8500, field: "Port") == 8500)
    for bad in [0, -1, 65_536, 99_999_999, Int.max, Int.min] {
      #expect(throws: MeshInputError.self) { try MeshInput.port(bad, field: "Port") }
    }
    #expect(try MeshInput.port("443", field: "p") == 443)
    #expect(throws: MeshInputError.self) { try MeshInput.port("65536", field: "p") }
  }

  @Test("Refused values are quoted short")
  func quoting() {
    let long = String(repeating: "x", count: 4_000_000)
    #expect(MeshInput.quoted(long).count < 80)
    #expect(MeshInput.quoted("a\"b\n") == "\"a\\\"b\\u{a}\"")
  }
}

@Suite("Hosts")
struct MeshHostTests {
  @Test(
    "Valid hosts are classified",
    arguments: [
      ("127.0.0.1", MeshHost.ipv4("127.0.0.1")), ("0.0.0.0", .ipv4("0.0.0.0")),
      ("::1", .ipv6("::1")), ("[::1]", .ipv6("::1")), ("fe80::1:2", .ipv6("fe80::1:2")),
      ("::ffff:1.2.3.4", .ipv6("::ffff:1.2.3.4")), ("1:2:3:4:5:6:7:8", .ipv6("1:2:3:4:5:6:7:8")),
      ("localhost", .dns("localhost")), ("greeter.service.consul", .dns("greeter.service.consul")),
      ("node-1.example.com.", .dns("node-1.example.com.")), ("1a.example", .dns("1a.example")),
    ]
  )
  func valid(text: String, expected: MeshHost) throws {
    #expect(try MeshHost(text) == expected)
  }

  @Test(
    "Invalid hosts are refused",
    arguments: [
      "", "1.2.3.04", "+127.0.0.1", "zz:zz:1", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1..2.3",
      ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "fe80::1%eth0", "-a.example", "a b", "a..b",
      "example.123", String(repeating: "a", count: 64), "[1.2.3.4]", "12345::", "::1:",
    ]
  )
  func invalid(text: String) {
    #expect(throws: MeshInputError.self) { try MeshHost(text, field: "Address") }
  }

  @Test("Authorities split and validate both parts")
  func authorities() throws {
    let (host, port) = try MeshHost.parseAuthority("[::1]:8500")
    #expect(host == .ipv6("::1"))
    #expect(port == 8500)
    #expect(try MeshHost.parseAuthority("localhost:1").port == 1)
    for bad in ["localhost", "::1:80", "[::1]", "host:0", "host:99999999", "1.2.3.04:1", ":80"] {
      #expect(throws: MeshInputError.self) { try MeshHost.parseAuthority(bad) }
    }
    #expect(host.authority(port: 1) == "[::1]:1")
  }
}
