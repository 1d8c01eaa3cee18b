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

public import MeshTransport

/// How the embedded agent runs.
public struct MeshConsulAgentConfiguration: Sendable {
  /// What one client may ask of the agent's HTTP server.
  public struct Limits: Sendable {
    /// The largest request body read; a larger one is answered `413` and its connection closed.
    /// Default 4 MiB.
    public var maxRequestBodySize: Int
    /// Connections open longer than this with no request in progress are closed, as is one whose
    /// request head does not arrive in this time. Default 90 seconds.
    public var idleTimeout: Duration
    /// A request must arrive whole (head and body) within this long of its head, or its
    /// connection is closed. Default 30 seconds.
    public var requestReadTimeout: Duration
    /// Open connections per client IP, as Consul's `limits.http_max_conns_per_client`; the next
    /// one is answered `429` and closed. Default 200, as Consul.
    public var maxConnectionsPerClient: Int

    /// Limits with each value given, or Consul's default.
    public init(
      maxRequestBodySize: Int = 4 * 1024 * 1024,
      idleTimeout: Duration = .seconds(90),
      requestReadTimeout: Duration = .seconds(30),
      maxConnectionsPerClient: Int = 200
    ) {
      self.maxRequestBodySize = maxRequestBodySize
      self.idleTimeout = idleTimeout
      self.requestReadTimeout = requestReadTimeout
      self.maxConnectionsPerClient = maxConnectionsPerClient
    }

    /// Consul's defaults.
    public static var defaults: Self { Self() }
  }

  /// The address to listen on. Default `127.0.0.1`.
  public var host: String
  /// The port to listen on; 0 picks a free one. Default 8500, as `consul agent -dev`.
  public var port: Int
  /// The node the agent registers services on. Default `mesh-agent`.
  public var nodeName: String
  /// The datacenter. Default `dc1`.
  public var datacenter: String
  /// The identity the agent presents to TLS gRPC checks, and the CA it verifies them with
  /// (an mTLS service requires a client certificate). Nil: TLS checks use the system's roots.
  public var checkCredentials: MeshCredentials?
  /// Serve the HTTP API over TLS with these credentials, as Consul's HTTPS port does. Nil: plain
  /// HTTP.
  public var httpsCredentials: MeshCredentials?
  /// Blocking queries without `wait` wait this long. Default 5 minutes, as Consul.
  public var defaultQueryTime: Duration
  /// The longest `wait` honoured. Default 10 minutes, as Consul.
  public var maxQueryTime: Duration
  /// Body size, timeouts and connections per client.
  public var limits: Limits

  /// A configuration with each setting given, or its default: plain HTTP on 127.0.0.1:8500,
  /// blocking queries waiting 5 minutes by default and at most 10, and ``Limits/defaults``.
  public init(
    host: String = "127.0.0.1",
    port: Int = 8500,
    nodeName: String = "mesh-agent",
    datacenter: String = "dc1",
    checkCredentials: MeshCredentials? = nil,
    httpsCredentials: MeshCredentials? = nil,
    defaultQueryTime: Duration = .seconds(300),
    maxQueryTime: Duration = .seconds(600),
    limits: Limits = .defaults
  ) {
    self.host = host
    self.port = port
    self.nodeName = nodeName
    self.datacenter = datacenter
    self.checkCredentials = checkCredentials
    self.httpsCredentials = httpsCredentials
    self.defaultQueryTime = defaultQueryTime
    self.maxQueryTime = maxQueryTime
    self.limits = limits
  }

  /// Every setting at its default, as the initialiser gives them.
  public static var defaults: Self { Self() }
}
