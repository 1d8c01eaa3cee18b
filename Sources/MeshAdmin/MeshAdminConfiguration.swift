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
public import MeshPrometheus

/// Where a mesh process's admin endpoint listens, and what its `/metrics` serves.
///
/// Off unless set (`MeshClientConfiguration.admin`, `MeshServerConfiguration.admin`, or
/// `MESH_ADMIN_ADDRESS`); loopback by default, because it shows the process's configuration and
/// changes its log level: expose it only on a network you trust.
public struct MeshAdminConfiguration: Sendable {
  /// The address to bind: an IP address or a host name (default 127.0.0.1).
  public var host: String
  /// The port (default 9901, as Envoy's admin); 0 picks a free one.
  public var port: Int
  /// The registry `/metrics` serves. Nil: a registry of the endpoint's own, which the client or
  /// server that made the endpoint records to when no metrics factory is configured.
  public var metrics: MeshPrometheusMetrics?

  public init(host: String = "127.0.0.1", port: Int = 9901, metrics: MeshPrometheusMetrics? = nil) {
    self.host = host
    self.port = port
    self.metrics = metrics
  }

  /// Reads `host:port` (`[v6]:port` for IPv6; port 0 for any free one), as `MESH_ADMIN_ADDRESS`
  /// gives it.
  ///
  /// - Throws: ``MeshInputError`` naming `field` when it is no `host:port`.
  public init(address: String, field: String = "MESH_ADMIN_ADDRESS") throws(MeshInputError) {
    let (host, port) = try MeshHost.parseAuthority(address, field: field, allowingPortZero: true)
    self.init(host: host.text, port: port)
  }

  /// Checks the host and the port (0 allowed) before anything binds them.
  ///
  /// - Throws: ``MeshInputError`` naming the field.
  public func validate() throws(MeshInputError) {
    _ = try MeshHost(self.host, field: "admin.host")
    if self.port != 0 {
      _ = try MeshInput.port(self.port, field: "admin.port")
    }
  }
}
