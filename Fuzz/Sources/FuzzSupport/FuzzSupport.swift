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

internal import Dispatch
internal import Synchronization

/// Runs `body` to completion and returns its result, from synchronous code.
///
/// libFuzzer calls its target synchronously, one input at a time; the mesh's loaders are async.
/// Blocking a thread here is fine: the fuzzer's own thread is the only one that calls this.
public func runBlocking<Result: Sendable>(
  _ body: sending @escaping @isolated(any) () async -> Result
) -> Result {
  let done = DispatchSemaphore(value: 0)
  let box = ResultBox<Result>()
  Task {
    let result = await body()
    box.value.withLock { $0 = result }
    done.signal()
  }
  done.wait()
  return box.value.withLock { $0! }
}

private final class ResultBox<Result: Sendable>: Sendable {
  let value = Mutex<Result?>(nil)
}
