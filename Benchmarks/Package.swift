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

// Benchmarks of swift-grpc-mesh, in a package of their own so that users never build them.
// Run: swift run -c release --package-path Benchmarks mesh-benchmark

import PackageDescription

let swiftSettings: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
  name: "swift-grpc-mesh-benchmarks",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(name: "swift-grpc-mesh", path: ".."),
    .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
    .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
  ],
  targets: [
    .target(
      name: "BenchmarkSupport",
      dependencies: [.product(name: "MeshCore", package: "swift-grpc-mesh")],
      swiftSettings: swiftSettings
    ),
    .executableTarget(
      name: "mesh-benchmark",
      dependencies: [
        .target(name: "BenchmarkSupport"),
        .product(name: "MeshClient", package: "swift-grpc-mesh"),
        .product(name: "MeshCertificates", package: "swift-grpc-mesh"),
        .product(name: "MeshConsul", package: "swift-grpc-mesh"),
        .product(name: "MeshConsulAgent", package: "swift-grpc-mesh"),
        .product(name: "MeshHealth", package: "swift-grpc-mesh"),
        .product(name: "MeshProto", package: "swift-grpc-mesh"),
        .product(name: "MeshPrometheus", package: "swift-grpc-mesh"),
        .product(name: "MeshOTel", package: "swift-grpc-mesh"),
        .product(name: "MeshTransport", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: swiftSettings
    ),
    // The server half: Watch fan-out, and MeshServer against a bare GRPCServer.
    .executableTarget(
      name: "server-benchmark",
      dependencies: [
        .target(name: "BenchmarkSupport"),
        .product(name: "MeshCertificates", package: "swift-grpc-mesh"),
        .product(name: "MeshCore", package: "swift-grpc-mesh"),
        .product(name: "MeshHealth", package: "swift-grpc-mesh"),
        .product(name: "MeshProto", package: "swift-grpc-mesh"),
        .product(name: "MeshServer", package: "swift-grpc-mesh"),
        .product(name: "MeshTransport", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      ],
      swiftSettings: swiftSettings
    ),
    // Client transports against a gRPC C++ server (Benchmarks/cpp): gRPC C++'s client, grpc-swift's
    // and the native one.
    .executableTarget(
      name: "transport-benchmark",
      dependencies: [
        .target(name: "BenchmarkSupport"),
        .product(name: "MeshClient", package: "swift-grpc-mesh"),
        .product(name: "MeshDiscovery", package: "swift-grpc-mesh"),
        .product(name: "MeshNativeTransport", package: "swift-grpc-mesh"),
        .product(name: "MeshTransport", package: "swift-grpc-mesh"),
        .product(name: "MeshCertificates", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      ],
      swiftSettings: swiftSettings
    ),
  ]
)
