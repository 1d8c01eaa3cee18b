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

internal import CoreMetrics
internal import Foundation
internal import GRPCCore
internal import MeshCore

/// gRPC's client instruments for one target: gRFC A66's per call and per attempt, A96's retry
/// counts and A91's ejections. Labels: `grpc.method`, `grpc.target` and `grpc.status`, always in
/// that order (a Prometheus backend keys series by the order).
///
/// Instruments are made on first use and kept: a call looks its method up under one lock.
final class MeshClientMetrics: Sendable {
  /// The label of every instrument: the target as gRPC names it (`mesh:///greeter`).
  let target: String
  private let factory: any MetricsFactory
  private let methods = MeshMutex(Methods())
  private let ejections = MeshMutex<[String: Counter]>([:])
  private let breakers = MeshMutex<[String: Counter]>([:])
  private let sampler = MeshMutex(MeshStatsSampler())
  private let endpoints: [String: Gauge]
  private let pending: Gauge
  private let connections: Gauge
  private let budgetRefusals: Counter
  private let discoveryUpdates: Counter
  private let discoveryErrors: Counter
  private let discoveryLastSuccess: Gauge
  /// Discovery has answered at least once (before that, there is no last good answer).
  private let discoveryAnswered = MeshMutex(false)

  /// Methods beyond this many are counted as "other" (gRFC A66): a client calling method names
  /// it makes up cannot grow the number of series without bound.
  static let methodLimit = 1_000

  init(target: String, factory: any MetricsFactory) {
    self.target = target
    self.factory = factory
    let labels = [(MeshMetricNames.target, target)]
    var endpoints: [String: Gauge] = [:]
    for state in ["known", "pickable", "ejected", "half_open"] {
      endpoints[state] = Gauge(
        label: MeshMetricNames.endpoints,
        dimensions: labels + [(MeshMetricNames.state, state)],
        factory: factory
      )
    }
    self.endpoints = endpoints
    self.pending = Gauge(label: MeshMetricNames.pendingCalls, dimensions: labels, factory: factory)
    self.connections = Gauge(
      label: MeshMetricNames.openConnections,
      dimensions: labels,
      factory: factory
    )
    self.budgetRefusals = Counter(
      label: MeshMetricNames.budgetRefusals,
      dimensions: labels,
      factory: factory
    )
    self.discoveryUpdates = Counter(
      label: MeshMetricNames.discoveryUpdates,
      dimensions: labels,
      factory: factory
    )
    self.discoveryErrors = Counter(
      label: MeshMetricNames.discoveryErrors,
      dimensions: labels,
      factory: factory
    )
    self.discoveryLastSuccess = Gauge(
      label: MeshMetricNames.discoveryLastSuccess,
      dimensions: labels,
      factory: factory
    )
  }

  /// Records the transport's gauges, and what its running totals grew by since the last time.
  func record(_ stats: MeshTransportStats) {
    let sample = self.sampler.withLock { $0.sample(stats) }
    // Discovery sends a set only when it changes: while it reports no error it is answering,
    // so the time of its last good answer is now.
    if stats.discoveryError == nil, self.discoveryAnswered.withLock({ $0 }) {
      self.discoveryLastSuccess.record(Date().timeIntervalSince1970)
    }
    for (state, count) in sample.endpoints { self.endpoints[state]?.record(count) }
    self.pending.record(sample.pending)
    self.connections.record(sample.connections)
    if sample.budgetRefusals > 0 { self.budgetRefusals.increment(by: sample.budgetRefusals) }
    for (breaker, rejections) in sample.breakerRejections {
      let counter = self.breakers.value(for: breaker) {
        Counter(
          label: MeshMetricNames.breakerRejections,
          dimensions: [(MeshMetricNames.target, self.target), (MeshMetricNames.breaker, breaker)],
          factory: self.factory
        )
      }
      counter.increment(by: rejections)
    }
  }

  /// Discovery delivered an endpoint set.
  func discoveryUpdated() {
    self.discoveryUpdates.increment()
    self.discoveryAnswered.withLock { $0 = true }
    self.discoveryLastSuccess.record(Date().timeIntervalSince1970)
  }

  /// A discovery watch failed.
  func discoveryFailed() {
    self.discoveryErrors.increment()
  }

  /// The instruments of calls to `descriptor`.
  func method(_ descriptor: MethodDescriptor) -> Method {
    self.methods.withLock { methods in
      if let method = methods.known[descriptor] { return method }
      if methods.known.count < Self.methodLimit {
        let method = Method(
          name: descriptor.fullyQualifiedMethod,
          target: self.target,
          factory: self.factory
        )
        methods.known[descriptor] = method
        return method
      }
      if let other = methods.other { return other }
      let other = Method(name: "other", target: self.target, factory: self.factory)
      methods.other = other
      return other
    }
  }

  /// The methods with instruments of their own, and the one the others share.
  private struct Methods {
    var known: [MethodDescriptor: Method] = [:]
    var other: Method?
  }

  /// Counts an ejection by outlier detection.
  func ejected<Instant>(by reason: MeshOutlierDetector<Instant>.Reason) {
    let method: String =
      switch reason {
      case .successRate: "success_rate"
      case .failurePercentage: "failure_percentage"
      case .consecutiveFailures: "consecutive_failures"
      case .failedProbe: "failed_probe"
      }
    let counter = self.ejections.value(for: method) {
      Counter(
        label: MeshMetricNames.ejectionsEnforced,
        dimensions: [
          (MeshMetricNames.target, self.target), (MeshMetricNames.detectionMethod, method),
        ],
        factory: self.factory
      )
    }
    counter.increment()
  }

  /// One method's instruments.
  final class Method: Sendable {
    let name: String
    let attemptStarted: Counter
    let retries: Recorder
    let transparentRetries: Recorder
    let hedges: Recorder
    let retryDelay: CoreMetrics.Timer
    private let target: String
    private let factory: any MetricsFactory
    private let attempts = MeshMutex<[Status.Code: Attempt]>([:])
    private let calls = MeshMutex<[Status.Code: CoreMetrics.Timer]>([:])
    /// The instruments of OK, the common case, made up front: used without a lock.
    private let okAttempt: Attempt
    private let okCall: CoreMetrics.Timer

    /// The instruments of attempts that ended with one status.
    struct Attempt: Sendable {
      let duration: CoreMetrics.Timer
      let sent: Recorder
      let received: Recorder

      init(labels: [(String, String)], factory: any MetricsFactory) {
        self.duration = CoreMetrics.Timer(
          label: MeshMetricNames.clientAttemptDuration,
          dimensions: labels,
          preferredDisplayUnit: .seconds,
          factory: factory
        )
        self.sent = Recorder(
          label: MeshMetricNames.clientAttemptSentSize,
          dimensions: labels,
          factory: factory
        )
        self.received = Recorder(
          label: MeshMetricNames.clientAttemptReceivedSize,
          dimensions: labels,
          factory: factory
        )
      }
    }

    init(name: String, target: String, factory: any MetricsFactory) {
      self.name = name
      self.target = target
      self.factory = factory
      let labels = [(MeshMetricNames.method, name), (MeshMetricNames.target, target)]
      self.attemptStarted = Counter(
        label: MeshMetricNames.clientAttemptStarted,
        dimensions: labels,
        factory: factory
      )
      self.retries = Recorder(
        label: MeshMetricNames.clientCallRetries,
        dimensions: labels,
        factory: factory
      )
      self.transparentRetries = Recorder(
        label: MeshMetricNames.clientCallTransparentRetries,
        dimensions: labels,
        factory: factory
      )
      self.hedges = Recorder(
        label: MeshMetricNames.clientCallHedges,
        dimensions: labels,
        factory: factory
      )
      self.retryDelay = CoreMetrics.Timer(
        label: MeshMetricNames.clientCallRetryDelay,
        dimensions: labels,
        preferredDisplayUnit: .seconds,
        factory: factory
      )
      self.okAttempt = Attempt(labels: Self.labels(name, target, .ok), factory: factory)
      self.okCall = Self.callTimer(labels: Self.labels(name, target, .ok), factory: factory)
    }

    private static func labels(
      _ name: String,
      _ target: String,
      _ code: Status.Code
    ) -> [(String, String)] {
      [
        (MeshMetricNames.method, name), (MeshMetricNames.target, target),
        (MeshMetricNames.status, meshStatusName(code)),
      ]
    }

    private static func callTimer(
      labels: [(String, String)],
      factory: any MetricsFactory
    ) -> CoreMetrics.Timer {
      CoreMetrics.Timer(
        label: MeshMetricNames.clientCallDuration,
        dimensions: labels,
        preferredDisplayUnit: .seconds,
        factory: factory
      )
    }

    /// Records an attempt's end: its duration and the message bytes each way.
    func attemptEnded(_ code: Status.Code, duration: Duration, sent: Int, received: Int) {
      let instruments =
        code == .ok
        ? self.okAttempt
        : self.attempts.value(for: code) {
          Attempt(labels: Self.labels(self.name, self.target, code), factory: self.factory)
        }
      instruments.duration.recordNanoseconds(MeshInput.nanoseconds(clamping: duration))
      instruments.sent.record(sent)
      instruments.received.record(received)
    }

    /// Records a call's end: its duration, and (gRFC A96) its retries, transparent retries and
    /// hedges where there were any, and the time spent waiting between attempts.
    func callEnded(_ code: Status.Code, duration: Duration, counts: MeshCallCounts) {
      let timer =
        code == .ok
        ? self.okCall
        : self.calls.value(for: code) {
          Self.callTimer(labels: Self.labels(self.name, self.target, code), factory: self.factory)
        }
      timer.recordNanoseconds(MeshInput.nanoseconds(clamping: duration))
      if counts.retries > 0 {
        self.retries.record(counts.retries)
        self.retryDelay.recordNanoseconds(MeshInput.nanoseconds(clamping: counts.retryDelay))
      }
      if counts.transparentRetries > 0 { self.transparentRetries.record(counts.transparentRetries) }
      if counts.hedges > 0 { self.hedges.record(counts.hedges) }
    }
  }
}

/// What a call did besides its first attempt (gRFC A96).
struct MeshCallCounts: Sendable {
  var retries = 0
  var transparentRetries = 0
  var hedges = 0
  /// The time the call waited with no attempt running (retry backoffs and pushbacks).
  var retryDelay = Duration.zero
}
