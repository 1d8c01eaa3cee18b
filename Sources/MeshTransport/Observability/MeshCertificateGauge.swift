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

package import CoreMetrics
internal import Foundation
internal import MeshCore

/// The expiry of this process's certificate as a gauge, `mesh.certificate.expiration_timestamp`
/// (Unix time) labelled by its identity, for alerts on certificates about to expire. A client or
/// server records it as it runs; ``record()`` reads the current (possibly rotated) certificate.
package final class MeshCertificateGauge: Sendable {
  private let credentials: MeshCredentials
  private let factory: any MetricsFactory
  private let gauges = MeshMutex<[String: Gauge]>([:])

  package init(credentials: MeshCredentials, factory: any MetricsFactory) {
    self.credentials = credentials
    self.factory = factory
  }

  /// Records the current certificate's expiry under its first identity.
  package func record() {
    let identity = self.credentials.identities.first.map { "\($0)" } ?? ""
    let gauge = self.gauges.value(for: identity) {
      Gauge(
        label: MeshMetricNames.certificateExpiration,
        dimensions: [(MeshMetricNames.identity, identity)],
        factory: self.factory
      )
    }
    gauge.record(self.credentials.notValidAfter.timeIntervalSince1970)
  }
}
