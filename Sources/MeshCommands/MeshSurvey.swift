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
internal import AsyncHTTPClient
internal import Foundation
internal import MeshConsul
internal import MeshCore
internal import MeshIdentity
internal import MeshTransport
internal import NIOCore
internal import NIOHTTP1
internal import X509

/// `--consul`: the Consul agent to ask, as Consul's own tools find it.
public struct MeshConsulOptions: ParsableArguments {
  @Option(
    name: .long,
    help: ArgumentHelp(
      "The Consul agent: host:port or an http(s) URL.",
      discussion:
        "Default: $CONSUL_HTTP_ADDR, else 127.0.0.1:8500 (CONSUL_HTTP_TOKEN and CONSUL_CACERT are read too)."
    )
  )
  var consul: String?

  public init() {}

  public func validate() throws {
    _ = try self.configuration()
  }

  func configuration(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws -> ConsulClientConfiguration {
    var configuration: ConsulClientConfiguration
    do {
      configuration = try ConsulClientConfiguration.fromEnvironment(environment)
    } catch {
      throw ValidationError(error.message)
    }
    if let consul = self.consul {
      configuration.address = try parseHTTPBase(consul, what: "--consul")
    }
    configuration.requestTimeout = .seconds(5)
    return configuration
  }
}

/// What `mesh status` and `mesh check` find in a running mesh: Consul's services and instances,
/// each instance probed (health, over mTLS when there are credentials), its admin endpoint read.
struct MeshSurvey: Sendable, Encodable {
  struct Instance: Sendable, Encodable {
    var id: String
    var address: String
    var port: Int
    var node: String
    /// Consul's aggregated status of the instance's checks: passing, warning, critical.
    var consulStatus: String
    var checks: [Check]
    /// `mesh_admin_port` in the instance's meta, if it publishes an admin endpoint.
    var adminPort: Int?
    /// The probe of the instance's own health.
    var probe: MeshProbeResult?
    /// What the admin endpoint's `/metrics` held, when read.
    var metrics: AdminRead?

    enum CodingKeys: String, CodingKey {
      case id, address, port, node, checks, probe, metrics
      case consulStatus = "consul_status"
      case adminPort = "admin_port"
    }
  }

  struct Check: Sendable, Encodable {
    var id: String
    var name: String
    var status: String
    var output: String
  }

  struct AdminRead: Sendable, Encodable {
    var url: String
    /// How many `grpc_` samples `/metrics` had; nil when it could not be read.
    var grpcSamples: Int?
    var error: String?

    enum CodingKeys: String, CodingKey {
      case url, error
      case grpcSamples = "grpc_samples"
    }
  }

  struct Service: Sendable, Encodable {
    var name: String
    var instances: [Instance]
    var passing: Int { self.instances.filter { $0.consulStatus == "passing" }.count }

    enum CodingKeys: String, CodingKey {
      case name, instances, passing
    }

    func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.name, forKey: .name)
      try container.encode(self.instances, forKey: .instances)
      try container.encode(self.passing, forKey: .passing)
    }
  }

  /// One local certificate: the CA or a service's.
  struct LocalCertificate: Sendable, Encodable {
    var path: String
    var identities: [String]
    var subject: String
    /// Nil when the file could not be read (then `error` says why).
    var notValidAfter: Date?
    var daysLeft: Int?
    var error: String?

    enum CodingKeys: String, CodingKey {
      case path, identities, subject, error
      case notValidAfter = "not_valid_after"
      case daysLeft = "days_left"
    }
  }

  var consul: String
  var consulError: String?
  var services: [Service]
  var certificates: [LocalCertificate]
  /// Whether `--timeout` ran out before every instance was probed.
  var timedOut = false

  enum CodingKeys: String, CodingKey {
    case consul, services, certificates
    case consulError = "consul_error"
    case timedOut = "timed_out"
  }

  /// Asks Consul and probes every instance of `only` (every service but `consul` when empty), at
  /// most 16 at a time, each within its own limits; `probeAll` false probes only the instances
  /// whose checks pass. At `deadline` it stops: what was found by then is kept, the instances
  /// not probed say so, and ``timedOut`` is set.
  static func take(
    consul configuration: ConsulClientConfiguration,
    only: [String],
    credentials: MeshCredentials?,
    serverPolicy: MeshIdentityPolicy,
    certificatesDirectory: String?,
    timeouts: (connect: Duration, rpc: Duration),
    readMetrics: Bool,
    probeAll: Bool,
    deadline: ContinuousClock.Instant,
    limitText: String
  ) async -> MeshSurvey {
    var survey = MeshSurvey(
      consul: configuration.address.absoluteString,
      services: [],
      certificates: certificatesDirectory.map(Self.localCertificates(in:)) ?? []
    )
    let client: ConsulClient
    do {
      client = try ConsulClient(configuration)
    } catch {
      survey.consulError = error.message
      return survey
    }
    let services = await withTimeLimit(ContinuousClock.now.duration(to: deadline)) {
      do throws(MeshProbeConnectionError) {
        return Result<[Service], MeshProbeConnectionError>.success(
          try await Self.services(client, only: only)
        )
      } catch {
        return .failure(error)
      }
    }
    // A client with a CA bundle owns an HTTP client of its own.
    try? await client.shutdown()
    switch services {
    case .some(.success(let services)): survey.services = services
    case .some(.failure(let error)): survey.consulError = error.description
    case .none:
      survey.timedOut = true
      survey.consulError = "Consul did not answer within --timeout \(limitText)"
    }
    let probing = Probing(
      credentials: credentials,
      serverPolicy: serverPolicy,
      timeouts: timeouts,
      readMetrics: readMetrics
    )
    // Every instance to probe, by (service, instance) position.
    var work: [(service: Int, index: Int, instance: Instance)] = []
    for (s, service) in survey.services.enumerated() {
      for (i, instance) in service.instances.enumerated()
      where probeAll || instance.consulStatus == "passing" {
        work.append((s, i, instance))
      }
    }
    var probed = Set<Int>()
    await withTaskGroup(of: (Int, Instance)?.self) { group in
      var next = 0
      func start() {
        guard next < work.count else { return }
        let position = next
        let instance = work[position].instance
        next += 1
        group.addTask { (position, await probing.probe(instance)) }
      }
      // The deadline: a child that ends the wait (nil), once the time is up.
      group.addTask {
        try? await Task.sleep(until: deadline, clock: .continuous)
        return nil
      }
      for _ in 0..<16 { start() }
      while probed.count < work.count, let finished = await group.next() {
        guard let (position, instance) = finished else {
          // Time is up: the probes under way are cancelled (each stops waiting at once).
          survey.timedOut = true
          group.cancelAll()
          break
        }
        survey.services[work[position].service].instances[work[position].index] = instance
        probed.insert(position)
        start()
      }
      group.cancelAll()
    }
    for (position, item) in work.enumerated() where !probed.contains(position) {
      survey.services[item.service].instances[item.index].probe = MeshProbeResult(
        address: "\(item.instance.address):\(item.instance.port)",
        service: "",
        outcome: .connectionFailed,
        error: "not probed: --timeout \(limitText) ran out first",
        elapsedMilliseconds: 0
      )
    }
    return survey
  }

  /// Every service's instances, as Consul's health endpoint has them (passing or not).
  private static func services(
    _ client: ConsulClient,
    only: [String]
  ) async throws(MeshProbeConnectionError) -> [Service] {
    let names: [String]
    do {
      let catalog = try await client.catalogServices().value
      names = only.isEmpty ? catalog.keys.filter { $0 != "consul" }.sorted() : only
    } catch {
      throw MeshProbeConnectionError(Self.describe(error))
    }
    var services: [Service] = []
    for name in names {
      let entries: [ConsulServiceEntry]
      do {
        entries = try await client.healthService(
          name,
          query: ConsulHealthQuery(passingOnly: false)
        ).value
      } catch {
        throw MeshProbeConnectionError("reading \(name)'s instances: \(Self.describe(error))")
      }
      let instances = entries.sorted(by: { $0.service.id < $1.service.id }).map { entry in
        Instance(
          id: entry.service.id,
          address: entry.service.address.isEmpty ? entry.node.address : entry.service.address,
          port: entry.service.port,
          node: entry.node.node,
          consulStatus: entry.aggregatedStatus.rawValue,
          checks: entry.checks.map {
            Check(id: $0.checkID, name: $0.name, status: $0.status.rawValue, output: $0.output)
          },
          adminPort: entry.service.meta?["mesh_admin_port"].flatMap {
            try? MeshInput.port($0, field: "mesh_admin_port")
          }
        )
      }
      services.append(Service(name: name, instances: instances))
    }
    return services
  }

  /// How each instance is probed.
  private struct Probing: Sendable {
    var credentials: MeshCredentials?
    var serverPolicy: MeshIdentityPolicy
    var timeouts: (connect: Duration, rpc: Duration)
    var readMetrics: Bool

    /// Its health (and its admin endpoint's metrics), each within the probe's limits.
    func probe(_ instance: Instance) async -> Instance {
      var instance = instance
      guard let host = try? MeshHost(instance.address),
        MeshInput.ports.contains(instance.port)
      else {
        instance.probe = MeshProbeResult(
          address: "\(instance.address):\(instance.port)",
          service: "",
          outcome: .connectionFailed,
          error:
            "Consul's address for it is not host:port: \(MeshInput.quoted(instance.address)) port \(instance.port)",
          elapsedMilliseconds: 0
        )
        return instance
      }
      let probe = MeshHealthProbe(
        host: host,
        port: instance.port,
        credentials: self.credentials,
        serverPolicy: self.serverPolicy,
        connectTimeout: self.timeouts.connect,
        rpcTimeout: self.timeouts.rpc
      )
      instance.probe = await probe.check(service: "")
      if self.readMetrics, let adminPort = instance.adminPort {
        instance.metrics = await MeshSurvey.readMetrics(
          "http://\(host.authority(port: adminPort))/metrics",
          timeout: self.timeouts.connect + self.timeouts.rpc
        )
      }
      return instance
    }
  }

  /// Reads a Prometheus `/metrics` page and counts its `grpc_` samples.
  static func readMetrics(_ url: String, timeout: Duration) async -> AdminRead {
    do {
      let (status, body) = try await httpGet(url, timeout: timeout)
      guard status == 200 else {
        return AdminRead(url: url, grpcSamples: nil, error: "HTTP \(status)")
      }
      let samples = body.split(separator: "\n").filter { $0.hasPrefix("grpc_") }.count
      return AdminRead(url: url, grpcSamples: samples, error: nil)
    } catch {
      return AdminRead(url: url, grpcSamples: nil, error: Self.describe(error))
    }
  }

  /// The CA and every service certificate in a `mesh certs` folder.
  static func localCertificates(in directory: String) -> [LocalCertificate] {
    let services =
      (try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/services")) ?? []
    let paths =
      ["\(directory)/ca.crt"]
      + services.filter { $0.hasSuffix(".crt") }.sorted().map { "\(directory)/services/\($0)" }
    return paths.map { path in
      do {
        let chain = try readCertificates(path)
        return LocalCertificate(chain[0], path: path)
      } catch {
        return LocalCertificate(
          path: path,
          identities: [],
          subject: "",
          notValidAfter: nil,
          daysLeft: nil,
          error: "\(error)"
        )
      }
    }
  }

  static func describe(_ error: any Error) -> String {
    if let error = error as? MeshConsulError { return error.message }
    if let error = error as? HTTPClientError { return "\(error)" }
    return MeshHealthProbe.describe(error)
  }
}

extension MeshSurvey.LocalCertificate {
  init(_ certificate: Certificate, path: String, now: Date = Date()) {
    self.init(
      path: path,
      identities: MeshServiceIdentity.identities(in: certificate).map(\.description),
      subject: certificate.subject.description,
      notValidAfter: certificate.notValidAfter,
      daysLeft: MeshCommands.daysLeft(until: certificate.notValidAfter, now: now),
      error: nil
    )
  }
}

/// A GET with a time limit on the whole exchange, body included (async-http-client's deadline
/// ends with the response's head): the status and the body (at most 16 MiB) as text.
func httpGet(_ url: String, timeout: Duration) async throws -> (Int, String) {
  let reply: Result<(Int, String), any Error>? = await withTimeLimit(timeout) {
    do {
      let request = HTTPClientRequest(url: url)
      let response = try await HTTPClient.shared.execute(
        request,
        timeout: .nanoseconds(MeshInput.nanoseconds(clamping: timeout))
      )
      let body = try await response.body.collect(upTo: 16 << 20)
      return .success((Int(response.status.code), String(buffer: body)))
    } catch {
      return .failure(error)
    }
  }
  guard let reply else {
    throw MeshProbeConnectionError("no reply within \(MeshGoDuration.format(timeout))")
  }
  return try reply.get()
}

/// Whole days from `now` to `date` (negative once past), through the checked conversion.
func daysLeft(until date: Date, now: Date = Date()) -> Int {
  Int(MeshInput.int64(truncating: (date.timeIntervalSince(now) / 86_400).rounded(.down)) ?? 0)
}

/// Every certificate in a PEM file, leaf first; none is a typed error.
func readCertificates(_ path: String) throws(MeshTLSError) -> [Certificate] {
  let source = MeshPEMSource.file(path)
  let certificates = try source.parseCertificates(try source.load(), role: "The certificate file")
  guard !certificates.isEmpty else {
    throw MeshTLSError(code: .malformedPEM, message: "\(path) holds no certificate.")
  }
  return certificates
}
