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

internal import MeshCore
internal import MeshTransport

/// The intentions a server decides calls by, as Consul last answered: a MeshServer following
/// its service's intentions updates it from a blocking query, and
/// ``MeshAuthorizationInterceptor`` reads it at every call.
///
/// Until the first set arrives nothing is decided (the interceptor answers UNAVAILABLE); after
/// it, a failed read of Consul keeps the last good set.
public final class MeshIntentions: Sendable {
  private struct State {
    var policy: MeshIntentionPolicy?
    var updates = 0
    /// Tasks waiting for the next update.
    var waiting: [MeshSignal] = []
  }

  private let state = MeshMutex(State())
  /// Services every verified caller may call whatever the intentions say: by default the health
  /// service, which Consul's gRPC checks and the clients' health checking call with their own
  /// identities (Consul's sidecars likewise expose health checks outside intentions).
  public let openServices: Set<String>

  public init(
    _ policy: MeshIntentionPolicy? = nil,
    openServices: Set<String> = ["grpc.health.v1.Health"]
  ) {
    self.openServices = openServices
    if let policy { self.state.withLock { $0 = State(policy: policy, updates: 1) } }
  }

  /// The set in force; nil before the first.
  public var current: MeshIntentionPolicy? { self.state.withLock { $0.policy } }

  /// How many sets have been put in force.
  public var updates: Int { self.state.withLock { $0.updates } }

  /// Puts `policy` in force for the calls that follow.
  public func update(_ policy: MeshIntentionPolicy) {
    let waiting = self.state.withLock { state in
      state.policy = policy
      state.updates += 1
      defer { state.waiting.removeAll() }
      return state.waiting
    }
    for signal in waiting { signal.fire() }
  }

  /// Returns once more than `count` sets have been put in force (``updates`` passes `count`), or
  /// when the task is cancelled.
  public func waitForUpdate(after count: Int) async {
    while !Task.isCancelled {
      let signal = MeshSignal()
      let done = self.state.withLock { state -> Bool in
        if state.updates > count { return true }
        state.waiting.append(signal)
        return false
      }
      if done { return }
      await signal.wait()
    }
  }

  /// The decision for a call; nil before the first set.
  func decide(
    identities: [MeshServiceIdentity],
    service: String,
    method: String
  ) -> MeshAuthorizationPolicy.Decision? {
    if self.openServices.contains(service) {
      return MeshAuthorizationPolicy.Decision(action: .allow, reason: "health is open to the mesh")
    }
    return self.current?.decide(identities: identities, service: service, method: method)
  }
}
