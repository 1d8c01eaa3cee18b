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

package import GRPCCore

/// The cause of an RPC's failure when its server never processed it: its stream was refused
/// (HTTP/2 `REFUSED_STREAM`, or above the last stream ID of the server's GOAWAY) or never sent
/// (its connection was going away).
///
/// A subchannel reports it as an `RPCError`'s cause. The balancing transport then makes the
/// attempt again at once, on the same endpoint's next connection or another endpoint, whatever
/// the method's retry policy (gRFC A6's transparent retry, at most twice an RPC), and does not
/// count it against the endpoint.
public struct MeshUnprocessedRPC: Error, Sendable, CustomStringConvertible {
  /// Why the server did not process it.
  public var reason: String

  public init(_ reason: String) {
    self.reason = reason
  }

  public var description: String { self.reason }
}

extension RPCError {
  /// Whether the server never processed the RPC: a ``MeshUnprocessedRPC`` among the error's
  /// causes.
  package var meshUnprocessed: Bool {
    var cause = self.cause
    // Causes nest through RPCErrors; a few levels are all a transport makes.
    for _ in 0..<8 {
      guard let current = cause else { return false }
      if current is MeshUnprocessedRPC { return true }
      cause = (current as? RPCError)?.cause
    }
    return false
  }
}
