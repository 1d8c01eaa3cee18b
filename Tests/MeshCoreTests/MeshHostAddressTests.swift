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

import MeshCore
import Testing

@Suite("MeshHost address bytes")
struct MeshHostAddressTests {
  @Test("IPv4 and IPv6 give their network-order bytes; a DNS name gives none")
  func addressBytes() throws {
    #expect(try MeshHost("10.0.0.1").addressBytes == [10, 0, 0, 1])
    #expect(try MeshHost("255.255.255.255").addressBytes == [255, 255, 255, 255])
    #expect(try MeshHost("::1").addressBytes == Array(repeating: 0, count: 15) + [1])
    #expect(
      try MeshHost("[2001:db8::ff00:42:8329]").addressBytes
        == [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0x00, 0x00, 0x42, 0x83, 0x29]
    )
    #expect(try MeshHost("::ffff:192.0.2.1").addressBytes?.suffix(4) == [192, 0, 2, 1])
    #expect(try MeshHost("greeter.service.consul").addressBytes == nil)
  }
}
