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

import Foundation
import MeshTransport
import Testing

/// The alert and recording rules and the dashboards in `deploy/` name only metrics the mesh
/// exports: a renamed instrument fails here, not in production with an empty panel.
@Suite("deploy/ names only metrics the mesh exports")
struct DeployedMetricNamesTests {
  static let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  /// Every series name the mesh exports to Prometheus, and the labels it uses.
  static var exported: Set<String> {
    var names: Set<String> = []
    for (name, instrument) in MeshMetricNames.instruments {
      let exported = MeshMetricNames.prometheusName(name)
      names.insert(exported)
      if instrument.kind == .histogram {
        names.formUnion([exported + "_bucket", exported + "_sum", exported + "_count"])
      }
    }
    let labels = [
      MeshMetricNames.method, MeshMetricNames.target, MeshMetricNames.status,
      MeshMetricNames.detectionMethod, MeshMetricNames.service,
    ]
    names.formUnion(labels.map(MeshMetricNames.prometheusLabel))
    return names
  }

  static var deployed: [URL] {
    let folders = [
      "deploy/prometheus/rules", "deploy/prometheus/tests", "deploy/grafana/dashboards",
    ]
    return folders.flatMap { folder in
      let url = Self.root.appendingPathComponent(folder)
      let files = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
      return files.sorted().map { url.appendingPathComponent($0) }
    }
  }

  @Test("Every grpc_* and mesh_* name in the rules, their tests and the dashboards is exported")
  func namesExist() throws {
    let files = Self.deployed
    #expect(files.count >= 5, "\(files)")
    // A name on its own: not part of a recording rule's name (service:grpc_…:ratio_rate5m).
    let pattern = try NSRegularExpression(pattern: #"(?<![:\w])(?:grpc|mesh)_[a-z0-9_]+(?![:\w])"#)
    let exported = Self.exported
    var unknown: [String] = []
    for file in files {
      let text = try String(contentsOf: file, encoding: .utf8)
      let range = NSRange(text.startIndex..., in: text)
      for match in pattern.matches(in: text, range: range) {
        guard let swiftRange = Range(match.range, in: text) else { continue }
        let name = String(text[swiftRange])
        if !exported.contains(name) { unknown.append("\(file.lastPathComponent): \(name)") }
      }
    }
    #expect(unknown.isEmpty, "not exported by the mesh: \(Set(unknown).sorted())")
  }
}
