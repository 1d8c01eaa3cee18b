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

public import Foundation
public import MeshTransport

#if YAML
  internal import Yams
#endif

/// A mesh configuration file, JSON or YAML: for the client, timeouts, retries, hedging, retry
/// budgets, circuit breakers and outlier detection, for every target and per service and method,
/// in the shape of the Envoy configuration it replaces; for the server, the ``Server`` section.
///
/// ```yaml
/// defaults:                      # every target service
///   timeout: 10s
///   retry_policy:
///     retry_on: 5xx,reset,connect-failure,refused-stream
///     num_retries: 3
///     per_try_timeout: 5s
///     retry_back_off: { base_interval: 0.25s, max_interval: 2s }
///   circuit_breakers: { max_connections: 100, max_pending_requests: 200, max_requests: 500, max_retries: 5 }
/// services:
///   orders:
///     timeout: 2s
///     methods:
///       orders.Orders/Create: { retry_policy: { num_retries: 0 } }
/// ```
///
/// A service's section replaces the defaults' value of each key it sets (a `retry_policy` there is
/// a whole retry policy, its unset fields at the built-in defaults); a method's section does the
/// same over its service's. Unknown fields and bad values are errors naming the field.
public struct MeshConfigurationFile: Sendable {
  /// The settings of every target, and of named ones.
  public var defaults: Section
  public var services: [String: Section]
  /// The `server` section, read by a mesh server (`MeshServerConfiguration`); nil when the file
  /// has none.
  public var server: Server?

  /// The settings of one section.
  public struct Section: Sendable {
    public var resilience: MeshResiliencePolicy
    /// The balancing policy, if the section names one.
    public var policy: MeshBalancingPolicy?
  }

  /// Reads and checks a file; `.json` is JSON, anything else YAML (a superset of JSON).
  public static func load(path: String) throws(MeshConfigurationError) -> Self {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw MeshConfigurationError(
        code: .unreadable,
        file: path,
        field: "",
        message: "cannot be read: \(error.localizedDescription)",
        cause: error
      )
    }
    return try Self.parse(data, format: path.hasSuffix(".json") ? .json : .yaml, file: path)
  }

  public enum Format: Sendable {
    case json
    case yaml
  }

  /// Checks a file's contents; `file` names it in errors.
  public static func parse(
    _ data: Data,
    format: Format,
    file: String = "<configuration>"
  ) throws(MeshConfigurationError) -> Self {
    let root: FileRoot
    do {
      switch format {
      case .json:
        root = try JSONDecoder().decode(FileRoot.self, from: data)
      case .yaml:
        guard let text = String(data: data, encoding: .utf8) else {
          throw MeshConfigurationError(
            code: .unreadable,
            file: file,
            field: "",
            message: "is not UTF-8 text"
          )
        }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
          root = FileRoot()
        } else {
          #if YAML
            root = try YAMLDecoder().decode(FileRoot.self, from: text)
          #else
            throw MeshConfigurationError(
              code: .unreadable,
              file: file,
              field: "",
              message: "is YAML, and this build reads JSON only (the package's YAML trait is off)"
            )
          #endif
        }
      }
    } catch let error as MeshConfigurationError {
      throw error
    } catch let error as FieldError {
      throw Self.fileError(error, file: file)
    } catch let error as DecodingError {
      throw Self.describe(error, file: file)
    } catch {
      throw MeshConfigurationError(
        code: .malformed,
        file: file,
        field: "",
        message: "is not valid \(format == .json ? "JSON" : "YAML"): \(error)",
        cause: error
      )
    }
    do throws(FieldError) {
      let defaults = root.defaults ?? SectionFile()
      var services: [String: Section] = [:]
      for (name, section) in root.services ?? [:] {
        guard !name.isEmpty else {
          throw FieldError(path: "services", "a service name must not be empty")
        }
        services[name] = try section.over(defaults).section(at: "services.\(name)")
      }
      return Self(
        defaults: try defaults.section(at: "defaults"),
        services: services,
        server: root.server
      )
    } catch {
      throw Self.fileError(error, file: file)
    }
  }

  private static func fileError(_ error: FieldError, file: String) -> MeshConfigurationError {
    MeshConfigurationError(
      code: .invalidValue,
      file: file,
      field: error.path,
      message: error.message,
      cause: error.cause
    )
  }

  private static func describe(_ error: DecodingError, file: String) -> MeshConfigurationError {
    func path(_ codingPath: [any CodingKey]) -> String { dotted(codingPath) }
    switch error {
    case .typeMismatch(let type, let context):
      return MeshConfigurationError(
        code: .invalidValue,
        file: file,
        field: path(context.codingPath),
        message: "expected \(Self.describe(type))",
        cause: error
      )
    case .valueNotFound(let type, let context):
      return MeshConfigurationError(
        code: .invalidValue,
        file: file,
        field: path(context.codingPath),
        message: "expected \(Self.describe(type)), found null",
        cause: error
      )
    case .keyNotFound(let key, let context):
      return MeshConfigurationError(
        code: .invalidValue,
        file: file,
        field: path(context.codingPath + [key]),
        message: "is required",
        cause: error
      )
    case .dataCorrupted(let context):
      // YAMLDecoder wraps what a field's decoder threw, and syntax errors, in dataCorrupted.
      if let field = context.underlyingError as? FieldError {
        return Self.fileError(field, file: file)
      }
      if let inner = context.underlyingError as? DecodingError {
        return Self.describe(inner, file: file)
      }
      if let underlying = context.underlyingError {
        return MeshConfigurationError(
          code: .malformed,
          file: file,
          field: path(context.codingPath),
          message: "is not valid YAML: \(underlying)",
          cause: underlying
        )
      }
      return MeshConfigurationError(
        code: context.codingPath.isEmpty ? .malformed : .invalidValue,
        file: file,
        field: path(context.codingPath),
        message: context.codingPath.isEmpty
          ? "is not valid: \(context.debugDescription)" : context.debugDescription,
        cause: error
      )
    @unknown default:
      return MeshConfigurationError(
        code: .malformed,
        file: file,
        field: "",
        message: "\(error)",
        cause: error
      )
    }
  }

  private static func describe(_ type: Any.Type) -> String {
    switch type {
    case is Int.Type: return "an integer"
    case is Double.Type: return "a number"
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    default: return "a section (a mapping of fields)"
    }
  }
}
