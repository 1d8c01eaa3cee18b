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

// libFuzzer targets of swift-grpc-mesh's parsers of outside input, in a package of their own so
// that users never build them. Build and run them with scripts/fuzz.sh; by hand:
//
//   swift build --package-path Fuzz --scratch-path Fuzz/.build-fuzz -c debug \
//     --sanitize=fuzzer --sanitize=address -Xswiftc -parse-as-library -Xswiftc -enable-testing
//   Fuzz/.build-fuzz/debug/FuzzGoDuration Fuzz/Corpus/FuzzGoDuration
//
// Each target is one file defining `LLVMFuzzerTestOneInput`, and libFuzzer supplies `main`. That
// takes SwiftPM's own `--sanitize=fuzzer`: with `-Xswiftc -sanitize=fuzzer` instead, SwiftPM
// still links each executable's `main` to a `<Target>_main` the target does not have.
// `-enable-testing` lets a target `@testable import` a parser that is internal to its module.

import PackageDescription

let defaultSwiftSettings: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
  .executableTarget(
    name: name,
    dependencies: dependencies,
    swiftSettings: defaultSwiftSettings
  )
}

let package = Package(
  name: "swift-grpc-mesh-fuzz",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(name: "swift-grpc-mesh", path: ".."),
    .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
  ],
  targets: [
    // Go duration text, JSON numbers as durations, ports, integers and hosts (MeshCore).
    fuzzTarget(
      "FuzzGoDuration",
      [.product(name: "MeshCore", package: "swift-grpc-mesh")]
    ),
    // The embedded agent's decoding of registration and check-update bodies.
    fuzzTarget(
      "FuzzAgentRequestBody",
      [
        .product(name: "MeshConsul", package: "swift-grpc-mesh"),
        .product(name: "MeshConsulAgent", package: "swift-grpc-mesh"),
      ]
    ),
    // The Consul client's decoding of Consul's answers, and the endpoints made from them.
    fuzzTarget(
      "FuzzConsulResponse",
      [
        .product(name: "MeshConsul", package: "swift-grpc-mesh"),
        .product(name: "MeshDiscovery", package: "swift-grpc-mesh"),
        .product(name: "MeshTransport", package: "swift-grpc-mesh"),
      ]
    ),
    // The configuration file, as YAML and as JSON, for the client and the server.
    fuzzTarget(
      "FuzzConfigurationFile",
      [
        .product(name: "MeshClient", package: "swift-grpc-mesh"),
        .product(name: "MeshServer", package: "swift-grpc-mesh"),
      ]
    ),
    // PEM, certificate and key loading, and the checks credentials go through.
    fuzzTarget(
      "FuzzPEM",
      [
        .target(name: "FuzzSupport"),
        .product(name: "MeshTransport", package: "swift-grpc-mesh"),
      ]
    ),
    // The embedded agent's whole request handling: router, middleware and handlers, no sockets.
    fuzzTarget(
      "FuzzAgentHTTP",
      [
        .target(name: "FuzzSupport"),
        .product(name: "MeshConsulAgent", package: "swift-grpc-mesh"),
      ]
    ),
    // The native transport's client: an nghttp2 session reading a server's frames, whatever they
    // are, with streams open.
    fuzzTarget(
      "FuzzNativeClientFrames",
      [
        .target(name: "FuzzSupport"),
        .product(name: "MeshNativeTransport", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
      ]
    ),
    // The native server transport's connection reading a client's frames (nghttp2 underneath),
    // answering the requests it hands over.
    fuzzTarget(
      "FuzzNativeServerFrames",
      [
        .target(name: "FuzzSupport"),
        .product(name: "MeshNativeTransport", package: "swift-grpc-mesh"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
      ]
    ),
    // What the fuzz targets share: running async code from libFuzzer's synchronous callback.
    .target(
      name: "FuzzSupport",
      swiftSettings: defaultSwiftSettings
    ),
  ]
)
