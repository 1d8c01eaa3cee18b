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

#if Consul
  internal import Logging
  internal import MeshConsul

  /// Follows a service's intentions in Consul with blocking queries and puts each new set in
  /// force; a failed read keeps the last good set and is retried with backoff (1 s doubling to
  /// 30 s).
  struct MeshIntentionsWatch: Sendable {
    let client: ConsulClient
    let service: String
    let settings: MeshServerConfiguration.Intentions
    let intentions: MeshIntentions
    let logger: Logger

    /// The shortest time between two reads: an agent (or a proxy before it) that answers at once
    /// instead of blocking is asked at most 10 times a second.
    static let minimumInterval = Duration.milliseconds(100)

    /// Runs until cancelled.
    func run() async {
      let clock = ContinuousClock()
      var index: UInt64 = 0
      var backoff = Duration.seconds(1)
      while !Task.isCancelled {
        let started = clock.now
        do {
          let response = try await self.client.intentionsMatching(
            destination: self.service,
            index: index,
            wait: self.settings.wait
          )
          // An answer without an index cannot be blocked on, and one without the service's key
          // is not an answer about it: both are failures (the last set stays), never "none".
          guard response.index > 0, let matched = response.value[self.service] else {
            throw MeshConsulError(
              code: .malformedResponse,
              message:
                "The intentions match answer has no X-Consul-Index or no '\(self.service)' key."
            )
          }
          // Consul's rules for blocking queries: an index that went backwards (a restarted
          // agent) starts over; one that did not move means nothing changed.
          if index == 0 || response.index != index {
            self.intentions.update(self.policy(from: matched))
            self.logger.info(
              "Intentions in force",
              metadata: [
                "mesh.service": "\(self.service)", "mesh.intentions": "\(matched.count)",
                "mesh.consul.index": "\(response.index)",
              ]
            )
          }
          index = response.index < index ? 0 : response.index
          backoff = .seconds(1)
          let elapsed = clock.now - started
          if elapsed < Self.minimumInterval {
            try? await clock.sleep(for: Self.minimumInterval - elapsed)
          }
        } catch {
          if Task.isCancelled { return }
          self.logger.warning(
            "Could not read the intentions from Consul; keeping the last set",
            metadata: ["mesh.service": "\(self.service)", "mesh.error": "\(error)"]
          )
          try? await Task.sleep(for: backoff)
          backoff = min(backoff * 2, .seconds(30))
        }
      }
    }

    /// Consul's intentions as the mesh decides them. Anything it cannot read fails closed.
    func policy(from matched: [ConsulIntention]) -> MeshIntentionPolicy {
      MeshIntentionPolicy(
        intentions: matched.compactMap { intention in
          // Sources in a cluster peer, a sameness group, another namespace or partition are
          // never this mesh's callers (whose identities name none): such intentions match none.
          let local: Set<String> = ["", "default"]
          guard (intention.sourcePeer ?? "").isEmpty, (intention.sourceSamenessGroup ?? "").isEmpty,
            local.contains(intention.sourceNS), local.contains(intention.sourcePartition ?? "")
          else { return nil }
          var permissions = (intention.permissions ?? []).compactMap(Self.permission)
          var action = intention.action.flatMap(MeshAuthorizationPolicy.Action.init(rawValue:))
          let isL7 = !(intention.permissions ?? []).isEmpty
          if !isL7, action == nil {
            self.logger.warning(
              "An intention with no action the mesh knows denies",
              metadata: [
                "mesh.intention": "\(intention.sourceName) => \(intention.destinationName)"
              ]
            )
            action = .deny
          }
          if intention.jwt != nil {
            // Every request from the source must carry a valid JWT, which mesh callers do not
            // present and the mesh does not check: none of the intention's allows can hold.
            permissions = permissions.map {
              $0.action == .allow
                ? .init(action: .allow, match: .unsupported("JWT requirements")) : $0
            }
            if action == .allow {
              self.logger.warning(
                "An intention that requires a JWT denies: the mesh does not check JWTs",
                metadata: [
                  "mesh.intention": "\(intention.sourceName) => \(intention.destinationName)"
                ]
              )
              action = .deny
            }
          }
          return MeshIntentionPolicy.Intention(
            source: intention.sourceName,
            destination: intention.destinationName,
            action: isL7 ? nil : action,
            permissions: permissions,
            precedence: intention.precedence
          )
        },
        defaultAction: self.settings.defaultAction
      )
    }

    /// One L7 permission; nil for one no gRPC call can match (HTTP methods without POST).
    private static func permission(
      _ permission: ConsulIntentionPermission
    ) -> MeshIntentionPolicy.Permission? {
      // An unknown action denies: a permission is never read as more than it says.
      let action = MeshAuthorizationPolicy.Action(rawValue: permission.action) ?? .deny
      if permission.jwt != nil {
        return .init(action: action, match: .unsupported("JWT requirements"))
      }
      guard let http = permission.http else { return .init(action: action, match: .any) }
      if let methods = http.methods, !methods.isEmpty, !methods.contains("POST") {
        return nil  // gRPC calls are POSTs
      }
      if http.pathRegex != nil || !(http.header ?? []).isEmpty {
        return .init(action: action, match: .unsupported("a path regex or header conditions"))
      }
      if let exact = http.pathExact { return .init(action: action, match: .pathExact(exact)) }
      if let prefix = http.pathPrefix { return .init(action: action, match: .pathPrefix(prefix)) }
      return .init(action: action, match: .any)
    }
  }
#endif
