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

internal import GRPCCore
internal import Logging
internal import MeshCore
internal import MeshDiscovery
internal import MeshProto
internal import SwiftProtobuf

// Each endpoint's grpc.health.v1 Watch stream: what makes it pickable.
extension MeshBalancingTransport {
  /// Keeps a grpc.health.v1 Watch open on the endpoint, marking it eligible while it is up.
  func watchHealth(of entry: StateMachine.Entry) async {
    let health = Grpc_Health_V1_Health.Client(wrapping: entry.first.client)
    let healthChecking = self.configuration.healthChecking
    let serviceName = healthChecking?.serviceName ?? ""
    var backoff = Duration.milliseconds(100)
    // The first Watch after the endpoint was up fails fast, so that its error says why the
    // endpoint is down. The ones after a failure wait for the connection to come back: they
    // answer the moment it is up, instead of at this loop's next turn, up to 5 s later.
    var options = CallOptions.defaults
    while !Task.isCancelled {
      do {
        let answered = try await health.watch(
          .with { $0.service = serviceName },
          options: options
        ) { response in
          var answered = false
          do {
            for try await message in response.messages {
              answered = true
              self.setHealth(
                entry,
                connected: true,
                eligible: healthChecking == nil || message.status == .serving,
                error: nil
              )
            }
          } catch  where answered {
            // The stream broke after it was up: reconnect promptly.
          }
          return answered
        }
        self.setHealth(entry, connected: false, eligible: false, error: "The health stream ended.")
        if answered {
          backoff = .milliseconds(100)
          options.waitForReady = false
        }
      } catch let error as RPCError
        where error.code == .unimplemented
        || (healthChecking == nil
          && (error.code == .permissionDenied || error.code == .unauthenticated))
      {
        // No health service (or, watching for connectivity only, one this client may not
        // call): the server answered, so it is reachable. Nothing more to watch. Its RPCs get
        // the server's own answer.
        self.setHealth(entry, connected: true, eligible: true, error: nil)
        await entry.removed.wait()
        return
      } catch {
        guard !Task.isCancelled else { return }
        self.setHealth(
          entry,
          connected: false,
          eligible: false,
          error: self.describeConnectionFailure(error, endpoint: entry.endpoint)
        )
        options.waitForReady = true
      }
      // Reconnect with backoff (the connection itself also backs off).
      guard (try? await self.clock.sleep(for: backoff)) != nil else { return }
      backoff = min(backoff * 2, .seconds(5))
    }
  }

  /// What went wrong connecting to `endpoint`: the factory's account (a TLS verification
  /// failure, with the identities) where it has one, else the error and its causes.
  func describeConnectionFailure(_ error: any Error, endpoint: MeshEndpoint) -> String {
    if let failure = self.factory.connectionFailure(for: endpoint) {
      return "\(failure)"
    }
    var parts: [String] = []
    var next: (any Error)? = error
    while let current = next, parts.count < 4 {
      if let rpc = current as? RPCError {
        parts.append(rpc.message)
        next = rpc.cause
      } else {
        parts.append("\(current)")
        next = nil
      }
    }
    return parts.joined(separator: ": ")
  }

  private func setHealth(
    _ entry: StateMachine.Entry,
    connected: Bool,
    eligible: Bool,
    error: String?
  ) {
    let (effects, transition) = self.state.withLock {
      $0.machine.setHealth(
        of: entry.id,
        generation: entry.generation,
        connected: connected,
        eligible: eligible,
        error: error
      )
    }
    self.perform(effects)
    guard let transition else { return }
    if let error = transition.new {
      self.logger.warning(
        "Cannot use an endpoint",
        metadata: [
          "mesh.service": "\(self.service)", "mesh.endpoint": "\(entry.endpoint)",
          "mesh.error": "\(error)",
        ]
      )
    } else if transition.old != nil {
      self.logger.info(
        "An endpoint is usable again",
        metadata: ["mesh.service": "\(self.service)", "mesh.endpoint": "\(entry.endpoint)"]
      )
    }
  }
}
