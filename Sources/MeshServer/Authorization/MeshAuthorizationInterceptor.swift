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

public import CoreMetrics
public import GRPCCore
public import Logging
internal import MeshCore
internal import MeshTransport

/// Decides every call by its caller's verified identity before any handler code runs: a denied
/// call fails with PERMISSION_DENIED naming the rule, a call with no verified identity (plaintext,
/// or a certificate without one) with UNAUTHENTICATED.
///
/// Each decision can go to an audit log: every denial, and a share of the allowed calls
/// (``auditAllowedShare``), as structured swift-log lines (`mesh.authz.decision`,
/// `mesh.authz.caller`, `mesh.authz.method`, `mesh.authz.rule`; the handler adds the time).
public struct MeshAuthorizationInterceptor: ServerInterceptor {
  /// What decides.
  private enum Authority: Sendable {
    case rules(MeshAuthorizationPolicy)
    case intentions(MeshIntentions)
  }

  private let authority: Authority
  /// Where decisions are logged; nil: nowhere.
  public let audit: Logger?
  /// The share of allowed calls logged, 0 to 1; denials are always logged.
  public let auditAllowedShare: Double
  /// Counts decisions (`mesh.server.authorization.decisions`); nil when nothing records.
  private let counters: Counters?

  /// Decides by fixed rules.
  ///
  /// `metrics`: where decisions are counted; nil: swift-metrics' bootstrapped factory.
  public init(
    policy: MeshAuthorizationPolicy,
    audit: Logger? = nil,
    auditAllowedShare: Double = 0,
    metrics: (any MetricsFactory)? = nil
  ) {
    self.init(
      .rules(policy),
      audit: audit,
      auditAllowedShare: auditAllowedShare,
      metrics: metrics
    )
  }

  /// Decides by the intentions `intentions` holds at each call (a MeshServer keeps them as
  /// Consul has them); calls before the first set fail with UNAVAILABLE.
  public init(
    intentions: MeshIntentions,
    audit: Logger? = nil,
    auditAllowedShare: Double = 0,
    metrics: (any MetricsFactory)? = nil
  ) {
    self.init(
      .intentions(intentions),
      audit: audit,
      auditAllowedShare: auditAllowedShare,
      metrics: metrics
    )
  }

  private init(
    _ authority: Authority,
    audit: Logger?,
    auditAllowedShare: Double,
    metrics: (any MetricsFactory)?
  ) {
    self.authority = authority
    self.audit = audit
    self.auditAllowedShare = auditAllowedShare.isFinite ? min(max(auditAllowedShare, 0), 1) : 0
    let factory = metrics ?? MetricsSystem.factory
    self.counters = factory is NOOPMetricsHandler ? nil : Counters(factory: factory)
  }

  /// One counter per method and decision, made on first use.
  private final class Counters: Sendable {
    private let factory: any MetricsFactory
    private let counters = MeshMutex<[Key: Counter]>([:])

    private struct Key: Hashable {
      var method: MethodDescriptor
      var decision: String
    }

    init(factory: any MetricsFactory) {
      self.factory = factory
    }

    func count(_ decision: String, method: MethodDescriptor) {
      let key = Key(method: method, decision: decision)
      let counter = self.counters.value(for: key) {
        Counter(
          label: MeshMetricNames.authorizationDecisions,
          dimensions: [
            (MeshMetricNames.method, method.fullyQualifiedMethod),
            (MeshMetricNames.decision, decision),
          ],
          factory: self.factory
        )
      }
      counter.increment()
    }
  }

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    let method = context.descriptor
    guard let caller = MeshCaller.current(in: context) else {
      self.counters?.count("unauthenticated", method: method)
      self.log(.deny, caller: "none", method: method, reason: "no verified identity")
      throw RPCError(
        code: .unauthenticated,
        message: "\(method.fullyQualifiedMethod) needs a verified mesh identity (mTLS)."
      )
    }
    let decision: MeshAuthorizationPolicy.Decision
    switch self.authority {
    case .rules(let policy):
      decision = policy.decide(
        identities: caller.identities,
        service: method.service.fullyQualifiedService,
        method: method.method
      )
    case .intentions(let intentions):
      guard
        let decided = intentions.decide(
          identities: caller.identities,
          service: method.service.fullyQualifiedService,
          method: method.method
        )
      else {
        self.counters?.count("unavailable", method: method)
        self.log(.deny, caller: "\(caller.identity)", method: method, reason: "no intentions yet")
        throw RPCError(
          code: .unavailable,
          message: "The server has not loaded its intentions from Consul yet; try again."
        )
      }
      decision = decided
    }
    self.counters?.count(decision.action.rawValue, method: method)
    switch decision.action {
    case .allow:
      if self.auditAllowedShare > 0, Double.random(in: 0..<1) < self.auditAllowedShare {
        self.log(.allow, caller: "\(caller.identity)", method: method, reason: decision.reason)
      }
      return try await next(request, context)
    case .deny:
      self.log(.deny, caller: "\(caller.identity)", method: method, reason: decision.reason)
      throw RPCError(
        code: .permissionDenied,
        message:
          "\(caller.identity) may not call \(method.fullyQualifiedMethod) (\(decision.reason))."
      )
    }
  }

  private func log(
    _ action: MeshAuthorizationPolicy.Action,
    caller: String,
    method: MethodDescriptor,
    reason: String
  ) {
    guard let audit = self.audit else { return }
    audit.log(
      level: action == .deny ? .warning : .info,
      "Authorization decision",
      metadata: [
        "mesh.authz.decision": "\(action.rawValue)",
        "mesh.authz.caller": "\(caller)",
        "mesh.authz.method": "\(method.fullyQualifiedMethod)",
        "mesh.authz.rule": "\(reason)",
      ]
    )
  }
}
