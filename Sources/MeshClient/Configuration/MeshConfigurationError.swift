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

/// A configuration file that cannot be used: the field's path (`services.orders.retry_policy.
/// num_retries`) and why. Nothing of the file is applied.
public struct MeshConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The ``file`` of a setting read from an environment variable (its ``field``).
  public static let environment = "<environment>"

  /// The file the error is in; ``environment`` for an environment variable.
  public var file: String
  /// The field's path in the file; empty for the file as a whole.
  public var field: String
  public var reason: String

  public init(file: String, field: String, _ reason: String) {
    self.file = file
    self.field = field
    self.reason = reason
  }

  public var description: String {
    self.field.isEmpty
      ? "\(self.file): \(self.reason)" : "\(self.file): \(self.field): \(self.reason)"
  }
}
