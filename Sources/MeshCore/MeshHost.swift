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

#if canImport(Glibc)
  internal import Glibc
#elseif canImport(Musl)
  internal import Musl
#elseif canImport(Darwin)
  internal import Darwin
#endif

/// A host from outside (a registry, a flag, a check definition), classified and validated
/// before anything hands it to NIO or grpc-swift.
///
/// The one place that decides whether text is an IPv4 address, an IPv6 address or a DNS name.
/// IPv4 is strict dotted decimal (four parts 0–255, no leading zeros, no sign: `1.2.3.04` and
/// `+127.0.0.1` are refused, as Go's `net.ParseIP` refuses them); IPv6 is RFC 4291 text (an
/// optional `[...]` is removed, a zone is refused); a DNS name is RFC 1123 labels of letters,
/// digits and hyphens (1–63 bytes each, at most 253 in all), whose last label is not all
/// digits, so that nothing that looks like an address is resolved as a name.
public enum MeshHost: Hashable, Sendable, CustomStringConvertible {
  /// An IPv4 address in strict dotted decimal.
  case ipv4(String)
  /// An IPv6 address in RFC 4291 text, without brackets or zone.
  case ipv6(String)
  /// A DNS name: labels of letters, digits, `-` and `_`, the last one not all digits.
  case dns(String)

  /// Classifies and validates `text`.
  ///
  /// - Throws: ``MeshInputError`` (``MeshInputError/Code/invalid``) naming `field`.
  public init(_ text: some StringProtocol, field: String = "") throws(MeshInputError) {
    var text = String(text)
    if text.hasPrefix("[") && text.hasSuffix("]") && text.utf8.count > 2 {
      text = String(text.dropFirst().dropLast())
      guard Self.isIPv6(text) else { throw Self.invalid(text, field: field) }
      self = .ipv6(text)
      return
    }
    if Self.isIPv4(text) {
      self = .ipv4(text)
    } else if text.contains(":") {
      guard Self.isIPv6(text) else { throw Self.invalid(text, field: field) }
      self = .ipv6(text)
    } else if Self.isDNSName(text) {
      self = .dns(text)
    } else {
      throw Self.invalid(text, field: field)
    }
  }

  /// The host as text (IPv6 without brackets).
  public var text: String {
    switch self {
    case .ipv4(let text), .ipv6(let text), .dns(let text): return text
    }
  }

  /// `host:port`, with IPv6 in brackets.
  public func authority(port: Int) -> String {
    switch self {
    case .ipv6(let text): return "[\(text)]:\(port)"
    case .ipv4(let text), .dns(let text): return "\(text):\(port)"
    }
  }

  /// The host as text, as ``text`` writes it (IPv6 without brackets).
  public var description: String { self.text }

  /// The address in network byte order (4 bytes for IPv4, 16 for IPv6), as an X.509 IP address
  /// SAN holds it; nil for a DNS name.
  public var addressBytes: [UInt8]? {
    switch self {
    case .ipv4(let text):
      return Self.parseIPv4(text.utf8[...])
    case .ipv6(let text):
      var address = in6_addr()
      // The text was validated as RFC 4291 already; the system's parser gives its bytes.
      guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
      return withUnsafeBytes(of: &address) { Array($0) }
    case .dns:
      return nil
    }
  }

  /// Splits `host:port` (`[v6]:port` for IPv6) and validates both; port 0 ("any free port",
  /// for an address to listen on) only with `allowingPortZero`.
  public static func parseAuthority(
    _ text: some StringProtocol,
    field: String = "",
    allowingPortZero: Bool = false
  ) throws(MeshInputError) -> (host: MeshHost, port: Int) {
    let text = String(text)
    let hostPart: Substring
    let portPart: Substring
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":")
      else {
        throw MeshInputError(
          code: .invalid,
          field: field,
          message: "expected host:port or [ipv6]:port, not \(MeshInput.quoted(text))"
        )
      }
      hostPart = text[...close]
      portPart = text[text.index(close, offsetBy: 2)...]
    } else {
      guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
        throw MeshInputError(
          code: .invalid,
          field: field,
          message: "expected host:port or [ipv6]:port, not \(MeshInput.quoted(text))"
        )
      }
      hostPart = text[..<colon]
      portPart = text[text.index(after: colon)...]
    }
    let host = try MeshHost(hostPart, field: field)
    if allowingPortZero, portPart == "0" { return (host, 0) }
    let port = try MeshInput.port(portPart, field: field)
    return (host, port)
  }

  // MARK: - Grammar

  static func isIPv4(_ text: String) -> Bool {
    Self.parseIPv4(Substring(text).utf8[...]) != nil
  }

  /// The four octets of strict dotted-decimal IPv4.
  private static func parseIPv4(_ bytes: Substring.UTF8View.SubSequence) -> [UInt8]? {
    var octets: [UInt8] = []
    var value = 0
    var digits = 0
    var leadingZero = false
    for byte in bytes {
      if byte == UInt8(ascii: ".") {
        guard digits > 0, octets.count < 3 else { return nil }
        octets.append(UInt8(value))
        value = 0
        digits = 0
        leadingZero = false
      } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
        guard !leadingZero, digits < 3 else { return nil }
        if digits == 0 && byte == UInt8(ascii: "0") { leadingZero = true }
        value = value * 10 + Int(byte - UInt8(ascii: "0"))
        digits += 1
        guard value <= 255 else { return nil }
      } else {
        return nil
      }
    }
    guard digits > 0, octets.count == 3 else { return nil }
    octets.append(UInt8(value))
    return octets
  }

  static func isIPv6(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty, bytes.count <= 45 else { return false }
    // Split on "::" at most once.
    var groups = 0
    var sawDoubleColon = false
    var index = 0
    if bytes.starts(with: [0x3A, 0x3A]) {
      sawDoubleColon = true
      index = 2
      if index == bytes.count { return true }  // "::"
    } else if bytes.first == 0x3A {
      return false
    }
    while index < bytes.count {
      // One group: 1–4 hex digits, or a trailing IPv4 address.
      let start = index
      while index < bytes.count, Self.isHex(bytes[index]) { index += 1 }
      if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
        // An embedded IPv4 address ends the address and counts as two groups.
        let tail = Substring(decoding: bytes[start...], as: UTF8.self)
        guard Self.parseIPv4(tail.utf8[...]) != nil else { return false }
        groups += 2
        index = bytes.count
        break
      }
      let length = index - start
      guard length >= 1, length <= 4 else { return false }
      groups += 1
      if index == bytes.count { break }
      guard bytes[index] == 0x3A else { return false }
      index += 1
      if index < bytes.count, bytes[index] == 0x3A {
        guard !sawDoubleColon else { return false }
        sawDoubleColon = true
        index += 1
        if index == bytes.count { break }
      } else if index == bytes.count {
        return false  // a trailing single colon
      }
    }
    return sawDoubleColon ? groups <= 7 : groups == 8
  }

  static func isDNSName(_ text: String) -> Bool {
    var bytes = Array(text.utf8)
    if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }  // a fully qualified name
    guard !bytes.isEmpty, bytes.count <= 253 else { return false }
    let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    for label in labels {
      guard !label.isEmpty, label.count <= 63 else { return false }
      guard label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else { return false }
      for byte in label {
        let isLetter =
          (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
          || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        let isDigit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        guard isLetter || isDigit || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") else {
          return false
        }
      }
    }
    // An all-numeric last label is an address someone mistyped (`1.2.3.04`), not a name.
    if let last = labels.last,
      last.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
    {
      return false
    }
    return true
  }

  private static func isHex(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
      || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
      || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
  }

  private static func invalid(_ text: String, field: String) -> MeshInputError {
    MeshInputError(
      code: .invalid,
      field: field,
      message: "\(MeshInput.quoted(text)) is not an IPv4 address, an IPv6 address or a DNS name"
    )
  }
}
