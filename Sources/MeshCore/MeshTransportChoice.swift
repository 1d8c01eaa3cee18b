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

/// Which HTTP/2 transport a mesh client or server runs on, as `MESH_TRANSPORT` names it.
package enum MeshTransportChoice: Sendable, Hashable {
  /// grpc-swift's NIO transport.
  case nio
  /// The native transport (libnghttp2 and OpenSSL), built with the package's Native trait.
  case native

  /// `text` (nil or empty: the default, `native` with the Native trait and `nio` without) read
  /// as the value of `field`.
  ///
  /// - Throws: `MeshInputError` (`invalid`) for anything but `nio` and, with the Native trait,
  ///   `native`.
  package init(_ text: String?, field: String) throws(MeshInputError) {
    switch text ?? "" {
    case "nio":
      self = .nio
    #if Native
      case "", "native":
        self = .native
    #else
      case "":
        self = .nio
    #endif
    case let other:
      #if Native
        let choices = "'nio' or 'native'"
      #else
        let choices = "'nio' (the native transport needs the package's Native trait)"
      #endif
      throw MeshInputError(.invalid, field: field, "must be \(choices), not '\(other)'")
    }
  }
}
