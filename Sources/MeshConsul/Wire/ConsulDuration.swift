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

/// Go `time.Duration` strings, the way Consul reads and writes them (`"10s"`, `"1m30s"`, `"90m"`,
/// `"300000ms"`).
public enum ConsulDuration {
  /// Parses a Go duration string; nil if it is not one.
  public static func parse(_ text: String) -> Duration? {
    var rest = Substring(text)
    var negative = false
    if rest.first == "-" || rest.first == "+" {
      negative = rest.first == "-"
      rest = rest.dropFirst()
    }
    if rest == "0" { return .zero }
    guard !rest.isEmpty else { return nil }

    var totalNanoseconds: Double = 0
    while !rest.isEmpty {
      let number = rest.prefix { $0.isNumber || $0 == "." }
      guard !number.isEmpty, let value = Double(number) else { return nil }
      rest = rest.dropFirst(number.count)
      let unit = rest.prefix { !$0.isNumber && $0 != "." }
      rest = rest.dropFirst(unit.count)
      let scale: Double
      switch unit {
      case "ns": scale = 1
      case "us", "µs", "μs": scale = 1e3
      case "ms": scale = 1e6
      case "s": scale = 1e9
      case "m": scale = 60e9
      case "h": scale = 3600e9
      default: return nil
      }
      totalNanoseconds += value * scale
    }
    guard totalNanoseconds <= Double(Int64.max) else { return nil }
    let duration = Duration.nanoseconds(Int64(totalNanoseconds.rounded()))
    return negative ? .zero - duration : duration
  }

  /// Formats as Go does (`"10s"`, `"1m30s"`, `"1h0m0s"`, `"1.5s"`, `"300ms"`); `""` for zero, as
  /// Consul shows unset check intervals.
  public static func format(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    if seconds == 0 && attoseconds == 0 { return "" }
    let totalNanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    let magnitude = totalNanoseconds.magnitude
    let sign = totalNanoseconds < 0 ? "-" : ""
    if magnitude < 1_000 { return "\(sign)\(magnitude)ns" }
    if magnitude < 1_000_000 { return sign + Self.decimal(magnitude, 1_000) + "µs" }
    if magnitude < 1_000_000_000 { return sign + Self.decimal(magnitude, 1_000_000) + "ms" }
    let hours = magnitude / 3_600_000_000_000
    let minutes = (magnitude / 60_000_000_000) % 60
    let secondsPart = Self.decimal(magnitude % 60_000_000_000, 1_000_000_000)
    if hours > 0 { return "\(sign)\(hours)h\(minutes)m\(secondsPart)s" }
    if minutes > 0 { return "\(sign)\(minutes)m\(secondsPart)s" }
    return "\(sign)\(secondsPart)s"
  }

  private static func decimal(_ value: UInt64, _ unit: UInt64) -> String {
    let whole = value / unit
    var fraction = value % unit
    guard fraction != 0 else { return "\(whole)" }
    var digits = String(fraction).count
    let width = String(unit).count - 1
    var text = String(repeating: "0", count: width - digits) + String(fraction)
    while text.hasSuffix("0") {
      text.removeLast()
      fraction /= 10
      digits -= 1
    }
    return "\(whole).\(text)"
  }
}
