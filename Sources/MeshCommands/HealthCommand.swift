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

public import ArgumentParser
internal import Foundation
internal import MeshCore
internal import MeshTransport
internal import UnixSignals

/// `mesh health`: a grpc.health.v1 probe with grpc_health_probe's exit statuses.
public struct HealthCommand: AsyncParsableCommand, MeshReportingCommand {
  public static let configuration = CommandConfiguration(
    commandName: "health",
    abstract: "Check a gRPC server's health (grpc.health.v1), as grpc_health_probe does.",
    discussion: """
      Connects within --connect-timeout (TCP, the mTLS handshake, the server's HTTP/2 settings), \
      then asks Check within --rpc-timeout. Exit status, as grpc_health_probe's (so it drops into \
      a Kubernetes exec probe):

        0  SERVING
        1  bad arguments or unusable certificates
        2  the connection failed or timed out (refused, unreachable, TLS handshake, no HTTP/2)
        3  the RPC failed or timed out
        4  the server answered, but not SERVING

      With --watch it follows Watch and prints every status the server sends, until the server \
      ends the stream (exit 3) or Ctrl-C (exit 0 if the last status was SERVING, else 4).

      Examples:
        mesh health 127.0.0.1:50051
        mesh health orders-1:50051 --certs /certs --identity orders --service orders.v1.Orders
        mesh health 10.0.0.7:50051 --ca ca.crt --cert probe.crt --key probe-key.pem \\
          --server-name spiffe://mesh.local/ns/default/svc/orders --rpc-timeout 500ms
        mesh health 127.0.0.1:50051 --certs certs --watch
      """
  )

  @Argument(help: "The server: host:port or [ipv6]:port.")
  var address: String

  @Option(name: .long, help: "The service to check; \"\" (the default) is the whole server.")
  var service: String = ""

  @OptionGroup var tls: MeshTLSOptions

  @Option(name: .long, help: "How long connecting may take (Go syntax: 1s, 250ms).")
  var connectTimeout: String = "1s"

  @Option(name: .long, help: "How long the RPC may take (Go syntax: 1s, 250ms).")
  var rpcTimeout: String = "1s"

  @Flag(name: .long, help: "Follow Watch: print every status change until Ctrl-C.")
  var watch: Bool = false

  @Flag(name: .long, help: "Print the result as JSON (one object; with --watch, one per line).")
  var json: Bool = false

  public init() {}

  public func validate() throws {
    _ = try self.probe(credentials: nil)
  }

  func probe(credentials: MeshCredentials?) throws -> MeshHealthProbe {
    let (host, port) = try parseAddress(self.address, what: "the server address")
    return MeshHealthProbe(
      host: host,
      port: port,
      credentials: credentials,
      serverPolicy: try self.tls.serverPolicy(),
      connectTimeout: try parseTimeout(self.connectTimeout, flag: "--connect-timeout"),
      rpcTimeout: try parseTimeout(self.rpcTimeout, flag: "--rpc-timeout")
    )
  }

  public func execute(_ output: MeshCommandOutput) async throws -> Int32 {
    let probe = try self.probe(credentials: try await self.tls.load())
    if self.watch {
      return await self.watch(probe, output)
    }
    let result = await probe.check(service: self.service)
    self.report(result, output)
    return result.outcome.exitCode
  }

  private func report(_ result: MeshProbeResult, _ output: MeshCommandOutput) {
    if self.json {
      try? output.json(result)
      return
    }
    if let status = result.status, result.error == nil {
      let painted = output.paint(status, status == "SERVING" ? .green : .red)
      output.line("status: \(painted)")
    } else if let error = result.error {
      FileHandle.standardError.write(Data("mesh health: error: \(error)\n".utf8))
    }
  }

  private func watch(_ probe: MeshHealthProbe, _ output: MeshCommandOutput) async -> Int32 {
    let json = self.json
    let service = self.service
    let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
    let last = MeshLocked<String?>(nil)
    // The watch and the signals race: Ctrl-C ends the watch with the last status it saw.
    let result: MeshProbeResult? = await withTaskGroup(of: MeshProbeResult?.self) { group in
      group.addTask {
        await probe.watch(service: service) { status in
          last.set(status)
          let time = Date().formatted(.iso8601)
          if json {
            let line = ["service": service, "status": status, "time": time]
            try? output.json(line, pretty: false)
          } else {
            output.line(
              "\(time) status: \(output.paint(status, status == "SERVING" ? .green : .red))"
            )
          }
        }
      }
      group.addTask {
        for await _ in signals { return nil }
        return nil
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first
    }
    guard let result else {
      // Interrupted.
      return last.value == "SERVING" ? 0 : 4
    }
    if let error = result.error {
      FileHandle.standardError.write(Data("mesh health: error: \(error)\n".utf8))
    }
    return result.outcome == .connectionFailed ? 2 : 3
  }
}
