// swift-tools-version:6.1
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

import PackageDescription

let products: [Product] = [
  .library(name: "MeshProto", targets: ["MeshProto"]),
  .library(name: "MeshTransport", targets: ["MeshTransport"]),
  .library(name: "MeshHealth", targets: ["MeshHealth"]),
  .library(name: "MeshClient", targets: ["MeshClient"]),
]

let dependencies: [Package.Dependency] = [
  .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
  .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
  .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
  .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
]

// Compiler settings are policy: Swift 6 mode and the upcoming features that make every import's
// access level and every existential explicit.
var defaultSwiftSettings: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

// scripts/test.sh (and so CI) treats this package's own warnings as errors. It is opt-in so that a
// newer compiler's new warnings never break a user's build of this package as a dependency.
if Context.environment["MESH_WARNINGS_AS_ERRORS"] == "1" {
  defaultSwiftSettings.append(.unsafeFlags(["-warnings-as-errors"]))
}

let targets: [Target] = [
  // Generated code only; regenerate with scripts/generate-protos.sh.
  .target(
    name: "MeshProto",
    dependencies: [
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    exclude: ["README.md"],
    swiftSettings: defaultSwiftSettings
  ),

  // The NIO side of the mesh: TLS and identity, per-endpoint connections, the balancing transport.
  .target(
    name: "MeshTransport",
    dependencies: [
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The grpc.health.v1 servicer.
  .target(
    name: "MeshHealth",
    dependencies: [
      .target(name: "MeshProto"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The public entry point: the mesh client, discovery, balancing policies and resilience.
  .target(
    name: "MeshClient",
    dependencies: [
      .target(name: "MeshTransport"),
      .target(name: "MeshHealth"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // Drives real gRPC peers (Python grpcio, installed by scripts/test.sh) from the tests.
  .target(
    name: "InteropSupport",
    path: "Tests/InteropSupport",
    swiftSettings: defaultSwiftSettings
  ),

  .testTarget(
    name: "MeshHealthTests",
    dependencies: [
      .target(name: "InteropSupport"),
      .target(name: "MeshHealth"),
      .target(name: "MeshProto"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    swiftSettings: defaultSwiftSettings
  ),
]

let package = Package(
  name: "swift-grpc-mesh",
  platforms: [
    .macOS(.v15),
    .iOS(.v18),
    .tvOS(.v18),
    .watchOS(.v11),
    .visionOS(.v2),
  ],
  products: products,
  dependencies: dependencies,
  targets: targets
)
