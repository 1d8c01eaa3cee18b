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
internal import MeshCore
internal import MeshTransport

/// A bad field, by its path in the file.
struct FieldError: Error {
  var path: String
  var message: String
  var cause: (any Error)?

  init(path: String, _ message: String, cause: (any Error)? = nil) {
    self.path = path
    self.message = message
    self.cause = cause
  }
}

/// Any key, to find the ones a section does not know.
struct AnyKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

func rejectUnknownKeys(
  in decoder: any Decoder,
  known: some Sequence<String>
) throws {
  let known = Set(known)
  let container = try decoder.container(keyedBy: AnyKey.self)
  for key in container.allKeys where !known.contains(key.stringValue) {
    let path = dotted(decoder.codingPath + [key])
    throw FieldError(
      path: path,
      "is not a known field (known: \(known.sorted().joined(separator: ", ")))"
    )
  }
}

/// A field's path as the file's errors name it: `services.orders.retry_policy`,
/// `server.authorization.rules[0].source`.
func dotted(_ path: [any CodingKey]) -> String {
  var text = ""
  for key in path {
    // An array's index; a dictionary's key that reads as a number ("8080") stays a name.
    if let index = key.intValue, key.stringValue != String(index) {
      text += "[\(index)]"
    } else {
      text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
    }
  }
  return text
}

/// A duration: Go syntax (`"250ms"`, `"0.25s"`, `"10s"`, `"1m30s"`), or a number of seconds, from
/// 0 to ``MeshResiliencePolicy/maximumDuration``; read through ``MeshInput``, so nothing out of
/// range can trap.
struct FileDuration: Decodable {
  var value: Duration

  static let range = Duration.zero...MeshResiliencePolicy.maximumDuration

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    let path = dotted(decoder.codingPath)
    let seconds = try? container.decode(Double.self)
    let text = seconds == nil ? try? container.decode(String.self) : nil
    let value: Duration?
    do throws(MeshInputError) {
      if let seconds {
        value = try MeshInput.duration(seconds: seconds, field: path, in: Self.range)
      } else if let text {
        value = try MeshInput.duration(text, field: path, bareSeconds: true, in: Self.range)
      } else {
        value = nil
      }
    } catch {
      throw FieldError(
        path: path,
        "expected a duration like \"250ms\" or \"10s\": \(error.message)",
        cause: error
      )
    }
    guard let value else {
      throw FieldError(path: path, "expected a duration like \"250ms\" or \"10s\"")
    }
    self.value = value
  }
}

/// A whole number: an integer, or a number with no fraction (`3.0`), read through ``MeshInput``
/// so that values past 64 bits (`1e19`) are an error naming the field, not a trap or a
/// decoder's message.
struct FileInteger: Decodable {
  var value: Int

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    let path = dotted(decoder.codingPath)
    if let integer = try? container.decode(Int.self) {
      self.value = integer
      return
    }
    guard let number = try? container.decode(Double.self) else {
      throw FieldError(path: path, "expected an integer")
    }
    do {
      self.value = Int(try MeshInput.integer(number, field: path))
    } catch {
      throw FieldError(path: path, "expected an integer: \(error.message)", cause: error)
    }
  }

}

struct FileRoot: Decodable {
  var defaults: SectionFile?
  var services: [String: SectionFile]?
  var server: MeshConfigurationFile.Server?

  init() {}

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case defaults, services, server
  }

  init(from decoder: any Decoder) throws {
    try rejectUnknownKeys(in: decoder, known: CodingKeys.allCases.map(\.rawValue))
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.defaults = try container.decodeIfPresent(SectionFile.self, forKey: .defaults)
    self.services = try container.decodeIfPresent([String: SectionFile].self, forKey: .services)
    self.server = try container.decodeIfPresent(MeshConfigurationFile.Server.self, forKey: .server)
  }
}
