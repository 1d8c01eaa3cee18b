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

import GRPCCore
import Testing

@testable import MeshTransport

private typealias Log = MeshRequestLog<[UInt8]>
private typealias Channel = MeshResponseChannel<[UInt8]>

private func message(_ byte: UInt8) -> RPCRequestPart<[UInt8]> {
  .message([byte])
}

private func byte(_ part: RPCRequestPart<[UInt8]>?) -> UInt8? {
  if case .message(let bytes)? = part { return bytes.first }
  return nil
}

@Suite("An RPC's request log and response channel")
struct MeshCallStreamsTests {
  @Test("Every attempt replays the whole request while it is replayable")
  func replay() async throws {
    let log = Log(limit: 8)
    try await log.write(.metadata([:]))
    try await log.write(message(1))
    try await log.write(message(2))
    log.finish()
    for _ in 0..<3 {
      let reader = try #require(log.addReader())
      guard case .metadata? = try await log.next(reader) else {
        Issue.record("the replay does not start with the metadata")
        return
      }
      #expect(byte(try await log.next(reader)) == 1)
      #expect(byte(try await log.next(reader)) == 2)
      #expect(byte(try await log.next(reader)) == nil)
      log.removeReader(reader)
    }
    #expect(log.isReplayable)
  }

  @Test("A reader waits for parts written later, and a commit ends replaying")
  func liveAndCommit() async throws {
    let log = Log(limit: 8)
    let reader = try #require(log.addReader())
    async let first = log.next(reader)
    try await log.write(message(7))
    #expect(byte(try await first) == 7)
    log.commit(reader)
    #expect(!log.isReplayable)
    try await log.write(message(8))
    #expect(byte(try await log.next(reader)) == 8)
    log.removeReader(reader)
    #expect(log.addReader() == nil, "the start of the request is gone")
  }

  @Test("Past its limit the request is no longer replayable, and the writer waits for readers")
  func limitAndBackpressure() async throws {
    let log = Log(limit: 2)
    let reader = try #require(log.addReader())
    for value in 0..<2 { try await log.write(message(UInt8(value))) }
    #expect(log.isReplayable)
    // The third part passes the limit: the writer waits until the reader has caught up.
    async let third = log.write(message(2))
    for value in 0..<3 { #expect(byte(try await log.next(reader)) == UInt8(value)) }
    #expect(try await third == false)
    #expect(!log.isReplayable)
  }

  @Test("Written directly: recorded for a replay, never held back; a replay reads it all")
  func direct() async throws {
    let log = Log(limit: 3)
    log.beginDirect()
    // The caller writes to the attempt's stream itself: the log only records.
    for value in 0..<2 { #expect(try await log.write(message(UInt8(value)))) }
    #expect(log.isReplayable)
    // The attempt failed: a retry reads what was written, then what follows, from the log.
    log.beginReplay()
    let reader = try #require(log.addReader())
    #expect(try await log.write(message(2)) == false)
    #expect(log.finish() == false)
    for value in 0..<3 { #expect(byte(try await log.next(reader)) == UInt8(value)) }
    #expect(byte(try await log.next(reader)) == nil)

    // Past the limit, written directly: the recording is dropped, and the writer never waits.
    let long = Log(limit: 2)
    long.beginDirect()
    for value in 0..<5 { #expect(try await long.write(message(UInt8(value)))) }
    #expect(!long.isReplayable)
    #expect(long.finish())

    // Committed: nothing is recorded any more.
    let committed = Log(limit: 4)
    committed.beginDirect()
    #expect(try await committed.write(message(0)))
    committed.commitDirect()
    #expect(!committed.isReplayable)
    #expect(try await committed.write(message(1)))
    #expect(!committed.isReplayable)
  }

  @Test("Closing the RPC fails the writer and every reader")
  func close() async throws {
    let log = Log(limit: 2)
    let reader = try #require(log.addReader())
    let waiting = Task { try await log.next(reader) }  // a reader blocked in another task
    log.close(with: RPCError(code: .deadlineExceeded, message: "late"))
    await #expect(throws: RPCError.self) { try await waiting.value }
    await #expect(throws: RPCError.self) { try await log.write(message(1)) }
  }

  @Test("The response passes parts in order, ends, and can be failed by the RPC")
  func response() async throws {
    let channel = Channel(capacity: 4)
    #expect(await channel.send(.message([1])))
    #expect(await channel.send(.message([2])))
    channel.finish()
    var received: [UInt8] = []
    while let part = try await channel.next() {
      if case .message(let bytes) = part { received += bytes }
    }
    #expect(received == [1, 2])

    let failed = Channel()
    let next = Task { try await failed.next() }  // a caller blocked in another task
    failed.fail(RPCError(code: .deadlineExceeded, message: "late"))
    await #expect(throws: RPCError.self) { try await next.value }
    #expect(await failed.send(.message([1])) == false)
  }

  @Test("A sender blocked on a full channel is released when the caller stops reading")
  func consumerGone() async {
    let channel = Channel(capacity: 1)
    async let blocked = channel.send(.message([1]))
    channel.consumerFinished()
    #expect(await blocked == false)
    #expect(await channel.send(.message([2])) == false)
  }
}
