#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace receiver for tests: POST /v1/traces with
application/x-protobuf (decoded by the protobuf runtime, python3-protobuf, from message
descriptors built here with the field numbers of the OTLP protos) or application/json
(OTLP's JSON mapping). Every received span is appended to OUT as one JSON line in a
normalised form (hex ids, attributes as a dict). `--fail-first N` answers the first N
requests with 503 (retry tests). Prints "listening 127.0.0.1:PORT" when ready.
Usage: otlp_receiver.py OUT [--fail-first N]
"""
import http.server
import json
import sys
import threading

from google.protobuf import descriptor_pb2, descriptor_pool

from google.protobuf import message_factory


def message_class(d):
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4
        return message_factory.GetMessageClass(d)
    return message_factory.MessageFactory().GetPrototype(d)  # Debian 12's 3.21

F = descriptor_pb2.FieldDescriptorProto


def build_pool():
    """The OTLP trace messages (opentelemetry/proto/{common,resource,trace}/v1,
    collector/trace/v1), written out with the spec's field numbers and types."""
    fd = descriptor_pb2.FileDescriptorProto(name="otlp_test.proto", package="otlp", syntax="proto3")

    def msg(name, fields, nested=()):
        m = fd.message_type.add(name=name)
        for (fname, num, ftype, label, tname) in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = tname
        for n in nested:
            m.nested_type.add().CopyFrom(n)
        return m

    O, R = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("AnyValue", [("string_value", 1, F.TYPE_STRING, O, None), ("bool_value", 2, F.TYPE_BOOL, O, None),
                     ("int_value", 3, F.TYPE_INT64, O, None), ("double_value", 4, F.TYPE_DOUBLE, O, None),
                     ("bytes_value", 7, F.TYPE_BYTES, O, None)])
    msg("KeyValue", [("key", 1, F.TYPE_STRING, O, None), ("value", 2, F.TYPE_MESSAGE, O, ".otlp.AnyValue")])
    msg("Resource", [("attributes", 1, F.TYPE_MESSAGE, R, ".otlp.KeyValue"),
                     ("dropped_attributes_count", 2, F.TYPE_UINT32, O, None)])
    msg("InstrumentationScope", [("name", 1, F.TYPE_STRING, O, None), ("version", 2, F.TYPE_STRING, O, None)])
    ev = descriptor_pb2.DescriptorProto(name="Event")
    for (fname, num, ftype, label, tname) in [("time_unix_nano", 1, F.TYPE_FIXED64, O, None),
                                              ("name", 2, F.TYPE_STRING, O, None),
                                              ("attributes", 3, F.TYPE_MESSAGE, R, ".otlp.KeyValue")]:
        f = ev.field.add(name=fname, number=num, type=ftype, label=label)
        if tname:
            f.type_name = tname
    msg("Status", [("message", 2, F.TYPE_STRING, O, None), ("code", 3, F.TYPE_INT32, O, None)])
    msg("Span", [("trace_id", 1, F.TYPE_BYTES, O, None), ("span_id", 2, F.TYPE_BYTES, O, None),
                 ("trace_state", 3, F.TYPE_STRING, O, None), ("parent_span_id", 4, F.TYPE_BYTES, O, None),
                 ("name", 5, F.TYPE_STRING, O, None), ("kind", 6, F.TYPE_INT32, O, None),
                 ("start_time_unix_nano", 7, F.TYPE_FIXED64, O, None),
                 ("end_time_unix_nano", 8, F.TYPE_FIXED64, O, None),
                 ("attributes", 9, F.TYPE_MESSAGE, R, ".otlp.KeyValue"),
                 ("events", 11, F.TYPE_MESSAGE, R, ".otlp.Span.Event"),
                 ("status", 15, F.TYPE_MESSAGE, O, ".otlp.Status"),
                 ("flags", 16, F.TYPE_FIXED32, O, None)], nested=[ev])
    msg("ScopeSpans", [("scope", 1, F.TYPE_MESSAGE, O, ".otlp.InstrumentationScope"),
                       ("spans", 2, F.TYPE_MESSAGE, R, ".otlp.Span")])
    msg("ResourceSpans", [("resource", 1, F.TYPE_MESSAGE, O, ".otlp.Resource"),
                          ("scope_spans", 2, F.TYPE_MESSAGE, R, ".otlp.ScopeSpans")])
    msg("ExportTraceServiceRequest", [("resource_spans", 1, F.TYPE_MESSAGE, R, ".otlp.ResourceSpans")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_class(pool.FindMessageTypeByName("otlp.ExportTraceServiceRequest"))


Request = build_pool()


def pb_value(v):
    # The AnyValue built here has no oneof, so proto3 scalars have no presence: report the
    # one that is set (the tests use no zero or empty values).
    if v.string_value:
        return v.string_value
    if v.int_value:
        return v.int_value
    if v.double_value:
        return v.double_value
    if v.bool_value:
        return True
    return None


def from_protobuf(body):
    req = Request()
    req.ParseFromString(body)
    out = []
    for rs in req.resource_spans:
        res = {kv.key: pb_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(), "trace_state": s.trace_state,
                    "name": s.name, "kind": s.kind, "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                    "attributes": {kv.key: pb_value(kv.value) for kv in s.attributes},
                    "events": [{"name": e.name, "time": e.time_unix_nano,
                                "attributes": {kv.key: pb_value(kv.value) for kv in e.attributes}} for e in s.events],
                    "status": {"code": s.status.code, "message": s.status.message},
                    "resource": res, "scope": ss.scope.name, "encoding": "protobuf"})
    return out


def json_value(v):
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])  # OTLP/JSON: a string (or number) holding an int64
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    return None


def is_hex(s, n):
    return isinstance(s, str) and len(s) == 2 * n and all(c in "0123456789abcdef" for c in s)


def from_json(body):
    req = json.loads(body)
    out = []
    for rs in req["resourceSpans"]:
        res = {kv["key"]: json_value(kv["value"]) for kv in rs.get("resource", {}).get("attributes", [])}
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                # OTLP/JSON: ids are hex strings, not base64 (protobuf's own JSON mapping).
                if not is_hex(s["traceId"], 16) or not is_hex(s["spanId"], 8):
                    raise ValueError(f"ids not hex: {s['traceId']} {s['spanId']}")
                out.append({
                    "trace_id": s["traceId"], "span_id": s["spanId"], "parent_span_id": s.get("parentSpanId", ""),
                    "trace_state": s.get("traceState", ""), "name": s["name"], "kind": s["kind"],
                    "start": int(s["startTimeUnixNano"]), "end": int(s["endTimeUnixNano"]),
                    "attributes": {kv["key"]: json_value(kv["value"]) for kv in s.get("attributes", [])},
                    "events": [{"name": e["name"], "time": int(e["timeUnixNano"]),
                                "attributes": {kv["key"]: json_value(kv["value"]) for kv in e.get("attributes", [])}}
                               for e in s.get("events", [])],
                    "status": {"code": s.get("status", {}).get("code", 0),
                               "message": s.get("status", {}).get("message", "")},
                    "resource": res, "scope": ss.get("scope", {}).get("name", ""), "encoding": "json"})
    return out


def main():
    out_path = sys.argv[1]
    fail_first = int(sys.argv[sys.argv.index("--fail-first") + 1]) if "--fail-first" in sys.argv else 0
    lock = threading.Lock()
    state = {"requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state["requests"] += 1
                n = state["requests"]
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            if n <= fail_first:
                self.send_response(503)
                self.end_headers()
                return
            ctype = self.headers.get("Content-Type", "")
            try:
                spans = from_protobuf(body) if ctype == "application/x-protobuf" else \
                    from_json(body) if ctype == "application/json" else None
                if spans is None:
                    raise ValueError("unexpected Content-Type " + ctype)
            except Exception as e:  # noqa: BLE001 - a bad export is a 400, as a collector answers
                with lock, open(out_path + ".errors", "a") as f:
                    f.write(f"{e}\n")
                self.send_response(400)
                self.end_headers()
                return
            with lock, open(out_path, "a") as f:
                for s in spans:
                    f.write(json.dumps(s) + "\n")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening 127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
