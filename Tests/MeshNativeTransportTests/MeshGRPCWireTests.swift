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
import NIOCore
import Testing

@testable import MeshNativeTransport

@Suite("gRPC's wire format on the native transport")
struct MeshGRPCWireTests {
  @Test(
    "grpc-timeout: at most 8 digits, the finest unit that holds it, rounded up; past Int64 nanoseconds, their maximum",
    arguments: [
      (Duration.nanoseconds(1), "1n"), (.nanoseconds(99_999_999), "99999999n"),
      (.milliseconds(100), "100000u"), (.seconds(1), "1000000u"), (.seconds(100), "100000m"),
      (.seconds(100_000), "100000S"), (.seconds(100_000_000), "1666667M"),
      (.seconds(1_000_000_000_000), "2562048H"), (.zero, "1n"), (.seconds(-5), "1n"),
      (.nanoseconds(100_000_001), "100001u"),
    ]
  )
  func timeoutEncoding(duration: Duration, text: String) {
    #expect(MeshGRPCWire.encodeTimeout(duration) == text)
  }

  @Test(
    "grpc-timeout decoding; malformed values are nil",
    arguments: [
      ("1n", Duration.nanoseconds(1)), ("5S", .seconds(5)), ("2M", .seconds(120)),
      ("1H", .seconds(3600)), ("100m", .milliseconds(100)), ("7u", .microseconds(7)),
      ("", nil), ("S", nil), ("123456789S", nil), ("-1S", nil), ("1x", nil), ("1.5S", nil),
    ] as [(String, Duration?)]
  )
  func timeoutDecoding(text: String, duration: Duration?) {
    #expect(MeshGRPCWire.decodeTimeout(text[...]) == duration)
  }

  @Test(
    "The request's grpc-timeout: the nearer of the options' and the metadata's (grpc-swift's executors and the mesh put the time left there); one that does not parse is not sent",
    arguments: [
      (nil, nil, nil), (Duration.seconds(60), nil, "60000000u"), (.seconds(60), "2S", "2000000u"),
      (.seconds(1), "5S", "1000000u"), (nil, "250m", "250000u"), (nil, "soon", nil),
      (.seconds(3), "99999999999H", "3000000u"),
    ] as [(Duration?, String?, String?)]
  )
  func requestTimeout(options: Duration?, metadata value: String?, sent: String?) throws {
    var metadata: Metadata = ["x-trace": "1"]
    if let value { metadata.addString(value, forKey: "grpc-timeout") }
    let headers = try MeshGRPCWire.requestHeaders(
      path: "/svc/Method",
      scheme: "http",
      authority: "example:1",
      timeout: options,
      metadata: metadata
    )
    #expect(headers.values(named: "grpc-timeout") == (sent.map { [$0] } ?? []))
    #expect(headers.values(named: "x-trace") == ["1"])
  }

  @Test(
    "grpc-message round-trips through percent-encoding; bad escapes stay as they are",
    arguments: ["plain", "100%", "ünï\ncode\r", "%", "tab\there", ""]
  )
  func messageEncoding(message: String) {
    let encoded = MeshGRPCWire.encodeMessage(message)
    #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7e })
    #expect(MeshGRPCWire.decodeMessage(encoded) == message)
    #expect(MeshGRPCWire.decodeMessage("50%zz%4") == "50%zz%4")
  }

  @Test("Binary metadata: base64 with or without padding, several values; garbage refused")
  func binaryMetadata() {
    var metadata = Metadata()
    #expect(MeshGRPCWire.addReceived(name: "a-bin", value: "AAEC", to: &metadata))
    #expect(MeshGRPCWire.addReceived(name: "b-bin", value: "AAE", to: &metadata))
    #expect(MeshGRPCWire.addReceived(name: "c-bin", value: "AA==,AQ", to: &metadata))
    #expect(Array(metadata[binaryValues: "a-bin"]) == [[0, 1, 2]])
    #expect(Array(metadata[binaryValues: "b-bin"]) == [[0, 1]])
    #expect(Array(metadata[binaryValues: "c-bin"]) == [[0], [1]])
    #expect(!MeshGRPCWire.addReceived(name: "d-bin", value: "!!!", to: &metadata))
    #expect(!MeshGRPCWire.addReceived(name: "e-bin", value: "A", to: &metadata))
  }

  @Test("Metadata a header cannot carry is refused; the transport's own headers are skipped")
  func outgoingMetadata() throws {
    var headers = MeshHTTP2Headers()
    try headers.add(metadata: ["x-ok": "fine", "te": "gzip", "content-type": "text/plain"])
    #expect(headers.count == 1)
    for bad: Metadata in [["x-bad": "a\r\nb"], ["Bad Key": "v"], ["": "v"], [":path": "/"]] {
      #expect(throws: MeshHTTP2Error.self) { try headers.add(metadata: bad) }
    }
  }

  @Test("Messages split anywhere across DATA frames come out whole, in order")
  func deframing() throws {
    var wire = ByteBuffer()
    let messages: [[UInt8]] = [[], [1], Array(repeating: 7, count: 70_000), [2, 3]]
    for message in messages { MeshGRPCWire.frame(message, into: &wire) }
    let bytes = Array(wire.readableBytesView)
    for chunk in [1, 2, 5, 4096, bytes.count] {
      var deframer = MeshGRPCDeframer(maxMessageBytes: 1 << 20, allocator: .init())
      var received: [[UInt8]] = []
      var offset = 0
      while offset < bytes.count {
        let end = min(offset + chunk, bytes.count)
        bytes[offset..<end].withUnsafeBytes { deframer.append($0) }
        while let message = try deframer.next(as: [UInt8].self) { received.append(message) }
        offset = end
      }
      #expect(received == messages, "chunks of \(chunk)")
      #expect(deframer.pendingBytes == 0)
    }
  }

  @Test("A message over the limit, a compressed one, a bad flag: errors, never a trap")
  func deframingErrors() {
    for (prefix, code) in [
      ([0, 0, 0x10, 0, 1] as [UInt8], RPCError.Code.resourceExhausted),
      ([1, 0, 0, 0, 1], .internalError), ([9, 0, 0, 0, 0], .internalError),
      ([0, 0xff, 0xff, 0xff, 0xff], .resourceExhausted),
    ] {
      var deframer = MeshGRPCDeframer(maxMessageBytes: 1 << 20, allocator: .init())
      prefix.withUnsafeBytes { deframer.append($0) }
      let error = #expect(throws: MeshHTTP2Error.self) { try deframer.next(as: [UInt8].self) }
      #expect(error?.code == code)
    }
  }

  @Test("Connectivity: waiters wait while connecting, fail without waitForReady after a failure")
  func connectivity() {
    final class Connection {}
    var state = MeshNativeConnectivity<Connection, String>()
    guard case .wait = state.admit(id: 1, waiter: "patient", waitForReady: true) else {
      Issue.record("an RPC before the first connection waits")
      return
    }
    let connecting = state.connecting()
    #expect(connecting)
    guard case .wait = state.admit(id: 2, waiter: "hasty", waitForReady: false) else {
      Issue.record("an RPC while connecting waits, with or without waitForReady")
      return
    }
    let failing = state.failed(MeshHTTP2Error(.unavailable, "refused"))
    #expect(failing == ["hasty"])
    if case .fail(let error) = state.admit(id: 3, waiter: "hasty", waitForReady: false) {
      #expect(error.message == "refused")
    } else {
      Issue.record("after a failure, an RPC without waitForReady fails at once")
    }
    let reconnecting = state.connecting()
    #expect(reconnecting)
    let connection = Connection()
    #expect(state.ready(connection) == ["patient"])
    guard case .use(let used) = state.admit(id: 4, waiter: "next", waitForReady: false) else {
      Issue.record("a ready connection is used at once")
      return
    }
    #expect(used === connection)
    // Another connection's loss changes nothing; this one's makes RPCs wait again.
    state.lost(Connection())
    guard case .use = state.admit(id: 5, waiter: "next", waitForReady: false) else {
      Issue.record("still ready")
      return
    }
    state.lost(connection)
    guard case .wait = state.admit(id: 6, waiter: "later", waitForReady: true) else {
      Issue.record("waits for the next connection")
      return
    }
    #expect(state.withdraw(id: 6) == "later")
    #expect(state.withdraw(id: 6) == nil)
    _ = state.admit(id: 7, waiter: "last", waitForReady: true)
    let (current, failed) = state.shutDown()
    #expect(current == nil)
    #expect(failed == ["last"])
    let connectingAfterShutdown = state.connecting()
    #expect(!connectingAfterShutdown)
  }
}
