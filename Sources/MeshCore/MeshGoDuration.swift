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

/// Go `time.Duration` text (`"10s"`, `"1m30s"`, `"1.5h"`, `"300ms"`), as Consul, Envoy's
/// configuration and the mesh's own flags and files write durations.
///
/// Parsing follows Go's `time.ParseDuration` exactly, byte for byte: a sign, then one or more
/// decimal numbers each with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), or a bare `0`.
/// The value is a signed 64-bit count of nanoseconds, so anything past
/// `2562047h47m16.854775807s` is ``MeshInputError/Code/outOfRange``, never a trap. Formatting is
/// Go's `Duration.String()`, and `parse(format(d)) == d` for every such duration.
public enum MeshGoDuration {
  /// The largest duration Go can represent: `Int64.max` nanoseconds.
  public static let max = Duration.nanoseconds(Int64.max)
  /// The smallest (most negative) duration Go can represent: `Int64.min` nanoseconds.
  public static let min = Duration.nanoseconds(Int64.min)

  /// Parses Go duration text.
  ///
  /// - Parameters:
  ///   - text: The text, as received.
  ///   - field: Where it came from, for the error.
  /// - Throws: ``MeshInputError`` with ``MeshInputError/Code/invalid`` for text that is not a Go
  ///   duration, ``MeshInputError/Code/outOfRange`` past 64 bits of nanoseconds.
  public static func parse(_ text: some StringProtocol, field: String = "") throws(MeshInputError)
    -> Duration
  {
    let bytes = Array(text.utf8)
    var index = 0
    var negative = false
    if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
      negative = first == UInt8(ascii: "-")
      index = 1
    }
    if bytes.count - index == 1 && bytes[index] == UInt8(ascii: "0") { return .zero }
    guard index < bytes.count else { throw self.invalid(text, field: field) }

    let limit: UInt64 = 1 << 63
    var total: UInt64 = 0
    while index < bytes.count {
      let first = bytes[index]
      guard first == UInt8(ascii: ".") || Self.isDigit(first) else {
        throw self.invalid(text, field: field)
      }
      // The whole part: [0-9]*
      var whole: UInt64 = 0
      let wholeStart = index
      while index < bytes.count, Self.isDigit(bytes[index]) {
        guard whole <= limit / 10 else { throw self.outOfRange(text, field: field) }
        whole = whole * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
        guard whole <= limit else { throw self.outOfRange(text, field: field) }
        index += 1
      }
      let hasWhole = index > wholeStart
      // The fraction: (\.[0-9]*)? — digits past what 63 bits hold are read and dropped, as Go
      // does.
      var fraction: UInt64 = 0
      var scale: Double = 1
      var hasFraction = false
      if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
        index += 1
        let fractionStart = index
        var overflowed = false
        while index < bytes.count, Self.isDigit(bytes[index]) {
          if !overflowed {
            if fraction > (limit - 1) / 10 {
              overflowed = true
            } else {
              let next = fraction * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
              if next > limit {
                overflowed = true
              } else {
                fraction = next
                scale *= 10
              }
            }
          }
          index += 1
        }
        hasFraction = index > fractionStart
      }
      guard hasWhole || hasFraction else { throw self.invalid(text, field: field) }
      // The unit: everything up to the next number.
      let unitStart = index
      while index < bytes.count, bytes[index] != UInt8(ascii: "."), !Self.isDigit(bytes[index]) {
        index += 1
      }
      guard index > unitStart, let unit = Self.unit(bytes[unitStart..<index]) else {
        throw self.invalid(text, field: field)
      }
      guard whole <= limit / unit else { throw self.outOfRange(text, field: field) }
      whole *= unit
      if fraction > 0 {
        // fraction < scale, so this is below `unit` (at most an hour of nanoseconds).
        whole += UInt64(Double(fraction) * (Double(unit) / scale))
        guard whole <= limit else { throw self.outOfRange(text, field: field) }
      }
      // Both are at most 2^63, so their sum could pass UInt64.max: check before adding.
      guard whole <= limit - total else { throw self.outOfRange(text, field: field) }
      total += whole
    }
    if negative {
      return total == limit ? Self.min : .nanoseconds(-Int64(total))
    }
    guard total < limit else { throw self.outOfRange(text, field: field) }
    return .nanoseconds(Int64(total))
  }

  /// Formats as Go's `Duration.String()` does (`"10s"`, `"1m30s"`, `"1h0m0s"`, `"1.5s"`,
  /// `"300ms"`, `"0s"`). Sub-nanosecond parts are dropped; durations past Go's range are
  /// clamped to it.
  public static func format(_ duration: Duration) -> String {
    let nanoseconds = MeshInput.nanoseconds(clamping: duration)
    let magnitude = nanoseconds.magnitude
    let sign = nanoseconds < 0 ? "-" : ""
    if magnitude == 0 { return "0s" }
    if magnitude < 1_000 { return "\(sign)\(magnitude)ns" }
    if magnitude < 1_000_000 { return sign + Self.decimal(magnitude, 1_000) + "µs" }
    if magnitude < 1_000_000_000 { return sign + Self.decimal(magnitude, 1_000_000) + "ms" }
    let hours = magnitude / 3_600_000_000_000
    let minutes = (magnitude / 60_000_000_000) % 60
    let seconds = Self.decimal(magnitude % 60_000_000_000, 1_000_000_000)
    if hours > 0 { return "\(sign)\(hours)h\(minutes)m\(seconds)s" }
    if minutes > 0 { return "\(sign)\(minutes)m\(seconds)s" }
    return "\(sign)\(seconds)s"
  }

  private static func decimal(_ value: UInt64, _ unit: UInt64) -> String {
    let whole = value / unit
    let fraction = value % unit
    guard fraction != 0 else { return "\(whole)" }
    let width = String(unit).count - 1
    var digits = String(fraction)
    digits = String(repeating: "0", count: width - digits.count) + digits
    while digits.hasSuffix("0") { digits.removeLast() }
    return "\(whole).\(digits)"
  }

  private static func isDigit(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
  }

  /// Nanoseconds per unit, as Go's `unitMap` (both micro signs included).
  private static func unit(_ bytes: ArraySlice<UInt8>) -> UInt64? {
    switch Array(bytes) {
    case [0x6E, 0x73]: return 1  // ns
    case [0x75, 0x73], [0xC2, 0xB5, 0x73], [0xCE, 0xBC, 0x73]: return 1_000  // us, µs, μs
    case [0x6D, 0x73]: return 1_000_000  // ms
    case [0x73]: return 1_000_000_000  // s
    case [0x6D]: return 60_000_000_000  // m
    case [0x68]: return 3_600_000_000_000  // h
    default: return nil
    }
  }

  private static func invalid(_ text: some StringProtocol, field: String) -> MeshInputError {
    MeshInputError(
      code: .invalid,
      field: field,
      message: "invalid duration \(MeshInput.quoted(text)) (expected Go syntax such as \"10s\", "
        + "\"1m30s\" or \"250ms\")"
    )
  }

  private static func outOfRange(_ text: some StringProtocol, field: String) -> MeshInputError {
    MeshInputError(
      code: .outOfRange,
      field: field,
      message: "duration \(MeshInput.quoted(text)) is out of range (at most "
        + "2562047h47m16.854775807s)"
    )
  }
}
