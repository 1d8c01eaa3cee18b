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

public import Synchronization

#if MESH_TSAN
  @usableFromInline
  @_silgen_name("__tsan_acquire")
  func _meshTSanAcquire(_ address: UnsafeMutableRawPointer)

  @usableFromInline
  @_silgen_name("__tsan_release")
  func _meshTSanRelease(_ address: UnsafeMutableRawPointer)

  /// An object whose address stands for one ``MeshMutex`` in ThreadSanitizer's bookkeeping.
  @usableFromInline
  final class _MeshTSanToken: Sendable {
    @usableFromInline
    init() {}
  }
#endif

/// Synchronization's `Mutex`, which the package uses for all its locking.
///
/// On Linux, `Mutex` locks with futexes that ThreadSanitizer does not intercept, so TSan reports
/// every access a `Mutex` guards as a race. Built with `-D MESH_TSAN` (scripts/sanitize.sh does
/// for its ThreadSanitizer pass), each critical section is announced to TSan as an acquire and a
/// release of a lock of its own, so that only real races are reported. Otherwise it is `Mutex`,
/// inlined, at no cost.
public struct MeshMutex<Value: ~Copyable>: ~Copyable, Sendable {
  @usableFromInline
  let base: Mutex<Value>

  #if MESH_TSAN
    /// Where TSan is told the lock is (the value's own address cannot be taken before the
    /// acquire without TSan seeing an access to it).
    @usableFromInline
    let token = _MeshTSanToken()
  #endif

  /// A mutex holding `initialValue`.
  @inlinable
  public init(_ initialValue: consuming sending Value) {
    self.base = Mutex(initialValue)
  }

  /// Runs `body` with the value, holding the lock.
  @inlinable
  public borrowing func withLock<Result: ~Copyable, E: Error>(
    _ body: (inout sending Value) throws(E) -> sending Result
  ) throws(E) -> sending Result {
    #if MESH_TSAN
      let address = Unmanaged.passUnretained(self.token).toOpaque()
      return try self.base.withLock { (value: inout sending Value) throws(E) -> sending Result in
        _meshTSanAcquire(address)
        defer { _meshTSanRelease(address) }
        return try body(&value)
      }
    #else
      return try self.base.withLock(body)
    #endif
  }
}

extension MeshMutex {
  /// The value kept under `key`, made by `make` (under the lock) the first time: a cache of
  /// instruments, counters and the like.
  package func value<Key: Hashable & Sendable, Element: Sendable>(
    for key: Key,
    make: () -> Element
  ) -> Element where Value == [Key: Element] {
    self.withLock { values in
      if let value = values[key] { return value }
      let value = make()
      values[key] = value
      return value
    }
  }
}
