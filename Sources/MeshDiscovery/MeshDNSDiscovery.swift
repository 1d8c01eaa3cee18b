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

internal import MeshCore
internal import NIOCore
internal import NIOPosix

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Discovery through DNS A and AAAA records: `watch("orders.internal:8443")` resolves the host
/// every ``refreshInterval`` and yields its addresses, each an endpoint on the target's port.
///
/// A failed lookup keeps the last set and is retried at the next refresh. The lookups run inside
/// the consumer's `next()` (on NIO's thread pool, since `getaddrinfo` blocks), so cancelling the
/// consumer stops the watch.
public struct MeshDNSDiscovery<Clock: _Concurrency.Clock>: MeshDiscovery
where Clock.Duration == Duration {
  /// Resolves a host name to IP addresses (text form).
  public typealias Resolver = @Sendable (_ host: String) async throws -> [String]

  /// The port for targets that name none.
  public var defaultPort: Int
  /// How often to look the name up again.
  public var refreshInterval: Duration
  private let clock: Clock
  private let resolve: Resolver

  /// DNS discovery on `clock`, resolving with `resolve` (tests inject both).
  public init(
    defaultPort: Int = 443,
    refreshInterval: Duration = .seconds(30),
    clock: Clock,
    resolve: @escaping Resolver = MeshDNSLookup.addresses(of:)
  ) {
    self.defaultPort = defaultPort
    self.refreshInterval = refreshInterval
    self.clock = clock
    self.resolve = resolve
  }

  /// Watches `target` (`host:port`, `[v6]:port`, or a bare host on ``defaultPort``): looks it up at
  /// once, then every ``refreshInterval``, and yields the addresses whenever they change. A target
  /// that cannot be split into a host and a port 1–65535 makes the sequence throw
  /// ``MeshDiscoveryError`` (``MeshDiscoveryError/Code/invalidTarget``).
  public func watch(_ target: String) -> MeshEndpointUpdates {
    MeshEndpointUpdates(
      Updates(
        target: target,
        defaultPort: self.defaultPort,
        refreshInterval: self.refreshInterval,
        clock: self.clock,
        resolve: self.resolve
      )
    )
  }

  private struct Updates: AsyncSequence, Sendable {
    let target: String
    let defaultPort: Int
    let refreshInterval: Duration
    let clock: Clock
    let resolve: Resolver

    func makeAsyncIterator() -> Iterator {
      Iterator(updates: self)
    }

    struct Iterator: AsyncIteratorProtocol {
      let updates: Updates
      var isFirst = true

      mutating func next() async throws -> MeshEndpointSet? {
        let (host, port) = try MeshDNSLookup.split(
          self.updates.target,
          defaultPort: self.updates.defaultPort
        )
        while !Task.isCancelled {
          if self.isFirst {
            self.isFirst = false
          } else {
            do {
              try await self.updates.clock.sleep(for: self.updates.refreshInterval)
            } catch {
              return nil  // cancelled
            }
          }
          // A failed lookup keeps the last set; the next refresh tries again.
          guard let addresses = try? await self.updates.resolve(host) else { continue }
          // An unchanged set is skipped by MeshEndpointUpdates, for every discovery alike.
          return MeshEndpointSet(
            service: self.updates.target,
            endpoints: addresses.map { MeshEndpoint(host: $0, port: port) }
          )
        }
        return nil
      }
    }
  }
}

extension MeshDNSDiscovery where Clock == ContinuousClock {
  /// DNS discovery on the continuous clock.
  public init(defaultPort: Int = 443, refreshInterval: Duration = .seconds(30)) {
    self.init(defaultPort: defaultPort, refreshInterval: refreshInterval, clock: ContinuousClock())
  }
}

/// The system's name lookup (`getaddrinfo`), off the cooperative thread pool.
public enum MeshDNSLookup {
  /// The IPv4 and IPv6 addresses of `host`, sorted, without duplicates.
  public static func addresses(of host: String) async throws -> [String] {
    try await NIOThreadPool.singleton.runIfActive {
      try Self.blockingAddresses(of: host)
    }
  }

  /// Splits `host:port`, `[v6]:port` or `host` (with `defaultPort`), through MeshCore's one host
  /// classifier and port parser.
  static func split(_ target: String, defaultPort: Int) throws -> (String, Int) {
    do throws(MeshInputError) {
      let colons = target.filter { $0 == ":" }.count
      let hasPort = target.hasPrefix("[") ? target.contains("]:") : colons == 1
      if hasPort {
        let (host, port) = try MeshHost.parseAuthority(target, field: "target")
        return (host.text, port)
      }
      let host = try MeshHost(target, field: "target")
      return (host.text, try MeshInput.port(defaultPort, field: "defaultPort"))
    } catch {
      throw MeshDiscoveryError(
        code: .invalidTarget,
        message: "'\(target)' is not a DNS target: \(error.message).",
        cause: error
      )
    }
  }

  private static func blockingAddresses(of host: String) throws -> [String] {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, nil, &hints, &list)
    guard status == 0 else {
      throw MeshDiscoveryError(
        code: .resolutionFailed,
        message: "Looking up '\(host)' failed: \(String(cString: gai_strerror(status)))."
      )
    }
    defer { freeaddrinfo(list) }

    var addresses = Set<String>()
    var entry = list
    while let info = entry?.pointee {
      if let address = info.ai_addr {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch info.ai_family {
        case AF_INET:
          address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
            var raw = v4.pointee.sin_addr
            _ = inet_ntop(AF_INET, &raw, &buffer, socklen_t(buffer.count))
          }
        case AF_INET6:
          address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
            var raw = v6.pointee.sin6_addr
            _ = inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count))
          }
        default:
          break
        }
        let length = buffer.firstIndex(of: 0) ?? buffer.count
        let text = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if !text.isEmpty {
          addresses.insert(text)
        }
      }
      entry = info.ai_next
    }
    return addresses.sorted()
  }
}
