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

/// The one checked way to turn a number from outside into a duration, port, count or size.
///
/// Swift traps on `Int64(someDouble)` out of range, on `Duration.seconds(someDouble)` past
/// Int128's attoseconds, and on integer overflow; and `Double(Int64.max)` is 2^63, so a
/// `x <= Double(Int64.max)` check lets 2^63 through. Everything here checks against exact bounds
/// and throws ``MeshInputError`` naming the field instead. Nothing past the edge converts an
/// untrusted number again.
public enum MeshInput {
  /// 2^63 as a `Double`, exactly: the first value that does not fit an `Int64`.
  private static let twoTo63 = 9_223_372_036_854_775_808.0

  // MARK: - Integers

  /// `value` truncated toward zero, if it is finite and fits an `Int64`; else nil.
  public static func int64(truncating value: Double) -> Int64? {
    guard value.isFinite, value >= -Self.twoTo63, value < Self.twoTo63 else { return nil }
    return Int64(value)
  }

  /// An integer from a JSON or YAML number, in `range`.
  ///
  /// - Throws: ``MeshInputError`` when the value is not finite, not whole, or outside `range`.
  public static func integer(
    _ value: Double,
    field: String,
    in range: ClosedRange<Int64> = Int64.min...Int64.max
  ) throws(MeshInputError) -> Int64 {
    if value.isFinite && value.rounded(.towardZero) != value {
      throw MeshInputError(
        code: .invalid,
        field: field,
        message: "must be a whole number, not \(value)"
      )
    }
    guard let whole = Self.int64(truncating: value) else {
      throw Self.outside(range, field: field, got: "\(value)")
    }
    guard range.contains(whole) else { throw Self.outside(range, field: field, got: "\(value)") }
    return whole
  }

  /// An integer written in decimal (a flag, an environment variable, a query parameter), in
  /// `range`. Leading `+`, spaces and other digits are refused.
  public static func integer(
    _ text: some StringProtocol,
    field: String,
    in range: ClosedRange<Int64> = Int64.min...Int64.max
  ) throws(MeshInputError) -> Int64 {
    var bytes = Substring(text).utf8[...]
    let negative = bytes.first == UInt8(ascii: "-")
    if negative { bytes = bytes.dropFirst() }
    guard !bytes.isEmpty, bytes.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
    else {
      throw MeshInputError(
        code: .invalid,
        field: field,
        message: "expected a whole number, not \(Self.quoted(text))"
      )
    }
    var magnitude: UInt64 = 0
    for byte in bytes {
      let (times, o1) = magnitude.multipliedReportingOverflow(by: 10)
      let (sum, o2) = times.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
      guard !o1, !o2, sum <= 1 << 63 else {
        throw Self.outside(range, field: field, got: Self.quoted(text))
      }
      magnitude = sum
    }
    let value: Int64
    if negative {
      value = magnitude == 1 << 63 ? Int64.min : -Int64(magnitude)
    } else {
      guard magnitude < 1 << 63 else {
        throw Self.outside(range, field: field, got: Self.quoted(text))
      }
      value = Int64(magnitude)
    }
    guard range.contains(value) else {
      throw Self.outside(range, field: field, got: Self.quoted(text))
    }
    return value
  }

  /// An `Int` in `range`, from any integer type (a decoded `Int64`, a flag's `Int`).
  public static func integer<T: BinaryInteger>(
    _ value: T,
    field: String,
    in range: ClosedRange<Int>
  ) throws(MeshInputError) -> Int {
    guard let exact = Int(exactly: value), range.contains(exact) else {
      throw Self.outside(range, field: field, got: "\(value)")
    }
    return exact
  }

  // MARK: - Ports

  /// The ports a TCP endpoint can have.
  public static let ports: ClosedRange<Int> = 1...65_535

  /// A TCP port, 1 to 65535.
  public static func port<T: BinaryInteger>(_ value: T, field: String) throws(MeshInputError) -> Int
  {
    guard let port = Int(exactly: value), Self.ports.contains(port) else {
      throw MeshInputError(
        code: .outOfRange,
        field: field,
        message: "port must be 1 to 65535, not \(value)"
      )
    }
    return port
  }

  /// A TCP port written in decimal, 1 to 65535.
  public static func port(_ text: some StringProtocol, field: String) throws(MeshInputError) -> Int
  {
    do {
      return Int(try Self.integer(text, field: field, in: 1...65_535))
    } catch {
      throw MeshInputError(
        code: error.code,
        field: field,
        message: "port must be 1 to 65535, not \(Self.quoted(text))"
      )
    }
  }

  // MARK: - Durations

  /// A duration from a number of nanoseconds (Consul's JSON durations), truncated toward zero.
  public static func duration(
    nanoseconds value: Double,
    field: String,
    in range: ClosedRange<Duration> = MeshGoDuration.min...MeshGoDuration.max
  ) throws(MeshInputError) -> Duration {
    guard let nanoseconds = Self.int64(truncating: value) else {
      throw Self.outside(range, field: field, got: "\(value)ns")
    }
    let duration = Duration.nanoseconds(nanoseconds)
    guard range.contains(duration) else {
      throw Self.outside(range, field: field, got: "\(value)ns")
    }
    return duration
  }

  /// A duration from a number of seconds (configuration files, `--duration`, environment
  /// variables), to the nanosecond.
  public static func duration(
    seconds value: Double,
    field: String,
    in range: ClosedRange<Duration> = MeshGoDuration.min...MeshGoDuration.max
  ) throws(MeshInputError) -> Duration {
    // Seconds past ±9.2e9 are past Int64 nanoseconds; checked before multiplying.
    guard value.isFinite, value.magnitude < 9.3e9,
      let nanoseconds = Self.int64(truncating: (value * 1e9).rounded())
    else {
      throw Self.outside(range, field: field, got: "\(value)s")
    }
    let duration = Duration.nanoseconds(nanoseconds)
    guard range.contains(duration) else {
      throw Self.outside(range, field: field, got: "\(value)s")
    }
    return duration
  }

  /// A duration from text: Go syntax (`"1.5s"`, `"250ms"`), or with `bareSeconds` a plain number
  /// of seconds (`"1.5"`).
  public static func duration(
    _ text: some StringProtocol,
    field: String,
    bareSeconds: Bool = false,
    in range: ClosedRange<Duration> = MeshGoDuration.min...MeshGoDuration.max
  ) throws(MeshInputError) -> Duration {
    let duration: Duration
    if bareSeconds, let seconds = Double(String(text)), !text.contains(where: { $0.isLetter }) {
      duration = try Self.duration(seconds: seconds, field: field, in: range)
    } else {
      duration = try MeshGoDuration.parse(text, field: field)
    }
    guard range.contains(duration) else {
      throw Self.outside(range, field: field, got: Self.quoted(text))
    }
    return duration
  }

  /// `duration` clamped to `range`.
  public static func clamp(_ duration: Duration, to range: ClosedRange<Duration>) -> Duration {
    Swift.min(Swift.max(duration, range.lowerBound), range.upperBound)
  }

  /// The whole nanoseconds of `duration`, clamped to `Int64` (sub-nanoseconds dropped).
  public static func nanoseconds(clamping duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    let (wholeSeconds, o1) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    let (total, o2) = wholeSeconds.addingReportingOverflow(attoseconds / 1_000_000_000)
    if o1 || o2 { return seconds < 0 ? Int64.min : Int64.max }
    return total
  }

  /// The whole milliseconds of `duration`, clamped to `Int64`.
  public static func milliseconds(clamping duration: Duration) -> Int64 {
    Self.nanoseconds(clamping: duration) / 1_000_000
  }

  // MARK: - Messages

  /// `text` in quotes for an error message, cut to 64 characters: a refused value is never
  /// echoed whole.
  public static func quoted(_ text: some StringProtocol) -> String {
    let cut = text.prefix(64)
    var escaped = ""
    for scalar in cut.unicodeScalars {
      switch scalar {
      case "\"": escaped += "\\\""
      case "\\": escaped += "\\\\"
      case _ where scalar.value < 0x20 || scalar.value == 0x7F:
        escaped += "\\u{\(String(scalar.value, radix: 16))}"
      default: escaped.unicodeScalars.append(scalar)
      }
    }
    return "\"\(escaped)\"" + (cut.count < text.count ? "…" : "")
  }

  private static func outside<T>(_ range: ClosedRange<T>, field: String, got: String)
    -> MeshInputError
  {
    MeshInputError(
      code: .outOfRange,
      field: field,
      message: "must be \(Self.describe(range)), not \(got)"
    )
  }

  private static func describe<T>(_ range: ClosedRange<T>) -> String {
    if let range = range as? ClosedRange<Duration> {
      let low =
        range.lowerBound == MeshGoDuration.min ? nil : MeshGoDuration.format(range.lowerBound)
      let high =
        range.upperBound == MeshGoDuration.max ? nil : MeshGoDuration.format(range.upperBound)
      switch (low, high) {
      case (let low?, let high?): return "from \(low) to \(high)"
      case (let low?, nil): return "at least \(low)"
      case (nil, let high?): return "at most \(high)"
      case (nil, nil): return "at most 2562047h47m16.854775807s either way"
      }
    }
    if let range = range as? ClosedRange<Int64> {
      if range.lowerBound == .min && range.upperBound == .max { return "a 64-bit integer" }
      if range.upperBound == .max { return "at least \(range.lowerBound)" }
    }
    if let range = range as? ClosedRange<Int>, range.upperBound == .max {
      return "at least \(range.lowerBound)"
    }
    return "\(range.lowerBound) to \(range.upperBound)"
  }
}
