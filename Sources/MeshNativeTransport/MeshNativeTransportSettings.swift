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
public import MeshIdentity

/// Settings of the native transport's connections.
public struct MeshNativeTransportSettings: Sendable, Hashable {
  /// The receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE): how far a peer may send
  /// ahead of a stream's reader. 1 MiB by default.
  public var streamWindow: Int
  /// The receive window of the whole connection, across streams. 16 MiB by default.
  public var connectionWindow: Int
  /// The largest frame the peer may send (SETTINGS_MAX_FRAME_SIZE). 64 KiB by default.
  public var maxFrameSize: Int
  /// The largest header list accepted (SETTINGS_MAX_HEADER_LIST_SIZE). 16 KiB by default.
  public var maxHeaderListSize: Int
  /// Streams the peer may open at once (servers; clients advertise it too). 100 by default.
  public var maxConcurrentStreams: Int
  /// How long a connection may take: TCP, the TLS handshake and the HTTP/2 preface (a client), or
  /// the TLS handshake and the client's verification (a server). 20 s by default.
  public var connectTimeout: Duration
  /// The wait between failed attempts to connect.
  public var backoff: Backoff
  /// Keepalive pings (clients): a connection whose peer does not answer one in time is closed, so
  /// that RPCs move to a new one instead of waiting on a dead peer. Nil (the default): none.
  public var keepalive: Keepalive?
  /// How long a server keeps a connection (gRFC A9 `MAX_CONNECTION_AGE`): then it sends GOAWAY,
  /// lets the streams in flight finish for ``maxConnectionAgeGrace``, and closes. Nil (the
  /// default): no limit.
  public var maxConnectionAge: Duration?
  /// After ``maxConnectionAge``, how long the streams in flight may take before the connection
  /// closes. Nil: no limit.
  public var maxConnectionAgeGrace: Duration?
  /// How long a server keeps a connection with no stream (`MAX_CONNECTION_IDLE`): then it sends
  /// GOAWAY and closes. Nil (the default): no limit.
  public var maxConnectionIdle: Duration?
  /// How often a client may ping a server's connection (servers; gRFC A8): a client that pings
  /// more often is sent away. gRPC's defaults: 5 minutes apart, none without calls.
  public var permittedPings: PermittedPings

  /// The pings a server permits a client (gRFC A8's `PERMIT_KEEPALIVE_TIME` and
  /// `PERMIT_KEEPALIVE_WITHOUT_CALLS`). A ping sooner than permitted after the last permitted
  /// one is a strike; the third strike closes the connection with GOAWAY `ENHANCE_YOUR_CALM`
  /// ("too_many_pings"). Sending the client headers or data clears the strikes.
  public struct PermittedPings: Sendable, Hashable {
    /// The shortest time between a client's pings. 5 minutes by default.
    public var minInterval: Duration
    /// Whether that interval applies while no call is open; if not (the default), a client
    /// may ping an idle connection only every two hours.
    public var withoutCalls: Bool

    /// gRPC's defaults: every 5 minutes, not without calls.
    public static var defaults: Self { Self(minInterval: .seconds(300), withoutCalls: false) }

    public init(minInterval: Duration, withoutCalls: Bool = false) {
      self.minInterval = minInterval
      self.withoutCalls = withoutCalls
    }
  }

  /// Keepalive pings.
  public struct Keepalive: Sendable, Hashable {
    /// The time between pings.
    public var interval: Duration
    /// How long an answer may take before the connection is closed.
    public var timeout: Duration
    /// Whether to ping a connection with no stream open.
    public var withoutCalls: Bool

    public init(interval: Duration, timeout: Duration, withoutCalls: Bool = false) {
      self.interval = interval
      self.timeout = timeout
      self.withoutCalls = withoutCalls
    }
  }

  /// gRPC's connection backoff.
  public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var multiplier: Double
    public var maximum: Duration
    /// A random part of each wait, ± this fraction.
    public var jitter: Double

    /// gRPC's defaults: 1 s, ×1.6, at most 120 s, ±20 %.
    public static var defaults: Self {
      Self(initial: .seconds(1), multiplier: 1.6, maximum: .seconds(120), jitter: 0.2)
    }

    public init(initial: Duration, multiplier: Double, maximum: Duration, jitter: Double) {
      self.initial = initial
      self.multiplier = multiplier
      self.maximum = maximum
      self.jitter = jitter
    }
  }

  /// The defaults.
  public static var defaults: Self {
    Self(
      streamWindow: 1 << 20,
      connectionWindow: 16 << 20,
      maxFrameSize: 64 << 10,
      maxHeaderListSize: 16 << 10,
      maxConcurrentStreams: 100,
      connectTimeout: .seconds(20),
      backoff: .defaults
    )
  }

  /// The defaults, changed by `configure`.
  public static func defaults(configure: (inout Self) -> Void) -> Self {
    var settings = Self.defaults
    configure(&settings)
    return settings
  }

  public init(
    streamWindow: Int,
    connectionWindow: Int,
    maxFrameSize: Int,
    maxHeaderListSize: Int,
    maxConcurrentStreams: Int,
    connectTimeout: Duration,
    backoff: Backoff
  ) {
    self.streamWindow = streamWindow
    self.connectionWindow = connectionWindow
    self.maxFrameSize = maxFrameSize
    self.maxHeaderListSize = maxHeaderListSize
    self.maxConcurrentStreams = maxConcurrentStreams
    self.connectTimeout = connectTimeout
    self.backoff = backoff
    self.permittedPings = .defaults
  }

  /// Checks every field against what HTTP/2 allows.
  ///
  /// - Throws: `MeshInputError` naming the field.
  public func validate() throws(MeshInputError) {
    func check(_ value: Int, _ range: ClosedRange<Int>, _ field: String) throws(MeshInputError) {
      guard range.contains(value) else {
        throw MeshInputError(
          code: .outOfRange,
          field: field,
          message: "must be in \(range.lowerBound)...\(range.upperBound), not \(value)"
        )
      }
    }
    try check(self.streamWindow, 65_535...Int(Int32.max), "streamWindow")
    try check(self.connectionWindow, 65_535...Int(Int32.max), "connectionWindow")
    try check(self.maxFrameSize, 16_384...16_777_215, "maxFrameSize")
    try check(self.maxHeaderListSize, 1_024...Int(Int32.max), "maxHeaderListSize")
    try check(self.maxConcurrentStreams, 1...Int(Int32.max), "maxConcurrentStreams")
    // Connection limits: positive (a grace may be zero), at most ten years.
    let limits: [(Duration?, String, Bool)] = [
      (self.maxConnectionAge, "maxConnectionAge", false),
      (self.maxConnectionAgeGrace, "maxConnectionAgeGrace", true),
      (self.maxConnectionIdle, "maxConnectionIdle", false),
      (self.permittedPings.minInterval, "permittedPings.minInterval", true),
    ]
    for case (let duration?, let field, let zeroAllowed) in limits
    where duration < .zero || (duration == .zero && !zeroAllowed)
      || duration > .seconds(10 * 365 * 86_400)
    {
      throw MeshInputError(
        code: .outOfRange,
        field: field,
        message: zeroAllowed
          ? "must be at least 0 and at most ten years" : "must be more than 0 and at most ten years"
      )
    }
    let optional: [(Duration?, String)] = [
      (self.keepalive?.interval, "keepalive.interval"),
      (self.keepalive?.timeout, "keepalive.timeout"),
    ]
    let durations =
      [
        (self.connectTimeout, "connectTimeout"), (self.backoff.initial, "backoff.initial"),
        (self.backoff.maximum, "backoff.maximum"),
      ] + optional.compactMap { duration, field in duration.map { ($0, field) } }
    for (duration, field) in durations where duration <= .zero || duration > .seconds(86_400) {
      throw MeshInputError(
        code: .outOfRange,
        field: field,
        message: "must be more than 0 and at most a day"
      )
    }
    guard self.backoff.multiplier >= 1, self.backoff.multiplier <= 10 else {
      throw MeshInputError(
        code: .outOfRange,
        field: "backoff.multiplier",
        message: "must be in 1...10"
      )
    }
    guard self.backoff.jitter >= 0, self.backoff.jitter < 1 else {
      throw MeshInputError(
        code: .outOfRange,
        field: "backoff.jitter",
        message: "must be in 0..<1"
      )
    }
  }

  var http2: MeshHTTP2Session.Settings {
    MeshHTTP2Session.Settings(
      maxConcurrentStreams: self.maxConcurrentStreams,
      streamWindow: self.streamWindow,
      connectionWindow: self.connectionWindow,
      maxFrameSize: self.maxFrameSize,
      maxHeaderListSize: self.maxHeaderListSize
    )
  }
}

extension MeshNativeTransportSettings {
  /// These settings with a mesh TLS configuration's HTTP/2 tuning, value by value, where the TLS
  /// configuration departs from its defaults (Envoy's) and these settings are still the native
  /// transport's defaults: an operator's tuning applies on either transport, a value set here
  /// explicitly wins (as grpc-swift's transport settings do on the NIO path), and the native
  /// transport's own defaults (larger windows and frames than Envoy's) stand where neither says
  /// otherwise. The stream and connection windows apply separately, which grpc-swift's NIO
  /// transport cannot do (it takes the connection window for both).
  public func tuned(by http2: MeshTLSConfiguration.HTTP2) -> Self {
    let envoy = MeshTLSConfiguration.HTTP2.defaults
    let native = Self.defaults
    var settings = self
    if http2.initialStreamWindowSize != envoy.initialStreamWindowSize,
      settings.streamWindow == native.streamWindow
    {
      settings.streamWindow = http2.initialStreamWindowSize
    }
    if http2.connectionWindowSize != envoy.connectionWindowSize,
      settings.connectionWindow == native.connectionWindow
    {
      settings.connectionWindow = http2.connectionWindowSize
    }
    if http2.maxConcurrentStreams != envoy.maxConcurrentStreams,
      settings.maxConcurrentStreams == native.maxConcurrentStreams
    {
      settings.maxConcurrentStreams = http2.maxConcurrentStreams
    }
    if http2.maxFrameSize != envoy.maxFrameSize, settings.maxFrameSize == native.maxFrameSize {
      settings.maxFrameSize = http2.maxFrameSize
    }
    return settings
  }
}
