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

public import Foundation
internal import MeshCore

// What the benchmarks measure with: closed-loop workers, latency percentiles, and settings from
// the environment read through the mesh's checked conversions.

/// A duration from the environment variable `name` (seconds, or a Go duration), else `default`;
/// a bad value ends the process with a message naming the variable.
public func environmentDuration(_ name: String, default value: Duration) -> Duration {
  guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else { return value }
  do {
    return try MeshInput.duration(
      text,
      field: name,
      bareSeconds: true,
      in: .milliseconds(1)...(.seconds(3600))
    )
  } catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(1)
  }
}

/// A whole number from the environment variable `name`, in `range`, else `default`; a bad value
/// ends the process with a message naming the variable.
public func environmentInteger(_ name: String, default value: Int, in range: ClosedRange<Int64>)
  -> Int
{
  guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else { return value }
  do {
    return Int(try MeshInput.integer(text, field: name, in: range))
  } catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(1)
  }
}

public struct LoadMeasurement: Sendable {
  public var calls = 0
  public var seconds = 0.0
  public var latencies: [Double] = []  // microseconds

  public init(calls: Int = 0, seconds: Double = 0, latencies: [Double] = []) {
    self.calls = calls
    self.seconds = seconds
    self.latencies = latencies
  }

  public var throughput: Double { Double(self.calls) / self.seconds }

  public func percentile(_ p: Double) -> Double {
    let sorted = self.latencies.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
  }

  public mutating func merge(_ other: LoadMeasurement) {
    self.calls += other.calls
    self.seconds += other.seconds
    self.latencies += other.latencies
  }
}

/// Runs `concurrency` workers calling `call` for `duration`.
public func measure(
  concurrency: Int,
  for duration: Duration,
  _ call: @escaping @Sendable () async throws -> Void
) async throws -> LoadMeasurement {
  let start = ContinuousClock.now
  let end = start.advanced(by: duration)
  let perWorker = try await withThrowingTaskGroup(of: [Double].self) { group in
    for _ in 0..<concurrency {
      group.addTask {
        var latencies: [Double] = []
        latencies.reserveCapacity(100_000)
        while ContinuousClock.now < end {
          let before = ContinuousClock.now
          try await call()
          latencies.append(before.duration(to: .now) / .microseconds(1))
        }
        return latencies
      }
    }
    var all: [[Double]] = []
    for try await latencies in group { all.append(latencies) }
    return all
  }
  let elapsed = start.duration(to: .now) / .seconds(1)
  let latencies = perWorker.flatMap { $0 }
  return LoadMeasurement(calls: latencies.count, seconds: elapsed, latencies: latencies)
}

public func format(_ value: Double, _ digits: Int = 0) -> String {
  String(format: "%.\(digits)f", value)
}

/// The lines `handle` delivers (a pipe, standard input), read by blocking reads on a thread of
/// their own; the sequence finishes at the end of the file.
public func lines(of handle: FileHandle) -> AsyncStream<String> {
  let (lines, continuation) = AsyncStream.makeStream(of: String.self)
  let thread = Thread {
    var buffer = Data()
    while true {
      let data = handle.availableData
      if data.isEmpty { break }
      buffer.append(data)
      while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
        continuation.yield(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
        buffer.removeSubrange(buffer.startIndex...newline)
      }
    }
    continuation.finish()
  }
  thread.start()
  return lines
}
