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
///
/// Consul's IDs and names are Go strings, equal only when their bytes are; Swift's `String ==`
/// is canonical equivalence, under which "café" in NFC and in NFD are one name. Every table of the
/// agent is keyed by this type so that two registrations Consul keeps apart stay apart here.
package struct ConsulAgentKey: Hashable, Comparable, Sendable, CustomStringConvertible,
  ExpressibleByStringLiteral
{
  /// The text, exactly as received.
  package let text: String

  package init(_ text: String) {
    self.text = text
  }

  package init(stringLiteral value: String) {
    self.text = value
  }

  package static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.text.utf8.elementsEqual(rhs.text.utf8)
  }

  package func hash(into hasher: inout Hasher) {
    var text = self.text
    text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
  }

  /// Byte order, as Go sorts strings.
  package static func < (lhs: Self, rhs: Self) -> Bool {
    lhs.text.utf8.lexicographicallyPrecedes(rhs.text.utf8)
  }

  package var description: String { self.text }
}
