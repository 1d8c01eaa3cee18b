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

import MeshServer
import MeshTransport
import Testing

/// The two kinds of policy, decided alike in these tests.
protocol AuthorizationDeciding {
  func decide(
    identities: [MeshServiceIdentity],
    service: String,
    method: String
  ) -> MeshAuthorizationPolicy.Decision
}

extension MeshAuthorizationPolicy: AuthorizationDeciding {}
extension MeshIntentionPolicy: AuthorizationDeciding {}

/// `policy`'s decision for a call of `method` (`package.Service/Method`) by `identities`.
func decide(
  _ policy: some AuthorizationDeciding,
  _ identities: [MeshServiceIdentity],
  _ method: String
) -> MeshAuthorizationPolicy.Decision {
  let parts = method.split(separator: "/")
  return policy.decide(identities: identities, service: String(parts[0]), method: String(parts[1]))
}

@Suite("Authorization by caller identity: decisions")
struct AuthorizationPolicyTests {
  static func spiffe(_ service: String, domain: String = "mesh.local") -> MeshServiceIdentity {
    try! MeshServiceIdentity.spiffe(trustDomain: domain, service: service)
  }

  let checkout = [Self.spiffe("checkout")]
  let billing = [Self.spiffe("billing")]
  let partner = [Self.spiffe("checkout", domain: "partner.example")]

  @Test("The more specific destination wins, then the more specific source; deny wins a tie")
  func precedence() {
    let policy = MeshAuthorizationPolicy(
      rules: [
        .allow(from: .service("checkout"), to: .service("orders.Orders")),
        .deny(from: .any, to: .method("orders.Orders/Cancel")),
        .allow(from: .identity(Self.spiffe("checkout")), to: .method("orders.Orders/Cancel")),
        .deny(from: .trustDomain("partner.example"), to: .any),
        .allow(from: .any, to: .service("orders.Reports")),
        .deny(from: .any, to: .service("orders.Reports")),
      ],
      defaultAction: .deny
    )
    // A service-wide allow for checkout.
    #expect(decide(policy, self.checkout, "orders.Orders/Place").action == .allow)
    // Cancel: a method rule beats the service rule; the identity rule beats `*`.
    #expect(decide(policy, self.checkout, "orders.Orders/Cancel").action == .allow)
    let billingCancel = decide(policy, self.billing, "orders.Orders/Cancel")
    #expect(billingCancel.action == .deny)
    #expect(billingCancel.reason == "deny * -> orders.Orders/Cancel")
    // Nothing for billing on Place: the default.
    let billingPlace = decide(policy, self.billing, "orders.Orders/Place")
    #expect(billingPlace.action == .deny)
    #expect(billingPlace.rule == nil)
    #expect(billingPlace.reason == "default deny")
    // A service name matches in every trust domain the server trusts: the service-wide allow
    // (a more specific destination) beats the partner domain's deny of `*`, which decides
    // everything else of theirs.
    #expect(decide(policy, self.partner, "orders.Orders/Place").action == .allow)
    #expect(decide(policy, self.partner, "orders.Stock/Get").action == .deny)
    // Allow and deny equally specific: deny.
    #expect(decide(policy, self.checkout, "orders.Reports/Daily").action == .deny)
  }

  @Test("Sources: any, a trust domain, a service by SPIFFE ID or DNS name, one identity")
  func sources() throws {
    let policy = MeshAuthorizationPolicy(
      rules: [
        .allow(from: .trustDomain("mesh.local"), to: .method("a.A/Domain")),
        .allow(from: .service("checkout"), to: .method("a.A/Service")),
        .allow(from: .identity(Self.spiffe("checkout")), to: .method("a.A/Exact")),
        .allow(from: .any, to: .method("a.A/Any")),
      ],
      defaultAction: .deny
    )
    let dns = [try MeshServiceIdentity.dns("checkout.internal")]
    let other = [try MeshServiceIdentity.dns("checkoutx")]
    #expect(decide(policy, self.checkout, "a.A/Domain").action == .allow)
    #expect(decide(policy, self.partner, "a.A/Domain").action == .deny)
    #expect(decide(policy, dns, "a.A/Service").action == .allow)
    #expect(decide(policy, other, "a.A/Service").action == .deny)
    #expect(decide(policy, self.partner, "a.A/Service").action == .allow)
    #expect(decide(policy, self.partner, "a.A/Exact").action == .deny)
    #expect(decide(policy, self.checkout, "a.A/Exact").action == .allow)
    #expect(decide(policy, other, "a.A/Any").action == .allow)
    // The default when nothing matches.
    let open = MeshAuthorizationPolicy(defaultAction: .allow)
    #expect(decide(open, other, "a.A/Anything").action == .allow)
  }
}
