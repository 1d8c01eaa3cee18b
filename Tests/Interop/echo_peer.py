#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""A grpcio server of test.Native (raw bytes), the same service as the Swift tests' own:

  Echo    unary: the request back; request metadata starting with x- back as initial metadata and
          trailers; `echo-status: N` (with `echo-message`) ends the call with that status instead
  Expand  server streaming: first-byte-many messages of the request plus an index byte
  Count   client streaming: "<messages> <bytes>" as text
  Ping    bidirectional: each message back as it comes
  Caller  unary: the client's verified SPIFFE ID (mTLS), empty on plaintext

On start it prints {"op": "listening", "port": N}; it stops on {"op": "quit"} or end of input.

Usage: echo_peer.py [--tls-cert FILE --tls-key FILE --tls-ca FILE]
  (mTLS, with gRPC core's TLS: clients must present a certificate from --tls-ca)
"""
import argparse
import json
import sys
from concurrent import futures

import grpc

CODES = {code.value[0]: code for code in grpc.StatusCode}


def echoed(context):
    return [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-")]


def echo(request, context):
    metadata = dict(context.invocation_metadata())
    mine = echoed(context)
    if "echo-status" in metadata:
        context.set_trailing_metadata(mine)
        code = CODES.get(int(metadata["echo-status"]), grpc.StatusCode.UNKNOWN)
        context.abort(code, metadata.get("echo-message", ""))
    context.send_initial_metadata(mine)
    context.set_trailing_metadata(mine)
    return request


def expand(request, context):
    for index in range(request[0] if request else 0):
        yield request + bytes([index % 256])


def count(requests, context):
    messages = 0
    total = 0
    for request in requests:
        messages += 1
        total += len(request)
    return f"{messages} {total}".encode()


def ping(requests, context):
    for request in requests:
        yield request


def caller(request, context):
    return b"".join(context.auth_context().get("peer_spiffe_id", []))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-ca")
    args = parser.parse_args()
    tls = [args.tls_cert, args.tls_key, args.tls_ca]
    if any(tls) and not all(tls):
        parser.error("--tls-cert, --tls-key and --tls-ca go together")
    handler = grpc.method_handlers_generic_handler(
        "test.Native",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Expand": grpc.unary_stream_rpc_method_handler(expand),
            "Count": grpc.stream_unary_rpc_method_handler(count),
            "Ping": grpc.stream_stream_rpc_method_handler(ping),
            "Caller": grpc.unary_unary_rpc_method_handler(caller),
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64),
        options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ],
    )
    server.add_generic_rpc_handlers((handler,))
    if all(tls):
        credentials = grpc.ssl_server_credentials(
            [(read(args.tls_key), read(args.tls_cert))],
            root_certificates=read(args.tls_ca),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    emit({"op": "listening", "port": port})
    for line in sys.stdin:
        if json.loads(line).get("op") == "quit":
            break
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
