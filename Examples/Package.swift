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

// Examples of swift-grpc-mesh, in a package of their own so that users of the library never build
// the examples' dependencies. Run one with: swift run --package-path Examples <name>

import PackageDescription

let defaultSwiftSettings: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
  name: "swift-grpc-mesh-examples",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(name: "swift-grpc-mesh", path: ".."),
    .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
  ],
  targets: [
    // The examples' service, greeter.v1.Greeter: its generated code (from Protos/, by
    // scripts/generate-protos.sh) and its implementation.
    .target(
      name: "Greeter",
      dependencies: [
        .product(name: "MeshTransport", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // The greeter as a mesh service: a MeshServer configured by the environment.
    .executableTarget(
      name: "greeter-server",
      dependencies: [
        .target(name: "Greeter"),
        .product(name: "MeshServer", package: "swift-grpc-mesh"),
        .product(name: "MeshOTel", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // A mesh client of the greeter: unary, server-streaming and bidirectional calls by name.
    .executableTarget(
      name: "greeter-client",
      dependencies: [
        .target(name: "Greeter"),
        .product(name: "MeshClient", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // The mesh end to end: the embedded Consul agent, three mTLS instances registered with gRPC
    // health checks, and a mesh client sending steady traffic while instances fail.
    .executableTarget(
      name: "mesh-demo",
      dependencies: [
        .target(name: "Greeter"),
        .product(name: "MeshAdmin", package: "swift-grpc-mesh"),
        .product(name: "MeshClient", package: "swift-grpc-mesh"),
        .product(name: "MeshCertificates", package: "swift-grpc-mesh"),
        .product(name: "MeshCore", package: "swift-grpc-mesh"),
        .product(name: "MeshConsul", package: "swift-grpc-mesh"),
        .product(name: "MeshConsulAgent", package: "swift-grpc-mesh"),
        .product(name: "MeshHealth", package: "swift-grpc-mesh"),
        .product(name: "MeshServer", package: "swift-grpc-mesh"),
        .product(name: "MeshTransport", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // Runs the built mesh-demo as a user would (bad flags, SIGINT/SIGTERM mid-run), and the
    // greeter: its methods through the mesh, and its server and client as two processes.
    .testTarget(
      name: "MeshDemoTests",
      dependencies: [
        .target(name: "mesh-demo"),
        .target(name: "Greeter"),
        .target(name: "greeter-server"),
        .target(name: "greeter-client"),
        .product(name: "MeshCertificates", package: "swift-grpc-mesh"),
        .product(name: "MeshClient", package: "swift-grpc-mesh"),
        .product(name: "MeshConsul", package: "swift-grpc-mesh"),
        .product(name: "MeshConsulAgent", package: "swift-grpc-mesh"),
        .product(name: "MeshDiscovery", package: "swift-grpc-mesh"),
        .product(name: "MeshServer", package: "swift-grpc-mesh"),
        .product(name: "MeshTransport", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
    // A server with the health servicer, and a client that checks and watches it.
    .executableTarget(
      name: "health-demo",
      dependencies: [
        .product(name: "MeshHealth", package: "swift-grpc-mesh"),
        .product(name: "MeshProto", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: defaultSwiftSettings
    ),
  ]
)
