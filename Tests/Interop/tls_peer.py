#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""A grpcio peer over mTLS, driven over stdin/stdout, for the Swift interop tests.

Both modes use grpcio's own TLS stack (BoringSSL in gRPC core) and grpcio-health-checking.

serve: an mTLS server (or, with --plaintext, a plaintext one) that requires client certificates from --ca, hosting the standard health
       service. It prints {"op": "listening", "port": N}, then for every Check it serves,
       {"op": "peer", "spiffe_id": "...", "dns": [...]}: the client identity gRPC verified.
       {"op": "quit"} on stdin stops it.

call:  an mTLS client of --target whose server must present a certificate from --ca naming
       --server-name in a DNS SAN (gRPC's own identity check). Commands on stdin:
       {"op": "check", "service": "s"} -> {"op": "check", "status": "SERVING"} or {"op": "check",
       "code": "UNAVAILABLE", "details": "..."}; {"op": "quit"}.
"""
import argparse
import json
import sys
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

_lock = threading.Lock()


def emit(obj):
    with _lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def read(path):
    with open(path, "rb") as f:
        return f.read()


class RecordingHealthServicer(health.HealthServicer):
    """The standard servicer, reporting each caller's verified identity."""

    def Check(self, request, context):
        auth = context.auth_context()
        if not auth.get("peer_spiffe_id") and not auth.get("peer_dns"):
            return super().Check(request, context)  # plaintext: nobody to report
        emit(
            {
                "op": "peer",
                "spiffe_id": b"".join(auth.get("peer_spiffe_id", [])).decode(),
                "dns": [name.decode() for name in auth.get("peer_dns", [])],
            }
        )
        return super().Check(request, context)


def serve(args):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    health_pb2_grpc.add_HealthServicer_to_server(RecordingHealthServicer(), server)
    if args.plaintext:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        credentials = grpc.ssl_server_credentials(
            [(read(args.key), read(args.cert))],
            root_certificates=read(args.ca),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    emit({"op": "listening", "port": port})
    for line in sys.stdin:
        if line.strip() and json.loads(line).get("op") == "quit":
            break
    server.stop(grace=None)


def call(args):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key),
        certificate_chain=read(args.cert),
    )
    options = [("grpc.ssl_target_name_override", args.server_name)]
    channel = grpc.secure_channel(args.target, credentials, options=options)
    stub = health_pb2_grpc.HealthStub(channel)
    emit({"op": "ready"})
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        if command["op"] == "quit":
            break
        if command["op"] == "check":
            try:
                response = stub.Check(
                    health_pb2.HealthCheckRequest(service=command["service"]), timeout=10
                )
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                emit({"op": "check", "status": name})
            except grpc.RpcError as error:
                emit({"op": "check", "code": error.code().name, "details": error.details()})
    channel.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve", "call"])
    parser.add_argument("--plaintext", action="store_true", help="serve without TLS")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    parser.add_argument("--target")
    parser.add_argument("--server-name")
    args = parser.parse_args()
    if not args.plaintext and not (args.cert and args.key and args.ca):
        parser.error("--cert, --key and --ca are required without --plaintext")
    if args.mode == "serve":
        serve(args)
    else:
        call(args)


if __name__ == "__main__":
    main()
