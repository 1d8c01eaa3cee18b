#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""An OTLP/gRPC trace collector driven over stdin/stdout, for the Swift interop tests.

It serves opentelemetry.proto.collector.trace.v1.TraceService/Export with grpcio and the
messages generated in the opentelemetry-proto package, so what it accepts is what any OTLP
collector accepts. It keeps every span it receives, in the order received. On start it prints
{"op": "listening", "listening": N, "port": N}. The Swift test sends one JSON object per line on
stdin ("cmd" or "op" names the command; numbers may come as strings) and reads one JSON object per
line from stdout:

  {"cmd": "spans"}                            -> {"op": "spans", "spans": [SPAN, ...]}
  {"cmd": "wait", "count": n, "timeout": s}   -> once at least n spans were received:
                                                 {"op": "wait", "count": k, "spans": [...]};
                                                 after s seconds (default 10) without them:
                                                 {"op": "wait", "count": k, "spans": [...],
                                                  "error": "..."}
  {"cmd": "clear"}                            -> forgets the spans: {"op": "clear"}
  {"cmd": "quit"}                             -> exits (so does the end of stdin)

A SPAN is {"trace_id": hex, "span_id": hex, "parent_span_id": hex or "", "trace_state": "...",
"name": "...", "kind": "SPAN_KIND_SERVER", "service_name": the resource's service.name,
"scope_name": "...", "attributes": {key: value}, "events": [name, ...],
"status_code": "STATUS_CODE_ERROR", "status_message": "..."}; an attribute's value is a JSON
string, number or boolean (a list for an array, an object for a key-value list, hex for bytes).

Usage: otlp_collector.py [--port N]
"""
import argparse
import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

_print_lock = threading.Lock()


def emit(obj):
    with _print_lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def value(any_value):
    """An OTLP AnyValue as a JSON value."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: value(item.value) for item in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def attributes(key_values):
    return {item.key: value(item.value) for item in key_values}


def describe(span, service_name, scope_name):
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "name": span.name,
        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
        "service_name": service_name,
        "scope_name": scope_name,
        "attributes": attributes(span.attributes),
        "events": [event.name for event in span.events],
        "status_code": trace_pb2.Status.StatusCode.Name(span.status.code),
        "status_message": span.status.message,
    }


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self._condition = threading.Condition()
        self._spans = []

    def Export(self, request, context):
        received = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            service_name = resource.get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(describe(span, service_name, scope_spans.scope.name))
        with self._condition:
            self._spans.extend(received)
            self._condition.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self):
        with self._condition:
            return list(self._spans)

    def wait(self, count, timeout):
        """The spans, once there are at least `count` (True), or after `timeout` seconds (False)."""
        with self._condition:
            reached = self._condition.wait_for(lambda: len(self._spans) >= count, timeout)
            return reached, list(self._spans)

    def clear(self):
        with self._condition:
            self._spans.clear()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    args = parser.parse_args()

    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    emit({"op": "listening", "listening": port, "port": port})

    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        cmd = command.get("cmd", command.get("op"))
        if cmd == "spans":
            emit({"op": "spans", "spans": collector.spans()})
        elif cmd == "wait":
            count = int(command.get("count", 1))
            timeout = float(command.get("timeout", 10))
            reached, spans = collector.wait(count, timeout)
            reply = {"op": "wait", "count": len(spans), "spans": spans}
            if not reached:
                reply["error"] = "received %d of %d spans in %g s" % (len(spans), count, timeout)
            emit(reply)
        elif cmd == "clear":
            collector.clear()
            emit({"op": "clear"})
        elif cmd == "quit":
            break
        else:
            emit({"op": "error", "error": "unknown command %r" % cmd})

    server.stop(grace=None)


if __name__ == "__main__":
    main()
