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

import GRPCCore
import GRPCInProcessTransport
import MeshClient
import MeshConsul
import MeshCore
import MeshDiscovery
import MeshHealth
import MeshProto
import MeshTransport
import Testing

/// Throws `error` in place of every handler it intercepts.
private struct Throwing: ServerInterceptor {
  let error: any Error & Sendable

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<
      Output
    >
  ) async throws -> StreamingServerResponse<Output> {
    throw self.error
  }
}

/// The status a client sees when a server's handler throws `error`.
private func statusSeen(
  whenAHandlerThrows error: any Error & Sendable
) async throws -> RPCError {
  let transport = InProcessTransport()
  var caught: RPCError?
  try await withGRPCServer(
    transport: transport.server,
    services: [MeshHealthService()],
    interceptors: [Throwing(error: error)]
  ) { _ in
    try await withGRPCClient(transport: transport.client) { client in
      let health = Grpc_Health_V1_Health.Client(wrapping: client)
      caught = await #expect(throws: RPCError.self) { try await health.check(.init()) }
    }
  }
  return try #require(caught)
}

@Suite("One error shape")
struct MeshErrorTests {
  @Test(
    "A mesh error thrown where an RPC is served reaches the caller with the status it means",
    arguments: [
      (
        MeshClientError(code: .shutDown, message: "The mesh client is shut down.")
          as any Error & Sendable,
        RPCError.Code.unavailable, "The mesh client is shut down."
      ),
      (
        MeshClientError(code: .invalidConfiguration, message: "MESH_CERTS_DIR is set"),
        .failedPrecondition, "MESH_CERTS_DIR is set"
      ),
      (
        MeshDiscoveryError(code: .resolutionFailed, message: "Looking up 'x' failed."),
        .unavailable, "Looking up 'x' failed."
      ),
      (
        MeshDiscoveryError(code: .invalidTarget, message: "The service name is empty."),
        .invalidArgument, "The service name is empty."
      ),
      (
        MeshConsulError(code: .unexpectedStatus, status: 403, message: "ACL not found"),
        .unavailable, "Unexpected response code: 403 (ACL not found)"
      ),
      (
        MeshConsulError(code: .invalidConfiguration, message: "bad address"),
        .failedPrecondition, "invalidConfiguration: bad address"
      ),
      (
        MeshTLSError(code: .malformedPEM, message: "key.pem holds no key"),
        .failedPrecondition, "key.pem holds no key"
      ),
      (
        MeshTLSError(code: .identityMismatch, message: "expected spiffe://a, got spiffe://b"),
        .unavailable, "expected spiffe://a, got spiffe://b"
      ),
    ]
  )
  func thrownByAHandler(
    error: any Error & Sendable,
    code: RPCError.Code,
    message: String
  ) async throws {
    let seen = try await statusSeen(whenAHandlerThrows: error)
    #expect(seen.code == code)
    #expect(seen.message == message)
  }

  @Test("Causes are kept as they were thrown, and equality ignores them")
  func causes() throws {
    let input = MeshInputError(code: .outOfRange, field: "port", message: "must be 0 to 65535")
    let discovery = MeshDiscoveryError(code: .invalidTarget, message: "bad", cause: input)
    #expect(discovery.cause as? MeshInputError == input)
    #expect(discovery == MeshDiscoveryError(code: .invalidTarget, message: "bad"))
    #expect(discovery.description == "invalidTarget: bad (cause: port: must be 0 to 65535)")
    #expect(discovery != MeshDiscoveryError(code: .resolutionFailed, message: "bad"))
    // Converted for an RPC, the mesh error itself is the RPCError's cause.
    let rpcError = RPCError(discovery)
    #expect(rpcError.cause as? MeshDiscoveryError == discovery)
  }

  @Test("A DNS target that is not a host keeps the input check as its cause")
  func dnsTargetCause() async throws {
    let discovery = MeshDNSDiscovery()
    let error = await #expect(throws: MeshDiscoveryError.self) {
      for try await _ in discovery.watch("bad host!:80") {}
    }
    #expect(error?.code == .invalidTarget)
    #expect(error?.cause is MeshInputError)
  }
}
