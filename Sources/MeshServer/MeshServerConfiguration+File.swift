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

public import MeshConfiguration
public import MeshCore
internal import MeshTransport

extension MeshServerConfiguration {
  /// Applies the `server` section of a configuration file (``MeshConfigurationFile/Server``):
  /// each field it sets replaces this configuration's; nothing is applied if one is bad.
  ///
  /// A `registration` or `intentions` section uses the Consul agent this configuration has for
  /// it already, else the default one (`127.0.0.1:8500`); ``fromEnvironment(_:)`` gives both
  /// the agent from `CONSUL_HTTP_ADDR`.
  ///
  /// - Parameters:
  ///   - server: The section.
  ///   - file: The file's name, for errors.
  /// - Throws: ``MeshConfigurationError`` naming the file's field (`server.connections.max_concurrent_streams`).
  public mutating func apply(
    _ server: MeshConfigurationFile.Server,
    file: String = "<configuration>"
  ) throws(MeshConfigurationError) {
    var candidate = self
    // The file's name of each field it set, for errors.
    var names: [String: String] = [:]
    func set<Value>(
      _ value: Value?,
      _ apply: (Value) -> Void,
      field: String,
      as fileField: String
    ) {
      guard let value else { return }
      apply(value)
      names[field] = "server.\(fileField)"
    }
    set(
      server.serviceName,
      { candidate.serviceName = $0 },
      field: "serviceName",
      as: "service_name"
    )
    set(server.host, { candidate.host = $0 }, field: "host", as: "host")
    set(server.port, { candidate.port = $0 }, field: "port", as: "port")
    if let tls = server.tls {
      candidate.tls = TLS(
        credentials: .directory(tls.certificatesDirectory, service: candidate.serviceName),
        clients: tls.trustDomain.map { .trustDomain($0) } ?? .anyIdentity
      )
    }
    if let drain = server.drain {
      set(drain.delay, { candidate.drain.delay = $0 }, field: "drain.delay", as: "drain.delay")
      set(
        drain.gracePeriod,
        { candidate.drain.gracePeriod = $0 },
        field: "drain.gracePeriod",
        as: "drain.grace_period"
      )
    }
    if let connections = server.connections {
      // Zero is "never" for the idle and age limits.
      func limit(_ value: Duration) -> Duration? { value == .zero ? nil : value }
      set(
        connections.maxConcurrentStreams,
        { candidate.connections.maxConcurrentStreams = $0 },
        field: "connections.maxConcurrentStreams",
        as: "connections.max_concurrent_streams"
      )
      set(
        connections.maxConnectionIdle,
        { candidate.connections.maxIdleTime = limit($0) },
        field: "connections.maxIdleTime",
        as: "connections.max_connection_idle"
      )
      set(
        connections.maxConnectionAge,
        { candidate.connections.maxAge = limit($0) },
        field: "connections.maxAge",
        as: "connections.max_connection_age"
      )
      set(
        connections.maxConnectionAgeGrace,
        { candidate.connections.maxAgeGrace = limit($0) },
        field: "connections.maxAgeGrace",
        as: "connections.max_connection_age_grace"
      )
      set(
        connections.maxRequestMessageBytes,
        { candidate.connections.maxRequestMessageBytes = $0 },
        field: "connections.maxRequestMessageBytes",
        as: "connections.max_request_message_bytes"
      )
    }
    if let authorization = server.authorization {
      var rules: [MeshAuthorizationPolicy.Rule] = []
      for (index, rule) in authorization.rules.enumerated() {
        let path = "server.authorization.rules[\(index)]"
        do {
          rules.append(
            MeshAuthorizationPolicy.Rule(
              source: try .init(parsing: rule.source, field: "\(path).source"),
              destination: try .init(parsing: rule.destination, field: "\(path).destination"),
              action: MeshAuthorizationPolicy.Action(rule.action),
              name: rule.name
            )
          )
        } catch {
          throw MeshConfigurationError(
            code: .invalidValue,
            file: file,
            field: error.field,
            message: error.message,
            cause: error
          )
        }
      }
      candidate.authorization = MeshAuthorizationPolicy(
        rules: rules,
        defaultAction: MeshAuthorizationPolicy.Action(authorization.defaultAction)
      )
      set(
        authorization.auditAllowedShare,
        { candidate.auditAllowedShare = $0 },
        field: "auditAllowedShare",
        as: "authorization.audit_allowed_share"
      )
    }
    #if Consul
      if let registration = server.registration {
        var value = candidate.registration ?? Registration()
        set(registration.id, { value.id = $0 }, field: "registration.id", as: "registration.id")
        set(
          registration.address,
          { value.advertisedAddress = $0 },
          field: "registration.advertisedAddress",
          as: "registration.address"
        )
        set(
          registration.port,
          { value.advertisedPort = $0 },
          field: "registration.advertisedPort",
          as: "registration.port"
        )
        set(
          registration.tags,
          { value.tags = $0 },
          field: "registration.tags",
          as: "registration.tags"
        )
        set(
          registration.meta,
          { value.meta = $0 },
          field: "registration.meta",
          as: "registration.meta"
        )
        set(
          registration.checkInterval,
          { value.checkInterval = $0 },
          field: "registration.checkInterval",
          as: "registration.check_interval"
        )
        set(
          registration.checkTimeout,
          { value.checkTimeout = $0 },
          field: "registration.checkTimeout",
          as: "registration.check_timeout"
        )
        if let after = registration.deregisterCriticalServiceAfter {
          value.deregisterCriticalServiceAfter = after == .zero ? nil : after
        }
        candidate.registration = value
      }
      if let intentions = server.intentions {
        var value = candidate.intentions ?? Intentions()
        value.defaultAction = MeshAuthorizationPolicy.Action(intentions.defaultAction)
        set(intentions.wait, { value.wait = $0 }, field: "intentions.wait", as: "intentions.wait")
        set(
          intentions.auditAllowedShare,
          { candidate.auditAllowedShare = $0 },
          field: "auditAllowedShare",
          as: "intentions.audit_allowed_share"
        )
        candidate.intentions = value
        names["intentions"] = "server.intentions"
      }
    #else
      for (section, field) in [
        (server.registration != nil, "registration"), (server.intentions != nil, "intentions"),
      ]
      where section {
        throw MeshConfigurationError(
          code: .invalidValue,
          file: file,
          field: "server.\(field)",
          message: "needs Consul, and this build has the package's Consul trait off"
        )
      }
    #endif
    do {
      try candidate.check(naming: { names[$0] ?? $0 })
    } catch {
      throw MeshConfigurationError(
        code: .invalidValue,
        file: file,
        field: error.field,
        message: error.message,
        cause: error
      )
    }
    self = candidate
  }
}

extension MeshAuthorizationPolicy.Action {
  init(_ action: MeshConfigurationFile.Server.Action) {
    switch action {
    case .allow: self = .allow
    case .deny: self = .deny
    }
  }
}

extension MeshAuthorizationPolicy.Source {
  /// A source from its text: `*`, `trust-domain:<domain>`, `service:<name>`, or an identity
  /// (`spiffe://...`, `dns:<name>`), as ``description`` writes it.
  public init(parsing text: String, field: String = "source") throws(MeshInputError) {
    func part(after prefix: String) throws(MeshInputError) -> String {
      let rest = String(text.dropFirst(prefix.count))
      guard !rest.isEmpty else {
        throw MeshInputError(
          code: .invalid,
          field: field,
          message: "names nothing after '\(prefix)'"
        )
      }
      return rest
    }
    if text == "*" {
      self = .any
    } else if text.hasPrefix("trust-domain:") {
      self = .trustDomain(try part(after: "trust-domain:"))
    } else if text.hasPrefix("service:") {
      self = .service(try part(after: "service:"))
    } else if text.hasPrefix("spiffe:") || text.hasPrefix("dns:") {
      do {
        self = .identity(try MeshServiceIdentity(parsing: text))
      } catch {
        throw MeshInputError(code: .invalid, field: field, message: "\(error)")
      }
    } else {
      throw MeshInputError(
        code: .invalid,
        field: field,
        message: """
          must be '*', 'trust-domain:<domain>', 'service:<name>', 'spiffe://...' or \
          'dns:<name>', not \(MeshInput.quoted(text))
          """
      )
    }
  }
}

extension MeshAuthorizationPolicy.Destination {
  /// A destination from its text: `*`, `package.Service` or `package.Service/Method`.
  public init(parsing text: String, field: String = "destination") throws(MeshInputError) {
    if text == "*" {
      self = .any
      return
    }
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    let valid =
      !text.isEmpty && parts.count <= 2 && parts.allSatisfy { !$0.isEmpty }
      && !text.contains(where: { $0.isWhitespace || $0 == "*" })
    guard valid else {
      throw MeshInputError(
        code: .invalid,
        field: field,
        message: """
          must be '*', 'package.Service' or 'package.Service/Method', not \
          \(MeshInput.quoted(text))
          """
      )
    }
    self = parts.count == 2 ? .method(text) : .service(text)
  }
}
