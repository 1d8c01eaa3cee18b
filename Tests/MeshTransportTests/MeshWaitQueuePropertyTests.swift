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

import PropertyBased
import Testing

@testable import MeshTransport

@Suite("Wait queue properties")
struct MeshWaitQueuePropertyTests {
  @Test("Its count is always the number of waiters, whatever order they come, go and are woken")
  func countEqualsWaiters() async {
    let steps = Gen<UInt64>.value().array(of: 1...300)
    await propertyCheck(count: 300, input: steps) { steps in
      var queue = MeshWaitQueue<UInt64>()
      var waiting: Set<UInt64> = []
      var made: [UInt64] = []
      // IDs made (an RPC found it must wait) whose waiter is not stored yet, and whether a
      // wake-up has come since each was made.
      var checkingIn: [UInt64: Bool] = [:]
      for step in steps {
        switch step % 6 {
        case 0:
          // A waiter that checks in at once.
          let id = queue.makeID()
          made.append(id)
          let stored = queue.enqueue(id, id: id)
          #expect(stored)
          waiting.insert(id)
        case 1:
          // An RPC that found it must wait; it stores its waiter at a later step.
          let id = queue.makeID()
          made.append(id)
          checkingIn[id] = false
        case 2:
          // A waiter checks in after its ID was made: refused if a wake-up came in between.
          guard let (id, missedWakeUp) = checkingIn.min(by: { $0.key < $1.key }) else { continue }
          checkingIn[id] = nil
          let stored = queue.enqueue(id, id: id)
          #expect(stored == !missedWakeUp)
          if !missedWakeUp { waiting.insert(id) }
        case 3:
          // A cancellation, of a waiting, woken or never-enqueued waiter alike.
          guard !made.isEmpty else { continue }
          let id = made[Int(step >> 3) % made.count]
          let removed = queue.remove(id)
          #expect((removed != nil) == waiting.contains(id))
          waiting.remove(id)
          checkingIn[id] = nil
        case 4:
          // An ID made for a waiter whose task was cancelled before it checked in.
          made.append(queue.makeID())
        default:
          // The balancer changed: every waiter is woken, once, and every RPC about to wait.
          let woken = queue.removeAll()
          #expect(Set(woken) == waiting)
          #expect(woken.count == waiting.count)
          waiting.removeAll()
          for id in checkingIn.keys { checkingIn[id] = true }
        }
        #expect(queue.count == waiting.count)
        #expect(queue.isEmpty == waiting.isEmpty)
      }
    }
  }
}
