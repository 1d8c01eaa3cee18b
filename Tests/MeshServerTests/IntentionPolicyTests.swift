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

import Logging
import MeshConsul
import MeshTransport
import Testing

@testable import MeshServer

@Suite("Consul intentions: decisions as Consul makes them")
struct IntentionPolicyTests {
  let frontend = [AuthorizationPolicyTests.spiffe("frontend")]
  let admin = [AuthorizationPolicyTests.spiffe("admin", domain: "other.example")]
  let batch = [AuthorizationPolicyTests.spiffe("batch")]

  @Test("The most specific intention matching the caller decides; its trust domain is not compared")
  func precedence() {
    let policy = MeshIntentionPolicy(
      intentions: [
        .init(source: "*", destination: "billing", action: .deny, precedence: 8),
        .init(source: "*", destination: "*", action: .allow, precedence: 5),
        .init(source: "frontend", destination: "billing", action: .allow, precedence: 9),
        .init(source: "admin", destination: "*", action: .allow, precedence: 6),
      ],
      defaultAction: .deny
    )
    #expect(policy.intentions.map(\.precedence) == [9, 8, 6, 5])
    let allowed = decide(policy, self.frontend, "billing.Billing/Charge")
    #expect(allowed.action == .allow)
    #expect(allowed.reason == "intention frontend => billing (allow)")
    #expect(decide(policy, self.batch, "billing.Billing/Charge").action == .deny)
    // `* => billing` (8) outranks `admin => *` (6), as in Consul.
    #expect(decide(policy, self.admin, "billing.Billing/Charge").action == .deny)
  }

  @Test("An L7 intention: the first matching permission decides; none matching is the default")
  func permissions() {
    let policy = MeshIntentionPolicy(
      intentions: [
        .init(
          source: "frontend",
          destination: "billing",
          action: nil,
          permissions: [
            .init(action: .deny, match: .pathExact("/billing.Billing/Refund")),
            .init(action: .allow, match: .pathPrefix("/billing.Billing/")),
          ],
          precedence: 9
        ),
        // Never reached by frontend: its own intention is terminal, as in Consul.
        .init(source: "*", destination: "billing", action: .allow, precedence: 8),
      ],
      defaultAction: .deny
    )
    #expect(decide(policy, self.frontend, "billing.Billing/Charge").action == .allow)
    let refund = decide(policy, self.frontend, "billing.Billing/Refund")
    #expect(refund.action == .deny)
    #expect(refund.reason.contains("/billing.Billing/Refund"))
    let other = decide(policy, self.frontend, "grpc.reflection.Reflection/Info")
    #expect(other.action == .deny)
    #expect(other.reason.contains("no permission matches"))
    #expect(decide(policy, self.batch, "billing.Billing/Refund").action == .allow)
  }

  @Test("Conditions the mesh cannot evaluate fail closed: a deny matches, an allow never does")
  func unsupportedConditions() {
    let policy = MeshIntentionPolicy(
      intentions: [
        .init(
          source: "frontend",
          destination: "billing",
          action: nil,
          permissions: [
            .init(action: .allow, match: .unsupported("a path regex")),
            .init(action: .allow, match: .pathPrefix("/billing.Billing/")),
          ],
          precedence: 9
        ),
        .init(
          source: "batch",
          destination: "billing",
          action: nil,
          permissions: [
            .init(action: .deny, match: .unsupported("header conditions")),
            .init(action: .allow, match: .any),
          ],
          precedence: 9
        ),
      ],
      defaultAction: .allow
    )
    // The unreadable allow is skipped; the next permission decides.
    #expect(decide(policy, self.frontend, "billing.Billing/Charge").action == .allow)
    // The unreadable deny denies everything.
    #expect(decide(policy, self.batch, "billing.Billing/Charge").action == .deny)
  }

  @Test("No intention matching: the default decides, and says so")
  func defaults() {
    let empty = MeshIntentionPolicy(intentions: [], defaultAction: .allow)
    let decision = decide(empty, self.frontend, "billing.Billing/Charge")
    #expect(decision.action == .allow)
    #expect(decision.reason == "no intention matches; default allow")
  }

  @Test("A caller's service is read as Consul's RBAC reads it: default namespace, no partition")
  func callerServices() throws {
    func names(_ ids: [String]) throws -> Set<String> {
      MeshIntentionPolicy.serviceNames(of: try ids.map { try MeshServiceIdentity(parsing: $0) })
    }
    #expect(try names(["spiffe://mesh.local/ns/default/svc/web"]) == ["web"])
    #expect(try names(["spiffe://1a2b.consul/ns/default/dc/dc1/svc/web"]) == ["web"])
    #expect(try names(["spiffe://1a2b.consul/ns/team-b/dc/dc1/svc/web"]).isEmpty)
    #expect(try names(["spiffe://1a2b.consul/ap/blue/ns/default/dc/dc1/svc/web"]).isEmpty)
    #expect(try names(["spiffe://mesh.local/web/svc/web"]).isEmpty)
    #expect(try names(["Web.Mesh.Local"]) == ["web"])
  }

  @Test("From Consul: foreign sources match no caller; JWT requirements never allow")
  func fromConsul() throws {
    let watch = MeshIntentionsWatch(
      client: try ConsulClient(ConsulClientConfiguration()),
      service: "billing",
      settings: .init(defaultAction: .allow),
      intentions: MeshIntentions(),
      logger: .init(label: "test")
    )
    var peered = ConsulIntention(sourceName: "frontend", destinationName: "billing", action: "deny")
    peered.sourcePeer = "dc2"
    var otherNamespace = ConsulIntention(
      sourceName: "frontend",
      destinationName: "billing",
      action: "deny"
    )
    otherNamespace.sourceNS = "team-b"
    var jwt = ConsulIntention(sourceName: "batch", destinationName: "billing", action: "allow")
    jwt.jwt = .object(["Providers": .array([])])
    let permission = ConsulIntention(
      sourceName: "admin",
      destinationName: "billing",
      action: nil,
      permissions: [
        ConsulIntentionPermission(
          action: "allow",
          http: .init(pathPrefix: "/billing.Billing/"),
          jwt: .object([:])
        )
      ]
    )
    let policy = watch.policy(from: [peered, otherNamespace, jwt, permission])
    // The peer's and the other namespace's frontend are not this mesh's frontend.
    #expect(policy.intentions.map(\.source) == ["batch", "admin"])
    #expect(decide(policy, self.frontend, "billing.Billing/Charge").action == .allow)
    #expect(decide(policy, self.batch, "billing.Billing/Charge").action == .deny)
    let admin = [AuthorizationPolicyTests.spiffe("admin")]
    // The JWT-gated allow never matches: no permission does, and the default decides.
    #expect(decide(policy, admin, "billing.Billing/Charge").reason.contains("no permission"))
  }
}
