"""A minimal OTLP/HTTP trace receiver for the tests: decodes each JSON body with
the official opentelemetry-proto messages and prints one JSON line per span.

Prints `listening PORT` first (it binds 127.0.0.1 on a free port, or on the
port given as its one argument: `python3 otlp_receiver.py 4318`). Every POST to
/v1/traces is parsed strictly into ExportTraceServiceRequest (an unknown field
or a wrong type is a 400 and an `error ...` line, so a malformed export fails
the test that reads these lines); each span is then printed as
{"service", "trace_id", "span_id", "parent_span_id", "kind", "name"}, ids in hex.
"""

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# OTLP/JSON writes these ids in hex, where the protobuf JSON mapping expects
# base64: the one translation a collector makes before parsing (OTLP spec,
# "JSON Protobuf Encoding").
HEX_IDS = ("traceId", "spanId", "parentSpanId")


def hex_ids_to_base64(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key in HEX_IDS and isinstance(item, str):
                value[key] = base64.b64encode(bytes.fromhex(item)).decode()
            else:
                hex_ids_to_base64(item)
    elif isinstance(value, list):
        for item in value:
            hex_ids_to_base64(item)
    return value


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            return self.answer(404, f"error unexpected path {self.path}")
        if self.headers.get("Content-Type") != "application/json":
            return self.answer(415, f"error content-type {self.headers.get('Content-Type')}")
        try:
            request = json_format.Parse(
                json.dumps(hex_ids_to_base64(json.loads(body))),
                ExportTraceServiceRequest(),
            )
        except (ValueError, json_format.ParseError) as e:
            return self.answer(400, f"error {e}")
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    print(
                        json.dumps(
                            {
                                "service": service,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "kind": Span.SpanKind.Name(span.kind),
                                "name": span.name,
                                "duration_ns": span.end_time_unix_nano
                                - span.start_time_unix_nano,
                            }
                        ),
                        flush=True,
                    )
        self.answer(200, None)

    def answer(self, status, line):
        if line:
            print(line, flush=True)
        payload = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = HTTPServer(("127.0.0.1", port), Receiver)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
