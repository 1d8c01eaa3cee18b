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

public import MeshCore

/// Go `time.Duration` strings, the way Consul reads and writes them (`"10s"`, `"1m30s"`, `"90m"`,
/// `"300000ms"`). Parsing is ``MeshGoDuration``'s: exact, and never traps.
public enum ConsulDuration {
  /// Parses a Go duration string; nil if it is not one or is past 64 bits of nanoseconds.
  public static func parse(_ text: String) -> Duration? {
    try? MeshGoDuration.parse(text)
  }

  /// Parses a Go duration string, naming `field` when it refuses.
  public static func parse(_ text: String, field: String) throws(MeshInputError) -> Duration {
    try MeshGoDuration.parse(text, field: field)
  }

  /// Formats as Go does (`"10s"`, `"1m30s"`, `"1h0m0s"`, `"1.5s"`, `"300ms"`); `""` for zero, as
  /// Consul shows unset check intervals.
  public static func format(_ duration: Duration) -> String {
    duration == .zero ? "" : MeshGoDuration.format(duration)
  }
}
