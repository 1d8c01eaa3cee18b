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

import MeshCore

/// The demo's flags, checked before anything starts: `--duration <seconds or Go duration>`
/// (default 15 s, at most 24 h) and `--concurrency <n>` (default 8, at most 1024).
struct DemoOptions: Sendable {
  var duration: Duration = .seconds(15)
  var concurrency = 8
  var help = false

  static let durations: ClosedRange<Duration> = .milliseconds(1)...(.seconds(86_400))
  static let concurrencies: ClosedRange<Int64> = 1...1_024

  static let usage = """
    usage: mesh-demo [--duration <seconds>] [--concurrency <n>]
      --duration     how long to send traffic: seconds (15) or a duration (90s, 2m); 1ms to 24h
      --concurrency  how many workers send RPCs at once: 1 to 1024 (default 8)
    """

  init(_ arguments: [String]) throws(DemoError) {
    var rest = arguments.makeIterator()
    while let argument = rest.next() {
      switch argument {
      case "--duration":
        guard let text = rest.next() else { throw DemoError("--duration needs a value") }
        do {
          self.duration = try MeshInput.duration(
            text,
            field: "--duration",
            bareSeconds: true,
            in: Self.durations
          )
        } catch {
          throw DemoError("\(error) (seconds, or a duration such as 90s)")
        }
      case "--concurrency":
        guard let text = rest.next() else { throw DemoError("--concurrency needs a value") }
        do {
          self.concurrency = Int(
            try MeshInput.integer(text, field: "--concurrency", in: Self.concurrencies)
          )
        } catch {
          throw DemoError("\(error)")
        }
      case "--help", "-h":
        self.help = true
      default:
        throw DemoError("unknown argument \(MeshInput.quoted(argument)) (try --help)")
      }
    }
  }
}

struct DemoError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
