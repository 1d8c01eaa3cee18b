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

import Foundation
import Greeter
import Logging
import MeshOTel
import MeshServer
import ServiceLifecycle
import UnixSignals

// A mesh service: the examples' greeter on a MeshServer, configured by the environment (and the
// `server` section of MESH_CONFIG_FILE, if set):
//
//   MESH_SERVICE_NAME=greeter MESH_CERTS_DIR=certs CONSUL_HTTP_ADDR=127.0.0.1:8500 \
//     swift run --package-path Examples greeter-server
//
// It serves mTLS, the health service, registers itself in Consul with a gRPC check, and on SIGTERM
// or SIGINT drains: NOT_SERVING, deregistered, GOAWAY, RPCs in flight finish. With
// OTEL_EXPORTER_OTLP_ENDPOINT set (http://jaeger:4317 in deploy/docker-compose.yml) it exports its
// spans over OTLP/gRPC, as OpenTelemetry's variables say.

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
let logger = Logger(label: "greeter-server")
do {
  var configuration = try MeshServerConfiguration.fromEnvironment()
  let process = ProcessInfo.processInfo
  let tracing: MeshOTel.Tracing? =
    process.environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == nil
    ? nil : try MeshOTel.tracing(MeshOTelConfiguration(serviceName: configuration.serviceName))
  configuration.tracer = tracing?.tracer
  let server = try await MeshServer(
    configuration: configuration,
    services: [GreeterService(instance: "\(process.hostName)-\(process.processIdentifier)")],
    logger: logger
  )
  // The exporter first, so that it stops last and exports the drain's spans.
  let services: [any Service] = (tracing.map { [$0.service] } ?? []) + [server]
  try await withThrowingDiscardingTaskGroup { group in
    group.addTask {
      try await ServiceGroup(
        services: services,
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
      ).run()
    }
    let port = try await server.listeningPort
    print("greeter-server: serving \(configuration.serviceName) on port \(port)")
    fflush(nil)
  }
} catch {
  FileHandle.standardError.write(Data("greeter-server: \(error)\n".utf8))
  exit(1)
}
