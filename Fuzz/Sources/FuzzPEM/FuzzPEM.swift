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
internal import FuzzSupport
internal import MeshTransport

/// PEM and certificate loading as `MeshCredentials` does it: the chain, the key and the trust
/// bundle parsed, matched and verified (swift-certificates, then BoringSSL), and SPIFFE and DNS
/// identities read. Nothing may trap; a bad file is a `MeshTLSError`.
///
/// The input is the three files separated by NUL bytes: chain, key, trust bundle. A missing part
/// repeats the one before it, so a single PEM file is tried as all three.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
  let bytes = UnsafeRawBufferPointer(start: start, count: count)
  var parts = bytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
    .map { String(decoding: $0, as: UTF8.self) }
  while parts.count < 3 { parts.append(parts.last ?? "") }

  let configuration = MeshTLSConfiguration(
    certificateChain: .pem(parts[0]),
    privateKey: .pem(parts[1]),
    trustBundle: .pem(parts[2])
  )
  // A fixed instant inside the seed certificates' validity, so that runs are reproducible.
  let now = Date(timeIntervalSince1970: 1_800_000_000)
  let credentials = runBlocking { () async -> MeshCredentials? in
    try? await MeshCredentials(configuration, now: now)
  }
  if let credentials {
    _ = credentials.identities.map(\.description)
    _ = credentials.timeUntilExpiry(now: now)
    _ = credentials.sslContextConfigurationOverride
    _ = try? credentials.tlsServerConfiguration()
  }
  for part in parts {
    for line in part.split(separator: "\n").prefix(8) {
      _ = try? MeshServiceIdentity(parsing: String(line))
    }
  }
  return 0
}
