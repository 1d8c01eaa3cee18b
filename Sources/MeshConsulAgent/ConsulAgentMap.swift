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
/// An ID or a name as Consul compares it: byte for byte.
internal import Foundation
internal import MeshCore

/// A JSON object whose keys are IDs or names, kept apart byte for byte as Consul (a Go map)
/// keeps them, and written in byte order as Go's encoder writes a map.
///
/// Foundation's `JSONEncoder` keys every object by `String`, under whose `==` "café" in NFC and
/// in NFD are one key: the second would silently replace the first. So a map is encoded under
/// placeholder keys (a per-response random nonce and the entry's index), and
/// ``ConsulAgentMapKeys/substitute(in:)`` puts each key, encoded by `JSONEncoder` as a JSON string,
/// back in place of its placeholder. Without a ``ConsulAgentMapKeys`` in the encoder's `userInfo`
/// the keys are written as they are, as `JSONEncoder` would write a dictionary.
package struct ConsulAgentMap<Value: Encodable & Sendable>: Encodable, Sendable {
  /// The entries, in byte order of their keys, each key once.
  package private(set) var entries: [(key: ConsulAgentKey, value: Value)]

  package init(_ entries: some Sequence<(key: ConsulAgentKey, value: Value)>) {
    var unique: [ConsulAgentKey: Value] = [:]
    for (key, value) in entries { unique[key] = value }
    self.entries = unique.map { (key: $0.key, value: $0.value) }.sorted { $0.key < $1.key }
  }

  /// The value of `key`, compared byte for byte.
  package subscript(key: ConsulAgentKey) -> Value? {
    self.entries.first { $0.key == key }?.value
  }

  package var count: Int { self.entries.count }

  package func encode(to encoder: any Encoder) throws {
    let keys = encoder.userInfo[ConsulAgentMapKeys.userInfoKey] as? ConsulAgentMapKeys
    var container = encoder.container(keyedBy: MapKey.self)
    for (key, value) in self.entries {
      try container.encode(value, forKey: MapKey(keys?.placeholder(for: key) ?? key.text))
    }
  }

  private struct MapKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }

    init(_ stringValue: String) { self.stringValue = stringValue }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }
}

extension ConsulAgentMap: ExpressibleByDictionaryLiteral {
  package init(dictionaryLiteral elements: (ConsulAgentKey, Value)...) {
    self.init(elements.map { (key: $0.0, value: $0.1) })
  }
}

extension ConsulAgentMap: Equatable where Value: Equatable {
  package static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
  }
}

/// The keys of the ``ConsulAgentMap``s of one response, behind their placeholders.
package final class ConsulAgentMapKeys: Sendable {
  static let userInfoKey = CodingUserInfoKey(rawValue: "ConsulAgentMapKeys")!

  /// Random for each response, so that no text a client registers can look like a placeholder.
  private let nonce = UUID().uuidString
  private let keys = MeshMutex<[ConsulAgentKey]>([])
  /// Digits of a placeholder's index: fixed, so that placeholders sort as their indexes.
  private static let digits = 12

  package init() {}

  func placeholder(for key: ConsulAgentKey) -> String {
    let index = self.keys.withLock { keys in
      keys.append(key)
      return keys.count - 1
    }
    let number = String(index)
    return self.nonce + "-" + String(repeating: "0", count: Self.digits - number.count) + number
  }

  /// `json` with every quoted placeholder replaced by its key as `encoder` writes a string.
  func substitute(in json: Data, encoder: JSONEncoder) throws -> Data {
    let keys = self.keys.withLock { $0 }
    if keys.isEmpty { return json }
    let marker = Array("\"\(self.nonce)-".utf8)
    let bytes = Array(json)
    var result = Data()
    result.reserveCapacity(bytes.count)
    var rest = bytes[...]
    while let found = rest.firstRange(of: marker) {
      let digitsEnd = found.upperBound + Self.digits
      guard digitsEnd < rest.endIndex, rest[digitsEnd] == UInt8(ascii: "\""),
        let index = Int(String(decoding: rest[found.upperBound..<digitsEnd], as: UTF8.self)),
        keys.indices.contains(index)
      else {
        throw EncodingError.invalidValue(
          json,
          EncodingError.Context(codingPath: [], debugDescription: "a map key's placeholder is cut")
        )
      }
      result.append(contentsOf: rest[rest.startIndex..<found.lowerBound])
      result.append(try encoder.encode(keys[index].text))
      rest = rest[(digitsEnd + 1)...]
    }
    result.append(contentsOf: rest)
    return result
  }
}
