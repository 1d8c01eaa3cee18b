#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""A grpcio health server with injected faults, for the Swift resilience tests.

Check answers SERVING, after --delay-ms, and fails every --fail-every'th call with UNAVAILABLE
(2: half of them). Watch is grpcio-health-checking's own, untouched, so a balancer sees the
endpoint up. On stdin, one JSON object per line:

  {"op": "goaway"}  -> stops gracefully (GOAWAY; calls in flight finish), then {"op": "stopped"}
  {"op": "quit"}    -> stops

On start it prints {"op": "listening", "port": N}; it counts calls in {"op": "calls", "n": N}
replies to {"op": "count"}.

Usage: fault_peer.py [--delay-ms N] [--fail-every K]
"""
import argparse
import json
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


class FaultyHealthServicer(health.HealthServicer):
    def __init__(self, delay_ms, fail_every):
        super().__init__()
        self._delay = delay_ms / 1000.0
        self._fail_every = fail_every
        self._lock = threading.Lock()
        self.calls = 0

    def Check(self, request, context):
        with self._lock:
            self.calls += 1
            call = self.calls
        if self._delay:
            time.sleep(self._delay)
        if self._fail_every and call % self._fail_every == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "injected fault")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--fail-every", type=int, default=0)
    args = parser.parse_args()

    servicer = FaultyHealthServicer(args.delay_ms, args.fail_every)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    emit({"op": "listening", "port": port})
    for line in sys.stdin:
        if not line.strip():
            continue
        op = json.loads(line).get("op")
        if op == "goaway":
            server.stop(grace=1).wait()
            emit({"op": "stopped"})
        elif op == "count":
            emit({"op": "calls", "n": servicer.calls})
        elif op == "quit":
            break
    server.stop(grace=None)


if __name__ == "__main__":
    main()
