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

/// A server connection's policing of its client's pings (gRFC A8), as a value: told of each ping
/// with the time it arrived, it says when the client has pinged too often.
///
/// A ping is permitted if it comes at least ``MeshNativeTransportSettings/PermittedPings``'
/// interval after the last permitted one (two hours while no call is open, unless pings without
/// calls are permitted); the first always is. Each ping that is not is a strike, and the third
/// strike is too many. Sending the client headers or data clears the strikes (``reset()``): a
/// ping answered by a busy server is not abuse. gRPC C++ and grpc-swift count the same way.
struct MeshNativePingStrikes {
  /// Strikes tolerated; one more is too many.
  static let maxStrikes = 2
  /// The interval while no call is open and pings without calls are not permitted.
  static let withoutCallsInterval = Duration.seconds(2 * 3600)

  let permitted: MeshNativeTransportSettings.PermittedPings
  private(set) var strikes = 0
  private var lastPermitted: ContinuousClock.Instant?

  init(_ permitted: MeshNativeTransportSettings.PermittedPings) {
    self.permitted = permitted
  }

  /// A ping arrived at `now`: true if the client has now pinged too often.
  mutating func received(at now: ContinuousClock.Instant, callsOpen: Bool) -> Bool {
    let interval =
      callsOpen || self.permitted.withoutCalls
      ? self.permitted.minInterval : Self.withoutCallsInterval
    if let last = self.lastPermitted, now < last.advanced(by: interval) {
      self.strikes += 1
      return self.strikes > Self.maxStrikes
    }
    self.lastPermitted = now
    return false
  }

  /// The server sent the client headers or data: strikes and the last ping are forgotten.
  mutating func reset() {
    self.strikes = 0
    self.lastPermitted = nil
  }
}
