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
  .library(name: "MeshCore", targets: ["MeshCore"]),
  .library(name: "MeshProto", targets: ["MeshProto"]),
  .library(name: "MeshIdentity", targets: ["MeshIdentity"]),
  .library(name: "MeshTransport", targets: ["MeshTransport"]),
  .library(name: "MeshNativeTransport", targets: ["MeshNativeTransport"]),
  .library(name: "MeshHealth", targets: ["MeshHealth"]),
  .library(name: "MeshConfiguration", targets: ["MeshConfiguration"]),
  .library(name: "MeshClient", targets: ["MeshClient"]),
  .library(name: "MeshServer", targets: ["MeshServer"]),
  .library(name: "MeshPrometheus", targets: ["MeshPrometheus"]),
  .library(name: "MeshAdmin", targets: ["MeshAdmin"]),
  .library(name: "MeshOTel", targets: ["MeshOTel"]),
  .library(name: "MeshCertificates", targets: ["MeshCertificates"]),
  .library(name: "MeshDiscovery", targets: ["MeshDiscovery"]),
  .library(name: "MeshConsul", targets: ["MeshConsul"]),
  .library(name: "MeshConsulAgent", targets: ["MeshConsulAgent"]),
  .library(name: "MeshTestKit", targets: ["MeshTestKit"]),
  .executable(name: "mesh", targets: ["mesh"]),
]

/// What `MeshClient` and `MeshServer` build in. All are on by default; a service that discovers
/// its targets statically or by DNS, reads its configuration file as JSON and runs no admin
/// endpoint turns them off (`traits: []`) and builds neither async-http-client, Yams nor
/// Hummingbird.
let traits: Set<Trait> = [
  .trait(
    name: "Consul",
    description: "Consul discovery in MeshClient (the default when no discovery is set), "
      + "CONSUL_HTTP_ADDR and friends: builds MeshConsul and async-http-client."
  ),
  .trait(
    name: "YAML",
    description: "YAML configuration files (MESH_CONFIG_FILE) in MeshConfiguration: builds Yams. "
      + "Without it, configuration files are JSON."
  ),
  .trait(
    name: "Admin",
    description:
      "The admin endpoint (MeshClientConfiguration.admin, MeshServerConfiguration.admin, "
      + "MESH_ADMIN_ADDRESS): builds MeshAdmin, Hummingbird and swift-prometheus."
  ),
  .trait(
    name: "OTLP",
    description: "MeshOTel's OTLP export (swift-otel). Only MeshOTel depends on it: a service that "
      + "does not link MeshOTel builds no swift-otel either way."
  ),
  .trait(
    name: "Native",
    description: "The native transport as MeshClient's and MeshServer's choice (transportKind, "
      + "MESH_TRANSPORT=native): builds MeshNativeTransport, which needs "
      + "libnghttp2 and OpenSSL 3 (Debian: libnghttp2-dev, libssl-dev)."
  ),
  .default(enabledTraits: ["Consul", "YAML", "Admin", "OTLP", "Native"]),
]

let dependencies: [Package.Dependency] = [
  .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
  .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
  .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
  .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
  .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
  .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
  .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
  .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
  .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
  .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
  .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
  .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
  .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
  .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
  .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
  .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
  // OTLP over gRPC only: no HTTP exporter (and so no async-http-client for it).
  .package(
    url: "https://github.com/swift-otel/swift-otel.git",
    from: "1.6.0",
    traits: ["OTLPGRPC"]
  ),
  .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
  .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
  .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
  .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
  .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
  .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
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

var targets: [Target] = [
  // What every layer shares, with no dependency at all: the checked conversions of outside input
  // (durations, ports, counts, hosts) and their error.
  .target(
    name: "MeshCore",
    swiftSettings: defaultSwiftSettings
  ),

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

  // Service identities (SPIFFE IDs, DNS names), identity policies, PEM reading and certificate
  // chain verification: what the CA tool and the TLS layer share, with no NIO and no gRPC.
  .target(
    name: "MeshIdentity",
    dependencies: [
      .target(name: "MeshCore"),
      .product(name: "X509", package: "swift-certificates"),
      .product(name: "SwiftASN1", package: "swift-asn1"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The NIO side of the mesh: TLS credentials, per-endpoint connections, the balancing transport.
  .target(
    name: "MeshTransport",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshIdentity"),
      .target(name: "MeshDiscovery"),
      .target(name: "MeshProto"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOSSL", package: "swift-nio-ssl"),
      .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
      .product(name: "X509", package: "swift-certificates"),
      .product(name: "SwiftASN1", package: "swift-asn1"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "CoreMetrics", package: "swift-metrics"),
      .product(name: "Tracing", package: "swift-distributed-tracing"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // libnghttp2 (Debian's libnghttp2-dev) for the native transport's HTTP/2.
  .systemLibrary(
    name: "CMeshNGHTTP2",
    pkgConfig: "libnghttp2",
    providers: [.apt(["libnghttp2-dev"])]
  ),

  // OpenSSL 3 (Debian's libssl-dev) for the native transport's TLS.
  .systemLibrary(
    name: "CMeshOpenSSL",
    pkgConfig: "openssl",
    providers: [.apt(["libssl-dev"])]
  ),

  // The native transport: gRPC over HTTP/2 on libnghttp2 and TLS on OpenSSL, with SwiftNIO's
  // sockets.
  .target(
    name: "MeshNativeTransport",
    dependencies: [
      .target(name: "CMeshNGHTTP2"),
      .target(name: "CMeshOpenSSL"),
      .target(name: "MeshCore"),
      .target(name: "MeshIdentity"),
      .target(name: "MeshTransport"),
      .product(name: "X509", package: "swift-certificates"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOPosix", package: "swift-nio"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The grpc.health.v1 servicer.
  // Prometheus exposition of the mesh's metrics, with OpenTelemetry's names and gRPC's buckets.
  .target(
    name: "MeshPrometheus",
    dependencies: [
      .target(name: "MeshTransport"),
      .product(name: "CoreMetrics", package: "swift-metrics"),
      .product(name: "Prometheus", package: "swift-prometheus"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The admin endpoint (Hummingbird): /metrics, /clusters, /config_dump, /certs, /healthz,
  // /ready, /logging.
  .target(
    name: "MeshAdmin",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshTransport"),
      .target(name: "MeshPrometheus"),
      .product(name: "Hummingbird", package: "hummingbird"),
      .product(name: "HummingbirdCore", package: "hummingbird"),
      .product(name: "HTTPTypes", package: "swift-http-types"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "CoreMetrics", package: "swift-metrics"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .product(name: "X509", package: "swift-certificates"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // OTLP export of the mesh's spans (swift-otel), a product of its own: a service that does not
  // export builds none of it.
  .target(
    name: "MeshOTel",
    dependencies: [
      .target(name: "MeshCore"),
      .product(name: "OTel", package: "swift-otel", condition: .when(traits: ["OTLP"])),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "Tracing", package: "swift-distributed-tracing"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  .target(
    name: "MeshHealth",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshProto"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The configuration file (MESH_CONFIG_FILE) the client and the server read: JSON, or YAML
  // with the YAML trait.
  .target(
    name: "MeshConfiguration",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshTransport"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      // Only with the trait: a service reading JSON does not build Yams.
      .product(name: "Yams", package: "Yams", condition: .when(traits: ["YAML"])),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The public entry point: the mesh client, discovery, balancing policies and resilience.
  .target(
    name: "MeshClient",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshConfiguration"),
      .target(name: "MeshTransport"),
      .target(name: "MeshDiscovery"),
      // Only with the trait: a service on static or DNS discovery builds no async-http-client.
      .target(name: "MeshConsul", condition: .when(traits: ["Consul"])),
      .target(name: "MeshAdmin", condition: .when(traits: ["Admin"])),
      .target(name: "MeshNativeTransport", condition: .when(traits: ["Native"])),
      // Its C modules, named too: a package depending on this one builds them only if listed.
      .target(name: "CMeshNGHTTP2", condition: .when(traits: ["Native"])),
      .target(name: "CMeshOpenSSL", condition: .when(traits: ["Native"])),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "CoreMetrics", package: "swift-metrics"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // A service's server in the mesh: mTLS, health, interceptors, registration, the drain.
  .target(
    name: "MeshServer",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshIdentity"),
      .target(name: "MeshConfiguration"),
      .target(name: "MeshTransport"),
      .target(name: "MeshHealth"),
      .target(name: "MeshConsul", condition: .when(traits: ["Consul"])),
      .target(name: "MeshAdmin", condition: .when(traits: ["Admin"])),
      .target(name: "MeshNativeTransport", condition: .when(traits: ["Native"])),
      // Its C modules, named too: a package depending on this one builds them only if listed.
      .target(name: "CMeshNGHTTP2", condition: .when(traits: ["Native"])),
      .target(name: "CMeshOpenSSL", condition: .when(traits: ["Native"])),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "CoreMetrics", package: "swift-metrics"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // Where a service's instances are: the discovery protocol, endpoint sets, static and DNS.
  .target(
    name: "MeshDiscovery",
    dependencies: [
      .target(name: "MeshCore"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOPosix", package: "swift-nio"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // Consul: the wire format, the HTTP client, the health watch and self-registration.
  .target(
    name: "MeshConsul",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshDiscovery"),
      .product(name: "AsyncHTTPClient", package: "async-http-client"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOHTTP1", package: "swift-nio"),
      .product(name: "NIOSSL", package: "swift-nio-ssl"),
      .product(name: "Logging", package: "swift-log"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // An embedded Consul-compatible agent: the HTTP API subset the mesh uses, real blocking
  // queries, and real gRPC health checks of the registered instances.
  .target(
    name: "MeshConsulAgent",
    dependencies: [
      .product(name: "Hummingbird", package: "hummingbird"),
      .product(name: "HummingbirdCore", package: "hummingbird"),
      .product(name: "HummingbirdTLS", package: "hummingbird"),
      .product(name: "HTTPTypes", package: "swift-http-types"),
      .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .target(name: "MeshCore"),
      .target(name: "MeshConsul"),
      .target(name: "MeshTransport"),
      .target(name: "MeshProto"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The mesh's certificate authority: makes a CA and issues service certificates (`mesh certs`).
  .target(
    name: "MeshCertificates",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshIdentity"),
      .product(name: "X509", package: "swift-certificates"),
      .product(name: "Crypto", package: "swift-crypto"),
      .product(name: "SwiftASN1", package: "swift-asn1"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The `mesh` command line tool's commands, as a library so tests can run them in process.
  .target(
    name: "MeshCommands",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshCertificates"),
      .target(name: "MeshConsulAgent"),
      .target(name: "MeshConsul"),
      .target(name: "MeshIdentity"),
      .target(name: "MeshProto"),
      .target(name: "MeshTransport"),
      .target(name: "MeshConfiguration"),
      .target(name: "MeshServer"),
      .target(name: "MeshAdmin"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "AsyncHTTPClient", package: "async-http-client"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOPosix", package: "swift-nio"),
      .product(name: "NIOHTTP1", package: "swift-nio"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "SwiftASN1", package: "swift-asn1"),
      .product(name: "NIOHTTP2", package: "swift-nio-http2"),
      .product(name: "NIOSSL", package: "swift-nio-ssl"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      .product(name: "X509", package: "swift-certificates"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // The `mesh` executable.
  .executableTarget(
    name: "mesh",
    dependencies: [
      .target(name: "MeshCommands")
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // What the package's tests use, for users to test their own services on the mesh: a manual
  // clock, test discoveries, a fault-injecting interceptor, in-process endpoints.
  .target(
    name: "MeshTestKit",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshDiscovery"),
      .target(name: "MeshTransport"),
      .target(name: "MeshHealth"),
      .target(name: "MeshProto"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
      // The loopback mesh (the embedded agent and instances registered with it).
      .target(name: "MeshClient", condition: .when(traits: ["Consul"])),
      .target(name: "MeshConsul", condition: .when(traits: ["Consul"])),
      .target(name: "MeshConsulAgent", condition: .when(traits: ["Consul"])),
      .product(
        name: "GRPCNIOTransportHTTP2Posix",
        package: "grpc-swift-nio-transport",
        condition: .when(traits: ["Consul"])
      ),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  // Drives real gRPC peers (Python grpcio, installed by scripts/test.sh) from the tests.
  .target(
    name: "InteropSupport",
    dependencies: [
      .target(name: "MeshCore"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
    ],
    path: "Tests/InteropSupport",
    swiftSettings: defaultSwiftSettings
  ),

  .testTarget(
    name: "MeshNativeTransportTests",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshIdentity"),
      .target(name: "MeshCertificates"),
      .target(name: "MeshHealth"),
      .target(name: "MeshTransport"),
      .target(name: "MeshNativeTransport"),
      .target(name: "InteropSupport"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOPosix", package: "swift-nio"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  .testTarget(
    name: "MeshCoreTests",
    dependencies: [
      .target(name: "MeshCore"),
      .product(name: "PropertyBased", package: "swift-property-based"),
    ],
    swiftSettings: defaultSwiftSettings
  ),

  .testTarget(
    name: "MeshHealthTests",
    dependencies: [
      .target(name: "MeshCore"),
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

  .testTarget(
    name: "MeshTransportTests",
    dependencies: [
      .target(name: "MeshCore"),
      .target(name: "MeshTestKit"),
      .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
      .product(name: "PropertyBased", package: "swift-property-based"),
      .target(name: "InteropSupport"),
      .target(name: "MeshDiscovery"),
      .target(name: "MeshCertificates"),
      .target(name: "MeshHealth"),
      .target(name: "MeshProto"),
      .target(name: "MeshTransport"),
      .target(name: "MeshClient"),
      .target(name: "MeshNativeTransport"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "X509", package: "swift-certificates"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOSSL", package: "swift-nio-ssl"),
      .product(name: "SwiftASN1", package: "swift-asn1"),
      .product(name: "InMemoryLogging", package: "swift-log"),
      .product(name: "MetricsTestKit", package: "swift-metrics"),
      .target(name: "MeshPrometheus"),
    ],
    swiftSettings: defaultSwiftSettings
  ),
]

// MeshServer over loopback, with the embedded agent and mesh clients.
targets.append(
  .testTarget(
    name: "MeshServerTests",
    dependencies: [
      .target(name: "InteropSupport"),
      .target(name: "MeshCertificates"),
      .target(name: "MeshClient"),
      .target(name: "MeshConsul"),
      .product(name: "MetricsTestKit", package: "swift-metrics"),
      .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
      .target(name: "MeshConfiguration"),
      .target(name: "MeshCore"),
      .target(name: "MeshHealth"),
      .target(name: "MeshProto"),
      .target(name: "MeshServer"),
      .target(name: "MeshNativeTransport"),
      .target(name: "MeshTestKit"),
      .target(name: "MeshTransport"),
      .target(name: "MeshAdmin"),
      .target(name: "MeshDiscovery"),
      .product(name: "AsyncHTTPClient", package: "async-http-client"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOHTTP1", package: "swift-nio"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "InMemoryLogging", package: "swift-log"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    ],
    swiftSettings: defaultSwiftSettings
  )
)

// OTLP export against a Python OpenTelemetry collector (opentelemetry-proto and grpcio).
targets.append(
  .testTarget(
    name: "MeshOTelTests",
    dependencies: [
      .target(name: "InteropSupport"),
      .target(name: "MeshClient"),
      .target(name: "MeshCore"),
      .target(name: "MeshDiscovery"),
      .target(name: "MeshOTel"),
      .target(name: "MeshServer"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "InMemoryLogging", package: "swift-log"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .product(name: "Tracing", package: "swift-distributed-tracing"),
    ],
    swiftSettings: defaultSwiftSettings
  )
)

// The `mesh` tool's commands, run in process.
targets.append(
  .testTarget(
    name: "MeshCommandsTests",
    dependencies: [
      .target(name: "InteropSupport"),
      .target(name: "MeshCommands"),
      .target(name: "MeshCertificates"),
      .target(name: "MeshTransport"),
      .target(name: "MeshAdmin"),
      .target(name: "MeshClient"),
      .target(name: "MeshConsul"),
      .target(name: "MeshConsulAgent"),
      .target(name: "MeshCore"),
      .target(name: "MeshDiscovery"),
      .target(name: "MeshProto"),
      .target(name: "MeshServer"),
      .target(name: "MeshHealth"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOPosix", package: "swift-nio"),
      .product(name: "X509", package: "swift-certificates"),
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ],
    swiftSettings: defaultSwiftSettings
  )
)

targets.append(
  .testTarget(
    name: "MeshConsulTests",
    dependencies: [
      .target(name: "MeshCore"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .product(name: "HummingbirdTesting", package: "hummingbird"),
      .target(name: "MeshConsul"),
      .target(name: "MeshConsulAgent"),
      .target(name: "MeshDiscovery"),
      .target(name: "MeshHealth"),
      .target(name: "MeshProto"),
      .target(name: "MeshTransport"),
      .target(name: "MeshCertificates"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "AsyncHTTPClient", package: "async-http-client"),
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "NIOPosix", package: "swift-nio"),
      .product(name: "NIOHTTP1", package: "swift-nio"),
    ],
    exclude: ["Fixtures"],
    swiftSettings: defaultSwiftSettings
  )
)

targets.append(
  .testTarget(
    name: "MeshClientTests",
    dependencies: [
      .target(name: "MeshTestKit"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .product(name: "Logging", package: "swift-log"),
      .target(name: "InteropSupport"),
      .target(name: "MeshConfiguration"),
      .target(name: "MeshCore"),
      .target(name: "MeshClient"),
      .target(name: "MeshCertificates"),
      .target(name: "MeshConsul"),
      .target(name: "MeshConsulAgent"),
      .target(name: "MeshDiscovery"),
      .target(name: "MeshHealth"),
      .target(name: "MeshProto"),
      .target(name: "MeshTransport"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    swiftSettings: defaultSwiftSettings
  )
)

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
  traits: traits,
  dependencies: dependencies,
  targets: targets
)
