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

/// A service's TLS credentials and the HTTP/2 settings of its mesh connections.
///
/// A plain value: build it in code, or from the Python mesh's folder layout with
/// ``directory(_:service:)``, then hand it to ``MeshCredentials``, which loads and validates it.
public struct MeshTLSConfiguration: Sendable {
  /// The service's certificate, leaf first, optionally followed by intermediates.
  public var certificateChain: MeshPEMSource
  /// The certificate's private key.
  public var privateKey: MeshPEMSource
  /// The mesh CA certificates that peers must chain to (several during a CA rotation).
  public var trustBundle: MeshPEMSource
  /// How often ``MeshCredentials/run()`` re-reads the files. Default 30 seconds.
  public var reloadInterval: Duration
  /// How long before the certificate expires to start logging warnings. Default 7 days.
  public var expiryWarningWindow: Duration
  /// HTTP/2 settings of mesh connections.
  public var http2: HTTP2
  /// Keepalive of mesh connections.
  public var keepalive: Keepalive

  /// HTTP/2 settings, with the Envoy sidecars' values as defaults.
  public struct HTTP2: Sendable, Hashable {
    /// The initial flow-control window of each stream. Default 65,536.
    public var initialStreamWindowSize: Int
    /// The flow-control window of the whole connection. Default 1,048,576.
    public var connectionWindowSize: Int
    /// The most concurrent streams a server accepts on one connection. Default 100.
    public var maxConcurrentStreams: Int
    /// The largest frame payload. Default 16,384.
    public var maxFrameSize: Int

    /// Envoy's values: a 65,536-byte stream window, a 1,048,576-byte connection window, 100
    /// concurrent streams and 16,384-byte frames.
    public static var defaults: Self {
      Self(
        initialStreamWindowSize: 65_536,
        connectionWindowSize: 1_048_576,
        maxConcurrentStreams: 100,
        maxFrameSize: 16_384
      )
    }

    /// HTTP/2 settings with each value given; ``MeshTLSConfiguration/validate()`` checks them.
    public init(
      initialStreamWindowSize: Int,
      connectionWindowSize: Int,
      maxConcurrentStreams: Int,
      maxFrameSize: Int
    ) {
      self.initialStreamWindowSize = initialStreamWindowSize
      self.connectionWindowSize = connectionWindowSize
      self.maxConcurrentStreams = maxConcurrentStreams
      self.maxFrameSize = maxFrameSize
    }
  }

  /// HTTP/2 keepalive: pings that find dead connections behind NATs and load balancers.
  public struct Keepalive: Sendable, Hashable {
    /// How long a client waits between pings. Default 30 seconds.
    public var clientPingInterval: Duration
    /// How long a ping may go unanswered before the connection is closed. Default 10 seconds.
    public var pingTimeout: Duration
    /// Whether clients ping with no RPC in flight. Default false.
    public var pingWithoutCalls: Bool
    /// The shortest ping interval a server accepts from a client before it calls the client
    /// abusive. Default 10 seconds (below the clients' default interval).
    public var serverMinimumPingInterval: Duration

    /// Client pings every 30 seconds with a 10-second timeout, none without RPCs in flight; servers
    /// accept pings 10 seconds apart.
    public static var defaults: Self {
      Self(
        clientPingInterval: .seconds(30),
        pingTimeout: .seconds(10),
        pingWithoutCalls: false,
        serverMinimumPingInterval: .seconds(10)
      )
    }

    /// Keepalive with each value given; ``MeshTLSConfiguration/validate()`` checks them.
    public init(
      clientPingInterval: Duration,
      pingTimeout: Duration,
      pingWithoutCalls: Bool,
      serverMinimumPingInterval: Duration
    ) {
      self.clientPingInterval = clientPingInterval
      self.pingTimeout = pingTimeout
      self.pingWithoutCalls = pingWithoutCalls
      self.serverMinimumPingInterval = serverMinimumPingInterval
    }
  }

  /// Credentials from `certificateChain`, `privateKey` and `trustBundle`, re-read every 30
  /// seconds, warning 7 days before expiry, with the default ``HTTP2`` and ``Keepalive`` settings.
  public init(
    certificateChain: MeshPEMSource,
    privateKey: MeshPEMSource,
    trustBundle: MeshPEMSource
  ) {
    self.certificateChain = certificateChain
    self.privateKey = privateKey
    self.trustBundle = trustBundle
    self.reloadInterval = .seconds(30)
    self.expiryWarningWindow = .seconds(7 * 86_400)
    self.http2 = .defaults
    self.keepalive = .defaults
  }

  /// The Python mesh's layout: `<directory>/ca.crt`, `<directory>/services/<service>.crt` and
  /// `<directory>/services/<service>-key.pem` (what `mesh certs` writes).
  public static func directory(
    _ directory: String,
    service: String,
    configure: (inout Self) -> Void = { _ in }
  ) -> Self {
    var configuration = Self(
      certificateChain: .file("\(directory)/services/\(service).crt"),
      privateKey: .file("\(directory)/services/\(service)-key.pem"),
      trustBundle: .file("\(directory)/ca.crt")
    )
    configure(&configuration)
    return configuration
  }

  /// Checks the numbers; the sources are checked when they are loaded.
  ///
  /// - Throws: ``MeshTLSError`` with code `invalidConfiguration`, naming the field.
  public func validate() throws(MeshTLSError) {
    func invalid(_ field: String, _ rule: String) -> MeshTLSError {
      MeshTLSError(code: .invalidConfiguration, message: "\(field) \(rule).")
    }
    let maxWindow = Int(Int32.max)
    guard (1...maxWindow).contains(self.http2.initialStreamWindowSize) else {
      throw invalid("http2.initialStreamWindowSize", "must be between 1 and \(maxWindow)")
    }
    guard (1...maxWindow).contains(self.http2.connectionWindowSize) else {
      throw invalid("http2.connectionWindowSize", "must be between 1 and \(maxWindow)")
    }
    guard self.http2.maxConcurrentStreams >= 1 else {
      throw invalid("http2.maxConcurrentStreams", "must be at least 1")
    }
    guard (16_384...16_777_215).contains(self.http2.maxFrameSize) else {
      throw invalid("http2.maxFrameSize", "must be between 16,384 and 16,777,215 (RFC 9113)")
    }
    guard self.keepalive.clientPingInterval > .zero else {
      throw invalid("keepalive.clientPingInterval", "must be positive")
    }
    guard self.keepalive.pingTimeout > .zero else {
      throw invalid("keepalive.pingTimeout", "must be positive")
    }
    guard self.keepalive.serverMinimumPingInterval >= .zero else {
      throw invalid("keepalive.serverMinimumPingInterval", "must not be negative")
    }
    guard self.reloadInterval > .zero else {
      throw invalid("reloadInterval", "must be positive")
    }
    guard self.expiryWarningWindow >= .zero else {
      throw invalid("expiryWarningWindow", "must not be negative")
    }
  }
}
