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

internal import Glibc
internal import MeshCore

/// Go duration text and the other checked conversions of outside text and numbers: none may
/// trap, and what parses must survive a round trip.
///
/// - `MeshGoDuration.parse` accepts only values within 64 bits of nanoseconds, and
///   `parse(format(d)) == d` for every `d` it returns.
/// - `MeshInput`'s integer, port and duration conversions stay within the ranges they promise.
/// - `MeshHost` calls IPv4 and IPv6 only what the C library's `inet_pton` also accepts, and a
///   host with a port survives `authority(port:)` and `parseAuthority`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
  let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)

  if let duration = try? MeshGoDuration.parse(text, field: "fuzz") {
    check(duration >= MeshGoDuration.min && duration <= MeshGoDuration.max, "range", text)
    let formatted = MeshGoDuration.format(duration)
    let again = try? MeshGoDuration.parse(formatted, field: "fuzz")
    check(again == duration, "parse(format(d)) == d (format gave \(formatted))", text)
  }
  if let duration = try? MeshInput.duration(text, field: "fuzz", bareSeconds: true) {
    check(duration >= MeshGoDuration.min && duration <= MeshGoDuration.max, "range", text)
  }
  let positive = Duration.zero...MeshGoDuration.max
  if let duration = try? MeshInput.duration(text, field: "fuzz", in: positive) {
    check(positive.contains(duration), "duration in its range", text)
  }
  if let port = try? MeshInput.port(text, field: "fuzz") {
    check(MeshInput.ports.contains(port), "port in 1...65535", text)
  }
  if let value = try? MeshInput.integer(text, field: "fuzz", in: 0...1_000) {
    check((0...1_000).contains(value), "integer in its range", text)
  }
  if let number = Double(text) {
    _ = try? MeshInput.integer(number, field: "fuzz")
    _ = try? MeshInput.duration(nanoseconds: number, field: "fuzz")
    _ = try? MeshInput.duration(seconds: number, field: "fuzz")
    _ = MeshInput.int64(truncating: number)
  }

  if let host = try? MeshHost(text, field: "fuzz") {
    switch host {
    case .ipv4(let address):
      check(presentable(address, family: AF_INET), "an IPv4 host inet_pton accepts", text)
    case .ipv6(let address):
      check(presentable(address, family: AF_INET6), "an IPv6 host inet_pton accepts", text)
    case .dns:
      break
    }
    let parsed = try? MeshHost.parseAuthority(host.authority(port: 8080), field: "fuzz")
    check(parsed?.host == host && parsed?.port == 8080, "authority round trip", text)
  }
  if let (host, port) = try? MeshHost.parseAuthority(text, field: "fuzz") {
    check(MeshInput.ports.contains(port), "authority port in 1...65535", text)
    let parsed = try? MeshHost.parseAuthority(host.authority(port: port), field: "fuzz")
    check(parsed?.host == host && parsed?.port == port, "authority round trip", text)
  }
  return 0
}

private func presentable(_ address: String, family: CInt) -> Bool {
  var buffer = [UInt8](repeating: 0, count: 16)
  return address.withCString { inet_pton(family, $0, &buffer) } == 1
}

private func check(_ condition: Bool, _ invariant: String, _ input: String) {
  if !condition {
    fatalError("FuzzGoDuration: broke '\(invariant)' on \(String(reflecting: input))")
  }
}
