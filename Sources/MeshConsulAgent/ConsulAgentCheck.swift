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

internal import MeshConsul
public import MeshCore

/// An HTTP error the agent answers with: a status and Consul's plain-text message.
public struct ConsulAgentError: MeshError, Hashable {
  /// The HTTP status the agent answers with.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    /// The status's number (400, 404, 500…).
    public let status: Int

    package init(status: Int) {
      self.status = status
    }

    /// 400: the request is malformed or refused (Consul's answer to a bad registration).
    public static let badRequest = Self(status: 400)
    /// 404: no such endpoint, service or check.
    public static let notFound = Self(status: 404)
    /// 405: the endpoint does not take the method.
    public static let methodNotAllowed = Self(status: 405)
    /// 413: the body is larger than the agent accepts.
    public static let contentTooLarge = Self(status: 413)
    /// 500: something failed inside the agent.
    public static let internalError = Self(status: 500)

    /// The status's number.
    public var description: String {
      "\(self.status)"
    }
  }

  /// The HTTP status to answer with.
  public var code: Code
  /// Consul's plain-text message, the body of the answer.
  public var message: String
  /// The error underneath (the JSON decoder's, Hummingbird's), if there was one; never sent.
  public var cause: (any Error)?

  /// An answer of `code` with `message`.
  public init(code: Code, message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  package init(_ status: Int, _ message: String, cause: (any Error)? = nil) {
    self.init(code: Code(status: status), message: message, cause: cause)
  }

  /// The HTTP status's number.
  public var status: Int {
    self.code.status
  }
}

/// How the agent runs a check.
package enum ConsulAgentCheckKind: Hashable, Sendable {
  /// The application reports it; it turns critical when `ttl` passes without a report.
  case ttl(Duration)
  /// The agent calls grpc.health.v1 Check on `target` every `interval`.
  case grpc(ConsulGRPCCheckTarget, interval: Duration, timeout: Duration)
  /// Maintenance mode: always critical.
  case maintenance
}

/// Where a gRPC check calls, parsed from `host:port[/service]`.
package struct ConsulGRPCCheckTarget: Hashable, Sendable {
  /// Validated by ``MeshHost``: only a real IPv4 or IPv6 address or a DNS name reaches grpc-swift.
  package var host: MeshHost
  package var port: Int
  package var service: String
  package var useTLS: Bool
  package var tlsServerName: String?
  package var tlsSkipVerify: Bool
  /// The text Consul shows in outputs (`host:port/service` as registered).
  package var text: String

  package init(parsing text: String, useTLS: Bool, tlsServerName: String?, tlsSkipVerify: Bool)
    throws(ConsulAgentError)
  {
    let slash = text.firstIndex(of: "/")
    let address = slash.map { text[..<$0] } ?? Substring(text)
    let service = slash.map { String(text[text.index(after: $0)...]) } ?? ""
    do {
      (self.host, self.port) = try MeshHost.parseAuthority(address, field: "GRPC")
    } catch {
      throw ConsulAgentError(
        400,
        "Invalid check: GRPC must be host:port[/service], not \(MeshInput.quoted(text)): "
          + error.message,
        cause: error
      )
    }
    self.service = service
    self.useTLS = useTLS
    self.tlsServerName = tlsServerName
    self.tlsSkipVerify = tlsSkipVerify
    self.text = text
  }
}

/// Check settings as Consul's agent adjusts them.
package enum ConsulAgentCheckLimits {
  /// Consul's `MinInterval`: shorter intervals are raised to it.
  package static let minimumInterval = Duration.seconds(1)
  /// Consul's gRPC check timeout when none (or a non-positive one) is given.
  package static let defaultTimeout = Duration.seconds(10)
  /// Consul's `checkDeregisterIntervalMin`: shorter values are raised to it.
  package static let minimumDeregisterAfter = Duration.seconds(60)
  /// Consul's default `OutputMaxSize`, in bytes.
  package static let outputMaxSize = 4096

  /// `output` cut to at most `maxBytes` of UTF-8, at a character boundary.
  package static func truncated(_ output: String, maxBytes: Int = Self.outputMaxSize) -> String {
    guard output.utf8.count > maxBytes else { return output }
    var end = output.startIndex
    var bytes = 0
    var index = output.startIndex
    while index < output.endIndex {
      let next = output.index(after: index)
      bytes += output.utf8.distance(from: index, to: next)
      guard bytes <= maxBytes else { break }
      end = next
      index = next
    }
    return String(output[..<end])
  }
}

extension ConsulAgentState {
  /// Builds a check from its definition, with Consul's defaults, floors and messages.
  static func makeCheck(
    _ definition: ConsulCheckDefinition,
    checkID: ConsulAgentKey,
    node: String,
    service: ConsulNodeService,
    now: Instant
  ) throws(ConsulAgentError) -> Check {
    func duration(_ text: String?, _ field: String) throws(ConsulAgentError) -> Duration? {
      guard let text, !text.isEmpty else { return nil }
      do {
        return try MeshGoDuration.parse(text, field: field)
      } catch {
        // Go's time.ParseDuration says the same for text that is not a duration and for one
        // past 64 bits of nanoseconds.
        throw ConsulAgentError(
          400,
          "Request decode failed: time: invalid duration \(MeshInput.quoted(text)) in \(field)",
          cause: error
        )
      }
    }
    let interval = try duration(definition.interval, "Interval")
    let ttl = try duration(definition.ttl, "TTL")
    var timeout = try duration(definition.timeout, "Timeout") ?? .zero
    if timeout <= .zero { timeout = ConsulAgentCheckLimits.defaultTimeout }
    var deregisterAfter = try duration(
      definition.deregisterCriticalServiceAfter,
      "DeregisterCriticalServiceAfter"
    )
    if let after = deregisterAfter {
      // Consul ignores a non-positive value and raises a small one to its minimum.
      deregisterAfter =
        after <= .zero ? nil : max(after, ConsulAgentCheckLimits.minimumDeregisterAfter)
    }
    if interval != nil && ttl != nil {
      throw ConsulAgentError(400, "Invalid check: Interval and TTL cannot both be specified")
    }
    if let warning = definition.failuresBeforeWarning,
      let critical = definition.failuresBeforeCritical, warning > critical
    {
      throw ConsulAgentError(
        400,
        "Invalid check: FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
      )
    }

    let kind: ConsulAgentCheckKind
    let type: String
    if let grpc = definition.grpc, !grpc.isEmpty {
      guard let interval, interval > .zero else {
        throw ConsulAgentError(
          400,
          "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        )
      }
      let target = try ConsulGRPCCheckTarget(
        parsing: grpc,
        useTLS: definition.grpcUseTLS ?? false,
        tlsServerName: definition.tlsServerName,
        tlsSkipVerify: definition.tlsSkipVerify ?? false
      )
      kind = .grpc(
        target,
        interval: max(interval, ConsulAgentCheckLimits.minimumInterval),
        timeout: timeout
      )
      type = "grpc"
    } else if definition.ttl != nil {
      guard let ttl, ttl > .zero else {
        throw ConsulAgentError(400, "Invalid check: TTL must be > 0 for TTL checks")
      }
      kind = .ttl(ttl)
      type = "ttl"
    } else if definition.http != nil || definition.tcp != nil {
      throw ConsulAgentError(
        400,
        "Invalid check: the embedded agent runs GRPC and TTL checks only"
      )
    } else {
      throw ConsulAgentError(400, "Invalid check: one of GRPC or TTL must be set")
    }

    let status = definition.status ?? .critical
    var health = ConsulHealthCheck(
      node: node,
      checkID: checkID.text,
      name: definition.name.flatMap { $0.isEmpty ? nil : $0 }
        ?? "Service '\(service.service)' check",
      status: status,
      notes: definition.notes ?? "",
      serviceID: service.id,
      serviceName: service.service,
      serviceTags: service.tags,
      type: type
    )
    if case .grpc(_, let interval, let timeout) = kind {
      health.interval = ConsulDuration.format(interval)
      health.timeout = ConsulDuration.format(timeout)
    }
    var check = Check(
      health: health,
      kind: kind,
      ttlDeadline: nil,
      deregisterCriticalAfter: deregisterAfter,
      criticalSince: status == .critical ? now : nil
    )
    if case .ttl(let ttl) = kind {
      check.ttlDeadline = now.advanced(by: ttl)
    }
    return check
  }
}
