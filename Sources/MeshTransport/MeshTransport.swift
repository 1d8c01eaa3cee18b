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

// MeshTransport is the NIO side of the mesh: TLS credentials and their rotation (Security/),
// per-endpoint subchannels and the balancing `ClientTransport` (Balancing/), and the resilience
// policies it runs (Resilience/). Service identities, identity policies and certificate
// verification are MeshIdentity's (no NIO, no gRPC), re-exported here so that a service needs
// one import; so is MeshCore, whose MeshInputError is the error of a bad setting
// (MeshResilienceError, MeshBalancingError) and whose MeshError is every error's shape.

@_exported public import MeshCore
@_exported public import MeshIdentity
