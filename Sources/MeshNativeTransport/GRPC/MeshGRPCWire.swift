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

internal import CMeshNGHTTP2
internal import Foundation
internal import GRPCCore
internal import NIOCore

/// A header block to send: names and values in one buffer, handed to nghttp2 (which copies them).
struct MeshHTTP2Headers {
  private var bytes: [UInt8] = []
  private var fields: [(name: Range<Int>, value: Range<Int>)] = []

  init() {
    self.bytes.reserveCapacity(256)
    self.fields.reserveCapacity(8)
  }

  var count: Int { self.fields.count }

  /// Adds a field; `name` is lower case.
  mutating func add(_ name: String, _ value: String) {
    let nameStart = self.bytes.count
    self.bytes.append(contentsOf: name.utf8)
    let valueStart = self.bytes.count
    self.bytes.append(contentsOf: value.utf8)
    self.fields.append((nameStart..<valueStart, valueStart..<self.bytes.count))
  }

  /// The values of the fields called `name` (lower case), in order.
  func values(named name: String) -> [String] {
    self.fields.compactMap { field in
      guard self.bytes[field.name].elementsEqual(name.utf8) else { return nil }
      return String(decoding: self.bytes[field.value], as: UTF8.self)
    }
  }

  /// Adds `metadata` (binary values in base64), refusing what HTTP/2 cannot carry and what the
  /// transport sets itself.
  mutating func add(metadata: Metadata) throws(MeshHTTP2Error) {
    for (key, value) in metadata {
      let name = key.lowercased()
      guard MeshGRPCWire.isValidName(name) else {
        throw MeshHTTP2Error(
          .internalError,
          "The metadata key '\(key)' is not a valid header name."
        )
      }
      if MeshGRPCWire.reserved.contains(name) { continue }
      let text = value.encoded()
      guard MeshGRPCWire.isValidValue(text) else {
        throw MeshHTTP2Error(
          .internalError,
          "The metadata value of '\(key)' has a character a header cannot carry."
        )
      }
      self.add(name, text)
    }
  }

  /// Calls `body` with nghttp2's view of the fields.
  func withNameValues<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
    self.bytes.withUnsafeBufferPointer { buffer in
      let base = UnsafeMutablePointer(mutating: buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!)
      let nva = self.fields.map { field in
        nghttp2_nv(
          name: base + field.name.lowerBound,
          value: base + field.value.lowerBound,
          namelen: field.name.count,
          valuelen: field.value.count,
          flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
        )
      }
      return nva.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
    }
  }
}

/// gRPC over HTTP/2's wire format (doc/PROTOCOL-HTTP2.md): headers, timeouts, status messages,
/// the length-prefixed messages.
enum MeshGRPCWire {
  /// Headers the transport writes itself: metadata with these names is not sent.
  static let reserved: Set<String> = [
    "content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "user-agent",
    "grpc-status", "grpc-message", "grpc-status-details-bin", "host", "connection",
    "transfer-encoding", "upgrade", "keep-alive", "proxy-connection",
  ]

  static let userAgent = "grpc-swift-mesh-native/1.0"

  /// An HTTP/2 header name: lower-case token characters, not a pseudo-header.
  static func isValidName(_ name: String) -> Bool {
    guard !name.isEmpty else { return false }
    return name.utf8.allSatisfy { byte in
      switch byte {
      case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
        true
      default: false
      }
    }
  }

  /// A header value: no NUL, CR or LF (RFC 9113 §8.2.1).
  static func isValidValue(_ value: String) -> Bool {
    !value.utf8.contains { $0 == 0 || $0 == 0x0a || $0 == 0x0d }
  }

  /// The request's headers.
  static func requestHeaders(
    path: String,
    scheme: String,
    authority: String,
    timeout: Duration?,
    metadata: Metadata
  ) throws(MeshHTTP2Error) -> MeshHTTP2Headers {
    var headers = MeshHTTP2Headers()
    headers.add(":method", "POST")
    headers.add(":scheme", scheme)
    headers.add(":path", path)
    headers.add(":authority", authority)
    headers.add("content-type", "application/grpc")
    headers.add("te", "trailers")
    headers.add("user-agent", Self.userAgent)
    if let timeout = Self.timeout(options: timeout, metadata: metadata) {
      headers.add("grpc-timeout", Self.encodeTimeout(timeout))
    }
    try headers.add(metadata: metadata)
    return headers
  }

  /// The request's timeout: the nearer of the call options' and the `grpc-timeout` in its
  /// metadata, where grpc-swift's executors put the time left before the call's deadline (at
  /// this attempt) and the mesh a propagated deadline or a method's shorter timeout. A value
  /// there that does not parse is not sent.
  static func timeout(options timeout: Duration?, metadata: Metadata) -> Duration? {
    var values = metadata[stringValues: "grpc-timeout"].makeIterator()
    guard let text = values.next(), let fromMetadata = Self.decodeTimeout(Substring(text)) else {
      return timeout
    }
    return timeout.map { min($0, fromMetadata) } ?? fromMetadata
  }

  /// grpc-timeout: at most 8 digits, in the finest unit that holds the duration (rounded up).
  static func encodeTimeout(_ timeout: Duration) -> String {
    let (seconds, attoseconds) = timeout.components
    guard seconds >= 0, attoseconds >= 0 else { return "1n" }
    // Nanoseconds, rounded up; a duration past Int64's nanoseconds (292 years) is the maximum.
    let whole = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    let fraction = (attoseconds + 999_999_999) / 1_000_000_000
    let sum = whole.partialValue.addingReportingOverflow(fraction)
    let total = whole.overflow || sum.overflow ? Int64.max : sum.partialValue
    let units: [(Int64, Character)] = [
      (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"),
      (3_600_000_000_000, "H"),
    ]
    for (size, unit) in units {
      let (quotient, remainder) = total.quotientAndRemainder(dividingBy: size)
      let value = quotient + (remainder > 0 ? 1 : 0)
      if value <= 99_999_999 { return "\(max(value, 1))\(unit)" }
    }
    return "99999999H"
  }

  /// A grpc-timeout value, or nil if malformed.
  static func decodeTimeout(_ text: Substring) -> Duration? {
    guard let unit = text.last, text.count >= 2, text.count <= 9 else { return nil }
    let digits = text.dropLast()
    guard digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int64(digits) else {
      return nil
    }
    switch unit {
    case "n": return .nanoseconds(value)
    case "u": return .microseconds(value)
    case "m": return .milliseconds(value)
    case "S": return .seconds(value)
    case "M": return .seconds(value * 60)
    case "H": return .seconds(value * 3600)
    default: return nil
    }
  }

  /// grpc-message's percent-encoding (printable ASCII except '%' as is).
  static func encodeMessage(_ message: String) -> String {
    var encoded = ""
    encoded.reserveCapacity(message.utf8.count)
    for byte in message.utf8 {
      if byte >= 0x20 && byte <= 0x7e && byte != UInt8(ascii: "%") {
        encoded.unicodeScalars.append(Unicode.Scalar(byte))
      } else {
        encoded += "%"
        encoded += String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
      }
    }
    return encoded
  }

  /// Decodes grpc-message (malformed escapes are kept as they are).
  static func decodeMessage(_ text: String) -> String {
    guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count)
    var iterator = Array(text.utf8)[...]
    while let byte = iterator.popFirst() {
      if byte == UInt8(ascii: "%"), iterator.count >= 2,
        let high = Self.hexValue(iterator[iterator.startIndex]),
        let low = Self.hexValue(iterator[iterator.startIndex + 1])
      {
        bytes.append(high << 4 | low)
        iterator = iterator.dropFirst(2)
      } else {
        bytes.append(byte)
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  private static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }

  /// The status of a response whose HTTP status is not 200 (gRPC's http-grpc-status-mapping).
  static func code(forHTTPStatus status: Int) -> RPCError.Code {
    switch status {
    case 400: .internalError
    case 401: .unauthenticated
    case 403: .permissionDenied
    case 404: .unimplemented
    case 429, 502, 503, 504: .unavailable
    default: .unknown
    }
  }

  /// Adds a received header to `metadata`: binary values decoded from base64 (padded or not).
  /// Returns false for a binary value that is not base64.
  static func addReceived(name: String, value: String, to metadata: inout Metadata) -> Bool {
    if name.hasSuffix("-bin") {
      // Several values may arrive joined by commas.
      for part in value.split(separator: ",", omittingEmptySubsequences: false) {
        var base64 = part.trimmingCharacters(in: .whitespaces)
        let remainder = base64.utf8.count % 4
        if remainder == 1 { return false }
        if remainder > 0 { base64 += String(repeating: "=", count: 4 - remainder) }
        guard let data = Data(base64Encoded: base64) else { return false }
        metadata.addBinary(Array(data), forKey: name)
      }
    } else {
      metadata.addString(value, forKey: name)
    }
    return true
  }

  /// Appends `message` with its 5-byte prefix (uncompressed) to `buffer`.
  static func frame(_ message: some GRPCContiguousBytes, into buffer: inout ByteBuffer) {
    buffer.writeInteger(UInt8(0))
    buffer.writeInteger(UInt32(truncatingIfNeeded: message.count))
    _ = message.withUnsafeBytes { buffer.writeBytes($0) }
  }
}

extension String {
  fileprivate func leftPadded(to width: Int) -> String {
    self.count >= width ? self : String(repeating: "0", count: width - self.count) + self
  }
}

/// Splits a stream's DATA into gRPC messages (doc/PROTOCOL-HTTP2.md, Length-Prefixed-Message).
struct MeshGRPCDeframer {
  private var buffer: ByteBuffer
  let maxMessageBytes: Int

  init(maxMessageBytes: Int, allocator: ByteBufferAllocator) {
    self.buffer = allocator.buffer(capacity: 0)
    self.maxMessageBytes = maxMessageBytes
  }

  /// Bytes received but not yet part of a whole message.
  var pendingBytes: Int { self.buffer.readableBytes }

  mutating func append(_ bytes: UnsafeRawBufferPointer) {
    self.buffer.writeBytes(bytes)
  }

  /// The next whole message, nil if more bytes are needed.
  mutating func next<Bytes: GRPCContiguousBytes>(
    as: Bytes.Type = Bytes.self
  ) throws(MeshHTTP2Error) -> Bytes? {
    guard
      let flag = self.buffer.getInteger(at: self.buffer.readerIndex, as: UInt8.self),
      let length = self.buffer.getInteger(at: self.buffer.readerIndex + 1, as: UInt32.self)
    else { return nil }
    guard flag == 0 else {
      throw MeshHTTP2Error(
        .internalError,
        flag == 1
          ? "The peer sent a compressed message, and no compression was negotiated."
          : "The peer sent a message with an invalid flag (\(flag))."
      )
    }
    let count = Int(length)
    guard count <= self.maxMessageBytes else {
      throw MeshHTTP2Error(
        .resourceExhausted,
        "The peer sent a message of \(count) bytes, over the limit of \(self.maxMessageBytes)."
      )
    }
    guard self.buffer.readableBytes >= 5 + count else { return nil }
    self.buffer.moveReaderIndex(forwardBy: 5)
    var message = Bytes(repeating: 0, count: count)
    message.withUnsafeMutableBytes { destination in
      self.buffer.withUnsafeReadableBytes { source in
        destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source.prefix(count)))
      }
    }
    self.buffer.moveReaderIndex(forwardBy: count)
    if self.buffer.readableBytes == 0 {
      self.buffer.clear()
    } else if self.buffer.readerIndex > 64 * 1024 {
      self.buffer.discardReadBytes()
    }
    return message
  }
}
