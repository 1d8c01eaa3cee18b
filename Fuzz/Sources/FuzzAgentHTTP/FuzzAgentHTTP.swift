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

@testable internal import MeshConsulAgent

/// The embedded agent's whole request handling: Hummingbird's router, the agent's middleware and
/// every handler, driven without sockets through `MeshConsulAgent.respond(to:)`. A fresh agent
/// answers each input's requests in order, so that a registration can be read, changed and
/// removed within one input. Nothing may trap; every answer has an HTTP status, an error's body
/// is a short message, and a successful read is JSON.
///
/// The input is up to eight requests separated by NUL bytes, each `METHOD /path?query` on its
/// first line and its body after it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
  let bytes = UnsafeRawBufferPointer(start: start, count: count)
  let requests = bytes.split(separator: 0, maxSplits: 7, omittingEmptySubsequences: true)
    .map { request(Array($0)) }
  guard !requests.isEmpty else { return 0 }
  runBlocking {
    // The agent's timers are not run, and its clock never waits: a blocking query (`?index=`)
    // answers at once instead of after its `wait`.
    let agent = MeshConsulAgent(configuration: .init(port: 0), clock: FuzzClock())
    for request in requests {
      let response = await agent.respond(to: request)
      if verbose {
        print("\(request.method) \(request.path)?\(request.query) -> \(response.status)")
      }
      check(request, response)
    }
  }
  return 0
}

/// `METHOD /path?query` then the body.
private func request(_ bytes: [UInt8]) -> ConsulAgentHTTPRequest {
  let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
  let line = String(decoding: bytes[..<newline], as: UTF8.self)
  let body = newline < bytes.endIndex ? Array(bytes[(newline + 1)...]) : []
  let parts = line.split(separator: " ", maxSplits: 1)
  let method = parts.first.map(String.init) ?? "GET"
  let target = parts.count > 1 ? String(parts[1]) : "/"
  let question = target.firstIndex(of: "?")
  return ConsulAgentHTTPRequest(
    method: method,
    path: question.map { String(target[..<$0]) } ?? target,
    query: question.map { String(target[target.index(after: $0)...]) } ?? "",
    headers: [("Content-Type", "application/json")],
    body: body
  )
}

private func check(_ request: ConsulAgentHTTPRequest, _ response: ConsulAgentHTTPResponse) {
  let what = "\(request.method) \(request.path.prefix(80)) answered \(response.status)"
  guard (100...599).contains(response.status) else {
    fatalError("FuzzAgentHTTP: \(what), not an HTTP status")
  }
  if response.status >= 400 && response.body.count > maxErrorBytes {
    fatalError(
      "FuzzAgentHTTP: \(what) with a \(response.body.count)-byte error: "
        + String(response.text.prefix(200))
    )
  }
  let isJSON = response.header("Content-Type")?.hasPrefix("application/json") == true
  if response.status == 200 && isJSON && !response.body.isEmpty {
    if (try? JSONSerialization.jsonObject(with: Data(response.body), options: .fragmentsAllowed))
      == nil
    {
      fatalError("FuzzAgentHTTP: \(what) with a body not JSON: \(response.text.prefix(200))")
    }
  }
}

/// `MESH_FUZZ_VERBOSE=1` prints each request's status: for checking what seeds reach.
private let verbose = ProcessInfo.processInfo.environment["MESH_FUZZ_VERBOSE"] == "1"

/// The longest error body the agent may answer with.
private let maxErrorBytes = 4_096

/// A clock whose time stands still and whose sleeps end at once.
private struct FuzzClock: Clock {
  struct Instant: InstantProtocol {
    var offset: Duration

    func advanced(by duration: Duration) -> Self { Self(offset: self.offset + duration) }
    func duration(to other: Self) -> Duration { other.offset - self.offset }
    static func < (lhs: Self, rhs: Self) -> Bool { lhs.offset < rhs.offset }
  }

  var now: Instant { Instant(offset: .seconds(1_000_000)) }
  var minimumResolution: Duration { .zero }
  func sleep(until deadline: Instant, tolerance: Duration?) async throws {}
}
