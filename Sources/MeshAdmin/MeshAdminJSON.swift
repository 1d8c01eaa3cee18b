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

/// A JSON value: what `/config_dump` prints, made by reflecting a configuration.
package enum MeshAdminJSON: Encodable, Equatable {
  case null
  case bool(Bool)
  case int(Int)
  case double(Double)
  case string(String)
  case array([MeshAdminJSON])
  case object([String: MeshAdminJSON])

  package static let redacted = MeshAdminJSON.string("[redacted]")

  /// Parts of keys whose values are secrets (lowercased, without `_`): tokens, passwords,
  /// cookies, bearer credentials.
  private static let secretKeys = ["token", "secret", "password", "passphrase", "cookie", "bearer"]

  package func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .null: try container.encodeNil()
    case .bool(let value): try container.encode(value)
    case .int(let value): try container.encode(value)
    case .double(let value):
      // JSON has no NaN or infinity.
      if value.isFinite { try container.encode(value) } else { try container.encode("\(value)") }
    case .string(let value): try container.encode(value)
    case .array(let values): try container.encode(values)
    case .object(let values): try container.encode(values)
    }
  }

  /// `value` as JSON, by reflection: structs become objects (their stored properties), enums
  /// their case (with its payload), collections arrays or objects, durations seconds. Secrets are
  /// redacted: values under secret-looking keys, and bytes (keys and certificates given in
  /// memory). Objects (classes) show only their type, so nothing is followed twice.
  package static func reflecting(_ value: Any, key: String? = nil, depth: Int = 0) -> MeshAdminJSON
  {
    if let key, Self.isSecret(key) {
      return Self.isNil(value) ? .null : Self.redacted
    }
    guard depth < 16 else { return .string("…") }
    switch value {
    case let value as Bool: return .bool(value)
    case let value as Int: return .int(value)
    case let value as Int64: return .int(Int(value))
    case let value as Int32: return .int(Int(value))
    case let value as UInt16: return .int(Int(value))
    case let value as UInt32: return .int(Int(value))
    case let value as Double: return .double(value)
    case let value as String: return .string(value)
    case let value as Duration:
      let parts = value.components
      return .double(Double(parts.seconds) + Double(parts.attoseconds) / 1e18)
    case let value as URL: return .string(Self.withoutPassword(value))
    case is [UInt8], is Data: return Self.redacted
    default: break
    }
    let mirror = Mirror(reflecting: value)
    switch mirror.displayStyle {
    case .optional:
      guard let wrapped = mirror.children.first else { return .null }
      return Self.reflecting(wrapped.value, key: key, depth: depth)
    case .collection, .set:
      return .array(mirror.children.map { Self.reflecting($0.value, key: key, depth: depth + 1) })
    case .dictionary:
      var object: [String: MeshAdminJSON] = [:]
      for child in mirror.children {
        let pair = Array(Mirror(reflecting: child.value).children)
        guard pair.count == 2 else { continue }
        let name = "\(pair[0].value)"
        object[name] = Self.reflecting(pair[1].value, key: name, depth: depth + 1)
      }
      return .object(object)
    case .enum:
      let name = String("\(value)".prefix { $0 != "(" })
      guard let payload = mirror.children.first else { return .string(name) }
      // The case's name is the payload's key: `.token("…")` is redacted as a `token` field is.
      return .object([name: Self.reflecting(payload.value, key: name, depth: depth + 1)])
    case .class:
      return .string("\(type(of: value))")
    case .struct, .tuple:
      // Identities, endpoints and the like read best as their description.
      if mirror.children.count <= 1, let described = value as? any CustomStringConvertible {
        return .string(described.description)
      }
      var object: [String: MeshAdminJSON] = [:]
      for (index, child) in mirror.children.enumerated() {
        let name = child.label.map { $0.hasPrefix("_") ? String($0.dropFirst()) : $0 }
        let label = name ?? "\(index)"
        object[label] = Self.reflecting(child.value, key: label, depth: depth + 1)
      }
      return .object(object)
    default:
      return .string("\(value)")
    }
  }

  private static func isSecret(_ key: String) -> Bool {
    let folded = key.lowercased().replacingOccurrences(of: "_", with: "")
    // `apiKey`, `privateKey`, `key`: a key held as a value (files show as paths, never bytes).
    return Self.secretKeys.contains { folded.contains($0) } || folded.hasSuffix("key")
  }

  private static func isNil(_ value: Any) -> Bool {
    let mirror = Mirror(reflecting: value)
    return mirror.displayStyle == .optional && mirror.children.isEmpty
  }

  /// The URL without what may be a credential: its user and password, and its query.
  private static func withoutPassword(_ url: URL) -> String {
    guard var parts = URLComponents(url: url, resolvingAgainstBaseURL: false) else {
      return "[redacted]"
    }
    guard parts.user != nil || parts.password != nil || parts.query != nil else {
      return url.absoluteString
    }
    if parts.user != nil || parts.password != nil {
      parts.user = "redacted"
      parts.password = nil
    }
    if parts.query != nil { parts.query = "redacted" }
    return parts.string ?? "[redacted]"
  }
}
