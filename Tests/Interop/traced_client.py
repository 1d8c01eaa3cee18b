#!/usr/bin/env python3
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
"""A traced grpcio client driven over stdin/stdout, for the Swift interop tests.

Each call runs in a CLIENT span of opentelemetry-sdk's TracerProvider, and OpenTelemetry's W3C
trace-context propagator (TraceContextTextMapPropagator) puts the span's `traceparent` (and
`tracestate`, when it has one) in the call's metadata, as any OpenTelemetry-instrumented Python
client does. The call is a generic unary call of raw bytes, so it needs no generated stubs. On
start it prints {"op": "ready"}. The Swift test sends one JSON object per line on stdin ("cmd" or
"op" names the command; values may come as strings) and reads one JSON object per line from stdout:

  {"cmd": "call", "target": "127.0.0.1:PORT", "method": "/pkg.Service/Method",
   "request_hex": "0a03...",
   "metadata": {"k": "v"}            (optional: more metadata; an object or a JSON string of one)
   "tracestate": "vendor=value"      (optional: the span's W3C tracestate)
   "sampled": false                  (optional: record the span but send it unsampled, flags 00)
   "timeout": 10}                    (optional: seconds)
      -> {"op": "call", "trace_id": hex, "span_id": hex, "traceparent": "00-...",
          "tracestate": "..." or "", "code": "OK", "details": "", "response_hex": "..."}
         (a failed call: its status name, e.g. "UNIMPLEMENTED", its details and "response_hex": "")
  {"cmd": "quit"}                    -> exits (so does the end of stdin)

Plaintext only.

Usage: traced_client.py [--service-name NAME]
"""
import argparse
import json
import sys

import grpc
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def flag(value):
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "")
    return bool(value)


class CommandSampler(Sampler):
    """Samples each span, or only records it, as the current command asks, with its tracestate.

    Commands run one at a time, so the settings of the command being run are the ones in force.
    """

    def __init__(self):
        self.sampled = True
        self.trace_state = None

    def should_sample(
        self,
        parent_context,
        trace_id,
        name,
        kind=None,
        attributes=None,
        links=None,
        trace_state=None,
    ):
        decision = Decision.RECORD_AND_SAMPLE if self.sampled else Decision.RECORD_ONLY
        return SamplingResult(decision, attributes, self.trace_state)

    def get_description(self):
        return "CommandSampler"


class Client:
    def __init__(self, service_name):
        self._sampler = CommandSampler()
        provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), sampler=self._sampler
        )
        self._tracer = provider.get_tracer("traced_client")
        self._propagator = TraceContextTextMapPropagator()
        self._channels = {}

    def _channel(self, target):
        if target not in self._channels:
            self._channels[target] = grpc.insecure_channel(target)
        return self._channels[target]

    def call(self, command):
        target = command["target"]
        method = command["method"]
        request = bytes.fromhex(command.get("request_hex", ""))
        extra = command.get("metadata") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        timeout = float(command.get("timeout", 10))
        self._sampler.sampled = flag(command.get("sampled", True))
        tracestate = command.get("tracestate") or ""
        self._sampler.trace_state = TraceState.from_header([tracestate]) if tracestate else None

        # OpenTelemetry's RPC conventions: the span is named `package.Service/Method`.
        service, _, name = method.lstrip("/").partition("/")
        with self._tracer.start_as_current_span(method.lstrip("/"), kind=SpanKind.CLIENT) as span:
            span.set_attribute("rpc.system", "grpc")
            span.set_attribute("rpc.service", service)
            span.set_attribute("rpc.method", name)
            carrier = {}
            self._propagator.inject(carrier)  # the current context: this span
            metadata = list(carrier.items()) + [(k, v) for k, v in extra.items()]
            unary = self._channel(target).unary_unary(
                method, request_serializer=None, response_deserializer=None
            )
            context = span.get_span_context()
            reply = {
                "op": "call",
                "trace_id": trace.format_trace_id(context.trace_id),
                "span_id": trace.format_span_id(context.span_id),
                "traceparent": carrier.get("traceparent", ""),
                "tracestate": carrier.get("tracestate", ""),
            }
            try:
                response, call = unary.with_call(request, metadata=metadata, timeout=timeout)
                code, details = call.code(), call.details() or ""
                reply["response_hex"] = (response or b"").hex()
            except grpc.RpcError as error:
                code, details = error.code(), error.details() or ""
                reply["response_hex"] = ""
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code != grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, "%s, %s" % (code.name, details)))
        reply["code"] = code.name
        reply["details"] = details
        return reply

    def close(self):
        for channel in self._channels.values():
            channel.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--service-name", default="traced-client")
    args = parser.parse_args()

    client = Client(args.service_name)
    emit({"op": "ready"})
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        cmd = command.get("cmd", command.get("op"))
        if cmd == "call":
            try:
                emit(client.call(command))
            except (KeyError, ValueError) as error:
                emit({"op": "error", "error": "bad call command: %r" % error})
        elif cmd == "quit":
            break
        else:
            emit({"op": "error", "error": "unknown command %r" % cmd})
    client.close()


if __name__ == "__main__":
    main()
