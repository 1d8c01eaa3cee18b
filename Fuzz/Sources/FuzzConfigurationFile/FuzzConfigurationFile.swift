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

internal import Foundation
internal import MeshClient
internal import MeshServer
internal import MeshTransport

/// The mesh client's and server's configuration from outside: the configuration file as YAML and
/// as JSON, and the environment. Nothing may trap; a bad value is a `MeshConfigurationError` (or,
/// for the environment, a `MeshClientError` or `MeshServerError`) naming the field, and what is
/// accepted is a valid resilience policy, and a valid server configuration.
///
/// The first byte picks what the rest is: 0 YAML, 1 JSON, 2 environment (`NAME=value` lines).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
  let bytes = UnsafeRawBufferPointer(start: start, count: count)
  guard let selector = bytes.first else { return 0 }
  let data = Data(bytes.dropFirst())

  switch selector % 3 {
  case 0, 1:
    let format: MeshConfigurationFile.Format = selector % 3 == 0 ? .yaml : .json
    guard let file = try? MeshConfigurationFile.parse(data, format: format, file: "fuzz") else {
      break
    }
    for (name, section) in [("defaults", file.defaults)] + file.services.map({ ($0.key, $0.value) })
    {
      do {
        try section.resilience.validate()
      } catch {
        fatalError("FuzzConfigurationFile: accepted an invalid section \(name): \(error)")
      }
    }
    var configuration = MeshClientConfiguration()
    configuration.apply(file)
    if let section = file.server {
      var server = MeshServerConfiguration.defaults(serviceName: "fuzz")
      if (try? server.apply(section, file: "fuzz")) != nil {
        do {
          try server.validate()
        } catch {
          fatalError("FuzzConfigurationFile: accepted an invalid server section: \(error)")
        }
      }
    }
  default:
    var environment: [String: String] = [:]
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
      guard let equals = line.firstIndex(of: "=") else { continue }
      let name = String(line[..<equals])
      // Variables that name files are left out: the target reads no files.
      guard !["MESH_CONFIG_FILE", "CONSUL_CACERT"].contains(name) else { continue }
      environment[name] = String(line[line.index(after: equals)...])
    }
    _ = try? MeshClientConfiguration.fromEnvironment(environment)
    _ = try? MeshServerConfiguration.fromEnvironment(environment)
  }
  return 0
}
