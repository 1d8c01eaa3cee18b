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

internal import Foundation
internal import MeshConsul
internal import MeshCore

/// Decodes request bodies as Consul's agent does: unknown fields are rejected, field names match
/// case-insensitively, and the documented snake_case aliases are accepted.
enum ConsulStrictJSON {
  /// The fields of an object: canonical name → its nested schema (nil for a plain value).
  final class Schema: Sendable {
    let fields: [String: Field]
    let aliases: [String: String]

    enum Field: Sendable {
      case value
      /// Durations: a Go duration string, or a number of nanoseconds.
      case duration
      case object(Schema)
      case arrayOfObjects(Schema)
      case mapOfObjects(Schema)
    }

    /// Values Consul gives fields the body leaves out, where the Swift type would refuse it.
    let defaults: [String: ConsulJSONValue]

    init(
      _ fields: [String: Field],
      aliases: [String: String] = [:],
      defaults: [String: ConsulJSONValue] = [:]
    ) {
      self.fields = fields
      self.aliases = aliases
      self.defaults = defaults
    }

    func canonical(_ key: String) -> String? {
      if let alias = self.aliases[key] { return alias }
      return self.fields.keys.first { $0.caseInsensitiveCompare(key) == .orderedSame }
    }
  }

  // Consul accepts `{"Passing": 3}`; Warning then defaults to 1 (Passing to 0, which it refuses).
  static let weights = Schema(
    ["Passing": .value, "Warning": .value],
    defaults: ["Passing": .number(0), "Warning": .number(1)]
  )
  static let serviceAddress = Schema(["Address": .value, "Port": .value])

  static let check = Schema(
    [
      "CheckID": .value, "Name": .value, "Status": .value, "Notes": .value, "GRPC": .value,
      "GRPCUseTLS": .value, "TLSServerName": .value, "TLSSkipVerify": .value, "TTL": .duration,
      "Interval": .duration, "Timeout": .duration, "DeregisterCriticalServiceAfter": .duration,
      "HTTP": .value, "Method": .value, "Header": .value, "Body": .value,
      "DisableRedirects": .value, "TCP": .value, "UDP": .value, "H2PING": .value,
      "H2PingUseTLS": .value, "OSService": .value, "DockerContainerID": .value, "Shell": .value,
      "AliasNode": .value, "AliasService": .value, "ScriptArgs": .value,
      "SuccessBeforePassing": .value, "FailuresBeforeWarning": .value,
      "FailuresBeforeCritical": .value, "OutputMaxSize": .value, "ServiceID": .value,
    ],
    aliases: [
      "grpc_use_tls": "GRPCUseTLS", "tls_server_name": "TLSServerName",
      "tls_skip_verify": "TLSSkipVerify",
      "deregister_critical_service_after": "DeregisterCriticalServiceAfter",
      "Args": "ScriptArgs", "args": "ScriptArgs", "script_args": "ScriptArgs",
      "docker_container_id": "DockerContainerID", "alias_node": "AliasNode",
      "alias_service": "AliasService", "disable_redirects": "DisableRedirects",
      "success_before_passing": "SuccessBeforePassing",
      "failures_before_warning": "FailuresBeforeWarning",
      "failures_before_critical": "FailuresBeforeCritical", "output_max_size": "OutputMaxSize",
      "service_id": "ServiceID",
    ]
  )

  static let registration = Schema(
    [
      "ID": .value, "Name": .value, "Tags": .value, "Address": .value,
      "TaggedAddresses": .mapOfObjects(serviceAddress), "Meta": .value, "Port": .value,
      "SocketPath": .value, "Kind": .value, "Weights": .object(weights),
      "EnableTagOverride": .value, "Check": .object(check), "Checks": .arrayOfObjects(check),
      "Proxy": .value, "Connect": .value, "Token": .value, "Namespace": .value,
      "Partition": .value,
    ],
    aliases: [
      "tagged_addresses": "TaggedAddresses", "enable_tag_override": "EnableTagOverride",
      "socket_path": "SocketPath",
    ]
  )

  static let checkUpdate = Schema(["Status": .value, "Output": .value])

  static let intentionHeader = Schema(
    [
      "Name": .value, "Present": .value, "Exact": .value, "Prefix": .value, "Suffix": .value,
      "Contains": .value, "Regex": .value, "Invert": .value, "IgnoreCase": .value,
    ],
    aliases: ["ignore_case": "IgnoreCase"]
  )
  static let intentionHTTP = Schema(
    [
      "PathExact": .value, "PathPrefix": .value, "PathRegex": .value,
      "Header": .arrayOfObjects(intentionHeader), "Methods": .value,
    ],
    aliases: ["path_exact": "PathExact", "path_prefix": "PathPrefix", "path_regex": "PathRegex"]
  )
  static let intentionPermission = Schema([
    "Action": .value, "HTTP": .object(intentionHTTP), "JWT": .value,
  ])

  /// The body of `PUT /v1/connect/intentions/exact`: an `api.Intention`, as Consul's Go client
  /// sends it whole (only its action, permissions, description and meta are used).
  static let intention = Schema(
    [
      "ID": .value, "Description": .value, "SourcePeer": .value, "SourceNS": .value,
      "SourceName": .value, "SourcePartition": .value, "SourceSamenessGroup": .value,
      "DestinationNS": .value, "DestinationName": .value, "DestinationPartition": .value,
      "SourceType": .value, "Action": .value,
      "Permissions": .arrayOfObjects(intentionPermission), "JWT": .value, "DefaultAddr": .value,
      "DefaultPort": .value, "Meta": .value, "Precedence": .value, "CreatedAt": .value,
      "UpdatedAt": .value, "Hash": .value, "CreateIndex": .value, "ModifyIndex": .value,
      "LegacyMeta": .value,
    ]
  )

  static let sourceIntention = Schema(
    [
      "Name": .value, "Peer": .value, "Namespace": .value, "Partition": .value,
      "SamenessGroup": .value, "Action": .value,
      "Permissions": .arrayOfObjects(intentionPermission), "Precedence": .value,
      "LegacyID": .value, "Type": .value, "Description": .value, "JWT": .value,
    ],
    aliases: ["legacy_id": "LegacyID", "sameness_group": "SamenessGroup"]
  )

  /// The body of `PUT /v1/config` for a `service-intentions` entry.
  static let serviceIntentions = Schema([
    "Kind": .value, "Name": .value, "Sources": .arrayOfObjects(sourceIntention), "Meta": .value,
    "CreateIndex": .value, "ModifyIndex": .value,
  ])

  /// The `Kind` (or `kind`) of a config entry body.
  static func configEntryKind(_ body: Data) throws(ConsulAgentError) -> String {
    let value: ConsulJSONValue
    do {
      value = try JSONDecoder().decode(ConsulJSONValue.self, from: body)
    } catch {
      throw ConsulAgentError(400, "Request decoding failed: invalid JSON", cause: error)
    }
    guard case .object(let object) = value,
      let kind = object.first(where: { $0.key == "Kind" || $0.key == "kind" })?.value
    else {
      throw ConsulAgentError(
        400,
        "Request decoding failed: Payload does not contain a kind/Kind key at the top level"
      )
    }
    guard case .string(let text) = kind else {
      throw ConsulAgentError(400, "Request decoding failed: Kind must be a string")
    }
    return text
  }

  /// Decodes `body` as `T`, checking its fields against `schema` first.
  static func decode<T: Decodable>(
    _ type: T.Type,
    from body: Data,
    schema: Schema
  ) throws(ConsulAgentError) -> T {
    do {
      let value = try JSONDecoder().decode(ConsulJSONValue.self, from: body)
      let normalised = try self.normalise(value, schema: schema, path: "")
      let data = try JSONEncoder().encode(normalised)
      return try JSONDecoder().decode(T.self, from: data)
    } catch let error as ConsulAgentError {
      throw error
    } catch let error as DecodingError {
      throw ConsulAgentError(400, "Request decode failed: \(self.describe(error))", cause: error)
    } catch {
      // Never the error's own description: it can quote the whole body.
      throw ConsulAgentError(400, "Request decode failed: invalid JSON", cause: error)
    }
  }

  private static func normalise(
    _ value: ConsulJSONValue,
    schema: Schema,
    path: String
  ) throws(ConsulAgentError) -> ConsulJSONValue {
    guard case .object(let object) = value else {
      if case .null = value { return value }
      throw ConsulAgentError(400, "Request decode failed: json: cannot unmarshal into an object")
    }
    var result: [String: ConsulJSONValue] = [:]
    for (key, fieldValue) in object {
      guard let canonical = schema.canonical(key), let field = schema.fields[canonical] else {
        throw ConsulAgentError(
          400,
          "Request decode failed: json: unknown field \(MeshInput.quoted(key))"
        )
      }
      // Go keeps the last of two spellings of one field ("interval" and "Interval"); a Swift
      // dictionary has no order to tell which is last, so the body is refused rather than read
      // one way or the other at random. (Two exact duplicates never get here: Foundation's
      // decoder keeps the first.)
      guard result[canonical] == nil else {
        throw ConsulAgentError(
          400,
          "Request decode failed: json: duplicate field \(MeshInput.quoted(canonical))"
        )
      }
      let fieldPath = path.isEmpty ? canonical : "\(path).\(canonical)"
      switch field {
      case .value:
        result[canonical] = fieldValue
      case .duration:
        if case .number(let nanoseconds) = fieldValue {
          // A JSON number of nanoseconds: checked, never `Int64(someDouble)`.
          do {
            let duration = try MeshInput.duration(nanoseconds: nanoseconds, field: fieldPath)
            result[canonical] = .string(MeshGoDuration.format(duration))
          } catch {
            throw ConsulAgentError(400, "Request decode failed: \(error)", cause: error)
          }
        } else {
          result[canonical] = fieldValue
        }
      case .object(let nested):
        result[canonical] = try self.normalise(fieldValue, schema: nested, path: fieldPath)
      case .arrayOfObjects(let nested):
        if case .array(let elements) = fieldValue {
          var normalised: [ConsulJSONValue] = []
          for element in elements {
            normalised.append(try self.normalise(element, schema: nested, path: fieldPath))
          }
          result[canonical] = .array(normalised)
        } else {
          result[canonical] = fieldValue
        }
      case .mapOfObjects(let nested):
        if case .object(let entries) = fieldValue {
          var normalised: [String: ConsulJSONValue] = [:]
          for (entryKey, entry) in entries {
            normalised[entryKey] = try self.normalise(entry, schema: nested, path: fieldPath)
          }
          result[canonical] = .object(normalised)
        } else {
          result[canonical] = fieldValue
        }
      }
    }
    for (key, value) in schema.defaults where result[key] == nil {
      result[key] = value
    }
    return .object(result)
  }

  private static func describe(_ error: DecodingError) -> String {
    switch error {
    case .typeMismatch(_, let context), .valueNotFound(_, let context),
      .keyNotFound(_, let context), .dataCorrupted(let context):
      let path = String(context.codingPath.map(\.stringValue).joined(separator: ".").prefix(200))
      // The description names a type or a problem, never the value; cut anyway.
      let description = String(context.debugDescription.prefix(200))
      return path.isEmpty ? description : "\(path): \(description)"
    @unknown default:
      return "invalid request body"
    }
  }
}
