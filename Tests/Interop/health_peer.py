#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""A grpc.health.v1 client driven over stdin/stdout, for the Swift interop tests.

It uses grpcio and grpcio-health-checking's own generated HealthStub, so what it sees is what any
real gRPC health client sees. The Swift test sends one JSON object per line on stdin and reads one
JSON object per line from stdout:

  {"op": "check", "service": "s"}            -> {"op": "check", "service": "s", "status": "SERVING"}
                                                or {"op": "check", "service": "s", "code": "NOT_FOUND"}
  {"op": "list"}                             -> {"op": "list", "statuses": {"s": "SERVING"}}
                                                or {"op": "list", "code": "RESOURCE_EXHAUSTED"}
  {"op": "watch", "id": "w1", "service": "s"} -> {"op": "watch", "id": "w1", "status": "..."} per message,
                                                then {"op": "watch_end", "id": "w1", "code": "..."}
  {"op": "cancel", "id": "w1"}               -> cancels watch w1 (its watch_end follows)
  {"op": "quit"}                             -> exits

Usage: health_peer.py --target 127.0.0.1:PORT
"""
import argparse
import json
import sys
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_STATUS_NAMES = health_pb2.HealthCheckResponse.ServingStatus.Name
_print_lock = threading.Lock()


def emit(obj):
    with _print_lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def watch(stub, watch_id, service, calls):
    call = stub.Watch(health_pb2.HealthCheckRequest(service=service))
    calls[watch_id] = call
    try:
        for response in call:
            emit({"op": "watch", "id": watch_id, "status": _STATUS_NAMES(response.status)})
        emit({"op": "watch_end", "id": watch_id, "code": "OK"})
    except grpc.RpcError as error:
        emit(
            {
                "op": "watch_end",
                "id": watch_id,
                "code": error.code().name,
                "details": error.details() or "",
            }
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    # Keepalive pings every this many milliseconds, with or without calls and data: a client that
    # pings too often, for the server's keepalive enforcement (gRFC A8).
    parser.add_argument("--keepalive-ms", type=int, default=0)
    args = parser.parse_args()

    options = []
    if args.keepalive_ms > 0:
        options = [
            ("grpc.keepalive_time_ms", args.keepalive_ms),
            ("grpc.keepalive_timeout_ms", 10000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    channel = grpc.insecure_channel(args.target, options=options)
    stub = health_pb2_grpc.HealthStub(channel)
    calls = {}
    threads = []
    emit({"op": "ready"})

    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        op = command["op"]
        if op == "check":
            service = command["service"]
            try:
                response = stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=args.timeout
                )
                emit({"op": "check", "service": service, "status": _STATUS_NAMES(response.status)})
            except grpc.RpcError as error:
                emit({"op": "check", "service": service, "code": error.code().name})
        elif op == "list":
            try:
                response = stub.List(health_pb2.HealthListRequest(), timeout=args.timeout)
                statuses = {k: _STATUS_NAMES(v.status) for k, v in response.statuses.items()}
                emit({"op": "list", "statuses": statuses})
            except grpc.RpcError as error:
                emit({"op": "list", "code": error.code().name})
        elif op == "watch":
            thread = threading.Thread(
                target=watch, args=(stub, command["id"], command["service"], calls), daemon=True
            )
            thread.start()
            threads.append(thread)
        elif op == "cancel":
            call = calls.get(command["id"])
            if call is not None:
                call.cancel()
        elif op == "quit":
            break
        else:
            emit({"op": "error", "message": "unknown op %r" % op})

    for call in calls.values():
        call.cancel()
    for thread in threads:
        thread.join(timeout=5)
    channel.close()


if __name__ == "__main__":
    main()
