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

internal import MeshCore
internal import MeshDiscovery

/// One endpoint as the balancer keeps it: its connections (each with the streams open on it)
/// and what its health stream last said.
///
/// `Connection` is whatever the transport runs per connection (a subchannel and its client); the
/// pool only counts streams on it.
struct MeshEndpointEntry<Connection> {
  struct Pooled {
    var connection: Connection
    /// Streams open on it (the first connection's health Watch included).
    var streams: Int
  }

  /// The endpoint's instance key: its ID in the balancer.
  let id: String
  var endpoint: MeshEndpoint
  /// Tells this entry from an earlier one under the same ID (an endpoint replaced at another
  /// address): results for an older generation are ignored.
  var generation: UInt64
  /// Fired when the endpoint leaves the set (or the transport shuts down): its health stream
  /// stops and its connections drain.
  var removed: MeshSignal
  /// The endpoint's connections; the first carries the health Watch.
  var pool: [Pooled]
  /// Connections being made for it (reserved, not yet in ``pool``).
  var opening = 0

  /// The health stream is up (and, with health checking, reports SERVING).
  var eligible = false
  /// The health stream is up: the endpoint is connected, healthy or not.
  var connected = false
  /// The first probe has answered or failed.
  var probed = false
  /// Why the endpoint's last connection (or health stream) failed, while it is not connected.
  var lastError: String?

  init(id: String, endpoint: MeshEndpoint, generation: UInt64, first: Connection) {
    self.id = id
    self.endpoint = endpoint
    self.generation = generation
    self.removed = MeshSignal()
    // The health Watch holds one of the first connection's streams.
    self.pool = [Pooled(connection: first, streams: 1)]
  }

  /// The first connection: the one the health stream runs on.
  var first: Connection { self.pool[0].connection }

  /// The index of the least busy connection.
  var leastBusy: Int {
    var chosen = 0
    for index in self.pool.indices where self.pool[index].streams < self.pool[chosen].streams {
      chosen = index
    }
    return chosen
  }

  /// Whether another connection should be opened rather than a stream queued on `index`.
  func shouldGrow(at index: Int, maxStreams: Int, maxConnections: Int) -> Bool {
    self.pool[index].streams >= maxStreams && self.pool.count + self.opening < maxConnections
  }
}

/// The endpoints of a discovery set as the balancer will use them: the valid ones in order, once
/// each (by instance key), and those skipped.
struct MeshIncomingEndpoints: Sendable {
  /// Instance keys in discovery order.
  var order: [String] = []
  var endpoints: [String: MeshEndpoint] = [:]
  /// Skipped as invalid (a bad host or port), all of them.
  var invalidCount = 0
  /// Invalid endpoints not reported before, to log.
  var newlyInvalid: [(endpoint: MeshEndpoint, error: MeshInputError)] = []
  /// Keys of endpoints that need connections made (new, or at a new address).
  var toConnect: [String] = []
}

extension MeshEndpointEntry: Sendable where Connection: Sendable {}
extension MeshEndpointEntry.Pooled: Sendable where Connection: Sendable {}
