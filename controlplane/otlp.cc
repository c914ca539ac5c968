// OTLP trace encodings (otlp.h). Field numbers, from the OTLP protos (v1):
//   ExportTraceServiceRequest: resource_spans = 1
//   ResourceSpans: resource = 1, scope_spans = 2
//   Resource: attributes = 1
//   ScopeSpans: scope = 1, spans = 2;  InstrumentationScope: name = 1, version = 2
//   Span: trace_id = 1, span_id = 2, trace_state = 3, parent_span_id = 4, name = 5,
//         kind = 6, start_time_unix_nano = 7 (fixed64), end_time_unix_nano = 8 (fixed64),
//         attributes = 9, events = 11, status = 15
//   Span.Event: time_unix_nano = 1 (fixed64), name = 2, attributes = 3
//   Status: message = 2, code = 3
//   KeyValue: key = 1, value = 2
//   AnyValue: string_value = 1, bool_value = 2, int_value = 3, double_value = 4
#include "controlplane/otlp.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>

namespace llmgw::cp {

namespace {

// ---- protobuf wire format -------------------------------------------------------------
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

void Varint(std::string* o, uint64_t v) {
  while (v >= 0x80) {
    o->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  o->push_back(static_cast<char>(v));
}
void Tag(std::string* o, uint32_t field, Wire w) { Varint(o, (static_cast<uint64_t>(field) << 3) | w); }
void Bytes(std::string* o, uint32_t field, const void* p, size_t n) {
  Tag(o, field, kLen);
  Varint(o, n);
  o->append(static_cast<const char*>(p), n);
}
void Str(std::string* o, uint32_t field, const std::string& s) {
  if (!s.empty()) Bytes(o, field, s.data(), s.size());
}
void Fixed64(std::string* o, uint32_t field, uint64_t v) {
  Tag(o, field, kFixed64);
  for (int i = 0; i < 8; ++i) o->push_back(static_cast<char>(v >> (8 * i)));
}
void Uint(std::string* o, uint32_t field, uint64_t v) {
  if (!v) return;
  Tag(o, field, kVarint);
  Varint(o, v);
}
void Message(std::string* o, uint32_t field, const std::string& body) { Bytes(o, field, body.data(), body.size()); }

std::string AnyValue(const OtlpValue& v) {
  std::string o;
  if (const auto* s = std::get_if<std::string>(&v)) {
    Bytes(&o, 1, s->data(), s->size());  // present even when empty: the value is ""
  } else if (const auto* b = std::get_if<bool>(&v)) {
    Tag(&o, 2, kVarint);
    Varint(&o, *b ? 1 : 0);
  } else if (const auto* i = std::get_if<int64_t>(&v)) {
    Tag(&o, 3, kVarint);
    Varint(&o, static_cast<uint64_t>(*i));  // int64: two's complement, 10 bytes when negative
  } else if (const auto* d = std::get_if<double>(&v)) {
    uint64_t bits;
    std::memcpy(&bits, d, 8);
    Fixed64(&o, 4, bits);
  }
  return o;
}

void Attributes(std::string* o, uint32_t field, const OtlpAttributes& attrs) {
  for (const auto& [k, v] : attrs) {
    std::string kv;
    Str(&kv, 1, k);
    Message(&kv, 2, AnyValue(v));
    Message(o, field, kv);
  }
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

std::string SpanBytes(const OtlpSpan& s) {
  std::string o;
  Bytes(&o, 1, s.trace_id, 16);
  Bytes(&o, 2, s.span_id, 8);
  Str(&o, 3, s.trace_state);
  if (!AllZero(s.parent_span_id, 8)) Bytes(&o, 4, s.parent_span_id, 8);
  Str(&o, 5, s.name);
  Uint(&o, 6, static_cast<uint64_t>(s.kind));
  Fixed64(&o, 7, s.start_unix_ns);
  Fixed64(&o, 8, s.end_unix_ns);
  Attributes(&o, 9, s.attributes);
  for (const auto& e : s.events) {
    std::string ev;
    Fixed64(&ev, 1, e.time_unix_ns);
    Str(&ev, 2, e.name);
    Attributes(&ev, 3, e.attributes);
    Message(&o, 11, ev);
  }
  if (s.status_code || !s.status_message.empty()) {
    std::string st;
    Str(&st, 2, s.status_message);
    Uint(&st, 3, static_cast<uint64_t>(s.status_code));
    Message(&o, 15, st);
  }
  return o;
}

// ---- JSON ------------------------------------------------------------------------------
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kHex[p[i] >> 4]);
    s.push_back(kHex[p[i] & 15]);
  }
  return s;
}
void JStr(JsonWriter& w, const char* k, const std::string& v) {
  w.Key(k);
  w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
}
void JAttributes(JsonWriter& w, const OtlpAttributes& attrs) {
  w.Key("attributes");
  w.StartArray();
  for (const auto& [k, v] : attrs) {
    w.StartObject();
    JStr(w, "key", k);
    w.Key("value");
    w.StartObject();
    if (const auto* s = std::get_if<std::string>(&v)) JStr(w, "stringValue", *s);
    else if (const auto* b = std::get_if<bool>(&v)) { w.Key("boolValue"); w.Bool(*b); }
    else if (const auto* i = std::get_if<int64_t>(&v)) JStr(w, "intValue", std::to_string(*i));
    else if (const auto* d = std::get_if<double>(&v)) { w.Key("doubleValue"); w.Double(*d); }
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

std::string EncodeOtlpProtobuf(const OtlpResource& r, const std::vector<OtlpSpan>& spans) {
  std::string resource;
  Attributes(&resource, 1, r.attributes);
  std::string scope;
  Str(&scope, 1, r.scope_name);
  Str(&scope, 2, r.scope_version);
  std::string scope_spans;
  Message(&scope_spans, 1, scope);
  for (const auto& s : spans) Message(&scope_spans, 2, SpanBytes(s));
  std::string resource_spans;
  Message(&resource_spans, 1, resource);
  Message(&resource_spans, 2, scope_spans);
  std::string req;
  Message(&req, 1, resource_spans);
  return req;
}

std::string EncodeOtlpJson(const OtlpResource& r, const std::vector<OtlpSpan>& spans) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("resourceSpans");
  w.StartArray();
  w.StartObject();
  w.Key("resource");
  w.StartObject();
  JAttributes(w, r.attributes);
  w.EndObject();
  w.Key("scopeSpans");
  w.StartArray();
  w.StartObject();
  w.Key("scope");
  w.StartObject();
  JStr(w, "name", r.scope_name);
  JStr(w, "version", r.scope_version);
  w.EndObject();
  w.Key("spans");
  w.StartArray();
  for (const auto& s : spans) {
    w.StartObject();
    JStr(w, "traceId", Hex(s.trace_id, 16));
    JStr(w, "spanId", Hex(s.span_id, 8));
    if (!s.trace_state.empty()) JStr(w, "traceState", s.trace_state);
    if (!AllZero(s.parent_span_id, 8)) JStr(w, "parentSpanId", Hex(s.parent_span_id, 8));
    JStr(w, "name", s.name);
    w.Key("kind");
    w.Int(s.kind);
    JStr(w, "startTimeUnixNano", std::to_string(s.start_unix_ns));
    JStr(w, "endTimeUnixNano", std::to_string(s.end_unix_ns));
    JAttributes(w, s.attributes);
    w.Key("events");
    w.StartArray();
    for (const auto& e : s.events) {
      w.StartObject();
      JStr(w, "timeUnixNano", std::to_string(e.time_unix_ns));
      JStr(w, "name", e.name);
      JAttributes(w, e.attributes);
      w.EndObject();
    }
    w.EndArray();
    w.Key("status");
    w.StartObject();
    if (!s.status_message.empty()) JStr(w, "message", s.status_message);
    w.Key("code");
    w.Int(s.status_code);
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return sb.GetString();
}

}  // namespace llmgw::cp
