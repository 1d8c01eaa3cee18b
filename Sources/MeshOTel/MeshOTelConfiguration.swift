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

#if OTLP

  internal import Foundation
  internal import MeshCore

  /// Where a process's spans go and how often.
  public struct MeshOTelConfiguration: Sendable {
    /// The resource's `service.name`: the service the spans are grouped under.
    public var serviceName: String
    /// The collector's OTLP/gRPC address, `http://host:port` (plaintext) or `https://host:port`
    /// (TLS); default `http://localhost:4317`.
    public var endpoint: String
    /// How long spans wait to be exported in batches (default 5 s).
    public var exportInterval: Duration
    /// The longest one export may take (default 10 s).
    public var exportTimeout: Duration
    /// The share of traces this process starts that are recorded, 0 to 1; nil: all. A call that
    /// continues a caller's trace follows the caller's decision.
    public var samplingRatio: Double?
    /// More resource attributes (`deployment.environment`, `service.version`, …).
    public var resourceAttributes: [String: String]

    public init(
      serviceName: String,
      endpoint: String = "http://localhost:4317",
      exportInterval: Duration = .seconds(5),
      exportTimeout: Duration = .seconds(10),
      samplingRatio: Double? = nil,
      resourceAttributes: [String: String] = [:]
    ) {
      self.serviceName = serviceName
      self.endpoint = endpoint
      self.exportInterval = exportInterval
      self.exportTimeout = exportTimeout
      self.samplingRatio = samplingRatio
      self.resourceAttributes = resourceAttributes
    }

    /// Checks every setting before swift-otel sees it.
    ///
    /// - Throws: ``MeshOTelError`` naming the field.
    public func validate() throws(MeshOTelError) {
      guard !self.serviceName.isEmpty else {
        throw MeshOTelError(field: "serviceName", message: "must not be empty")
      }
      try Self.checkEndpoint(self.endpoint, field: "endpoint")
      for (field, value) in [
        ("exportInterval", self.exportInterval), ("exportTimeout", self.exportTimeout),
      ]
      where value <= .zero || value > .seconds(3_600) {
        throw MeshOTelError(field: field, message: "must be more than 0 and at most 1 hour")
      }
      if let ratio = self.samplingRatio, !(0...1).contains(ratio) {
        throw MeshOTelError(field: "samplingRatio", message: "must be from 0 to 1, not \(ratio)")
      }
    }
  }

  extension MeshOTelConfiguration {
    /// Checks an OTLP/gRPC endpoint: `http://host:port` or `https://host:port`.
    static func checkEndpoint(_ text: String, field: String) throws(MeshOTelError) {
      guard let url = URLComponents(string: text), let scheme = url.scheme,
        ["http", "https"].contains(scheme), let host = url.host, !host.isEmpty, url.port != nil
      else {
        throw MeshOTelError(
          field: field,
          message: "must be http://host:port or https://host:port, not \(MeshInput.quoted(text))"
        )
      }
      do {
        _ = try MeshHost(host, field: field)
        _ = try MeshInput.port(url.port ?? 0, field: field)
      } catch {
        throw MeshOTelError(field: field, message: error.message)
      }
    }
  }

  /// A bad tracing setting or environment variable.
  public struct MeshOTelError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The setting or variable at fault.
    public var field: String
    public var message: String

    public init(field: String, message: String) {
      self.field = field
      self.message = message
    }

    public var description: String { "\(self.field): \(self.message)" }
  }
#endif
