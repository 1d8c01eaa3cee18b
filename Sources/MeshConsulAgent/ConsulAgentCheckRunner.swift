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

internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import MeshConsul
internal import MeshCore
internal import MeshProto
internal import MeshTransport
internal import SwiftProtobuf

/// The agent's gRPC health checks: one probe loop per check, as Consul's `CheckGRPC` runs them.
extension ConsulAgentCore {
  /// Starts a probe loop for every gRPC check that needs one, until cancelled.
  func runChecks() async {
    await withDiscardingTaskGroup { group in
      var changes = self.probeChanges.makeAsyncIterator()
      repeat {
        for (checkID, _) in self.takePendingProbes() {
          group.addTask { await self.runProbeLoop(checkID) }
        }
      } while await changes.next() != nil && !Task.isCancelled
    }
  }

  /// Probes one gRPC check every interval while it stays registered. A re-registration with new
  /// settings interrupts the wait: the next probe uses them at once.
  private func runProbeLoop(_ checkID: ConsulAgentKey) async {
    while !Task.isCancelled, let probe = self.nextProbe(checkID) {
      let (status, output) = await self.probe(probe.target, timeout: probe.timeout)
      self.recordProbe(checkID, generation: probe.generation, status: status, output: output)
      let next = self.clock.now.advanced(by: probe.interval)
      await withTaskGroup(of: Void.self) { group in
        group.addTask { await self.sleep(until: next) }
        group.addTask { await probe.restart.wait() }
        await group.next()
        group.cancelAll()
      }
    }
    if Task.isCancelled { self.probeLoopEnded(checkID) }
  }

  /// One grpc.health.v1 Check, as Consul's gRPC check makes it.
  private func probe(
    _ target: ConsulGRPCCheckTarget,
    timeout: Duration
  ) async -> (ConsulCheckStatus, String) {
    do {
      let security: HTTP2ClientTransport.Posix.TransportSecurity
      if !target.useTLS {
        security = .plaintext
      } else if target.tlsSkipVerify {
        security = .tls { $0.serverCertificateVerification = .noVerification }
      } else if let credentials = self.configuration.checkCredentials {
        let policy: MeshIdentityPolicy =
          if let name = target.tlsServerName { .exactly(try .dns(name)) } else { .anyIdentity }
        security = try credentials.clientTransportSecurity(server: policy)
      } else {
        security = .tls
      }
      // The host was classified once, by MeshHost, when the check was registered.
      let transport = try HTTP2ClientTransport.Posix(
        target: target.host.resolvableTarget(port: target.port),
        transportSecurity: security
      )
      return try await withGRPCClient(transport: transport) { client in
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        let response = try await Grpc_Health_V1_Health.Client(wrapping: client).check(
          .with { $0.service = target.service },
          options: options
        )
        if response.status == .serving {
          return (.passing, "gRPC check \(target.text): success")
        }
        return (
          .critical, "gRPC \(target.text) serving status: \(Self.statusName(response.status))"
        )
      }
    } catch let error as RPCError {
      return (.critical, "gRPC check \(target.text): \(error.code): \(error.message)")
    } catch {
      return (.critical, "gRPC check \(target.text): \(error)")
    }
  }

  private static func statusName(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus)
    -> String
  {
    switch status {
    case .unknown: return "UNKNOWN"
    case .serving: return "SERVING"
    case .notServing: return "NOT_SERVING"
    case .serviceUnknown: return "SERVICE_UNKNOWN"
    case .UNRECOGNIZED(let value): return "\(value)"
    }
  }
}
