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

internal import CoreMetrics
internal import MeshCore
internal import MeshHealth
internal import MeshTransport

/// A MeshServer's sampled gauges: each served service's health (`mesh.server.health.serving`,
/// 1 for SERVING) and its certificate's expiry. The server records them once a second while it
/// runs, so a status the application sets is seen too.
final class MeshServerGauges: Sendable {
  private let health: MeshHealthService
  private let certificate: MeshCertificateGauge?
  private let factory: any MetricsFactory
  private let serving = MeshMutex<[String: Gauge]>([:])

  init(health: MeshHealthService, credentials: MeshCredentials?, factory: any MetricsFactory) {
    self.health = health
    self.certificate = credentials.map { MeshCertificateGauge(credentials: $0, factory: factory) }
    self.factory = factory
  }

  func record() {
    for (service, status) in self.health.statuses {
      let gauge = self.serving.value(for: service) {
        Gauge(
          label: MeshMetricNames.healthServing,
          dimensions: [(MeshMetricNames.service, service)],
          factory: self.factory
        )
      }
      gauge.record(status == .serving ? 1 : 0)
    }
    self.certificate?.record()
  }
}
