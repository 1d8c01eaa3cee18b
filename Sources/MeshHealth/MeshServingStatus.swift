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

/// The serving status a server reports for one of its services.
///
/// These are the statuses a server may *set*. The protocol's `SERVICE_UNKNOWN` is not among them:
/// a service is unknown when no status is set for it (see ``MeshHealthService/clearStatus(for:)``).
public struct MeshServingStatus: Hashable, Sendable, CustomStringConvertible {
  package enum Value: Hashable, Sendable {
    case serving
    case notServing
  }

  package let value: Value

  private init(_ value: Value) {
    self.value = value
  }

  /// The service is ready to handle RPCs.
  public static let serving = Self(.serving)

  /// The service cannot handle RPCs now (starting, draining, or a dependency is down).
  public static let notServing = Self(.notServing)

  /// The protocol's name for the status: `SERVING` or `NOT_SERVING`.
  public var description: String {
    switch self.value {
    case .serving:
      return "SERVING"
    case .notServing:
      return "NOT_SERVING"
    }
  }
}
