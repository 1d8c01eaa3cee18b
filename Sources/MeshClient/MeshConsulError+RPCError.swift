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

#if Consul
  public import GRPCCore
  public import MeshConsul

  // MeshConsul stays free of gRPC (it is usable without a gRPC stack): the conformance of its error
  // lives here, where Consul discovery feeds RPCs.
  extension MeshConsulError: RPCErrorConvertible {
    /// `FAILED_PRECONDITION` for the client's own configuration, else `UNAVAILABLE`.
    public var rpcErrorCode: RPCError.Code {
      self.code == .invalidConfiguration ? .failedPrecondition : .unavailable
    }

    /// The ``MeshConsulError/description``, in the wording of Consul's Go client.
    public var rpcErrorMessage: String {
      self.description
    }
  }
#endif
