#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""Checks that Protos/grpc/health/v1/health.proto compiles to the descriptor grpcio ships.

Usage: check-health-proto.py DESCRIPTOR_SET

DESCRIPTOR_SET is protoc's --descriptor_set_out for the vendored health.proto. The reference is the
descriptor inside grpcio-health-checking, so the vendored file cannot drift from the upstream
contract (messages, fields, numbers, RPCs and options) unnoticed. Exits non-zero on a difference.
"""
import sys

from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2


def _messages(messages):
    for message in messages:
        yield message
        yield from _messages(message.nested_type)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    vendored_set = descriptor_pb2.FileDescriptorSet()
    with open(sys.argv[1], "rb") as f:
        vendored_set.ParseFromString(f.read())
    vendored = next(
        (fd for fd in vendored_set.file if fd.package == "grpc.health.v1"), None
    )
    if vendored is None:
        print("no grpc.health.v1 file in the descriptor set", file=sys.stderr)
        return 1

    reference = descriptor_pb2.FileDescriptorProto()
    health_pb2.DESCRIPTOR.CopyToProto(reference)

    # The file's own path differs (grpc_health/v1 in the wheel); comments are not part of the
    # contract, and protoc fills in json_name where the wheel's serialized copy leaves it derived.
    for fd in (vendored, reference):
        fd.ClearField("name")
        fd.ClearField("source_code_info")
        for message in _messages(fd.message_type):
            for field in message.field:
                field.ClearField("json_name")

    if vendored != reference:
        print("vendored health.proto differs from grpcio-health-checking's:", file=sys.stderr)
        print("--- vendored\n%s\n--- reference\n%s" % (vendored, reference), file=sys.stderr)
        return 1
    print("health.proto matches grpcio-health-checking's descriptor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
