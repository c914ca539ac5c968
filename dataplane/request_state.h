// RequestState: what one request needs while it is read and answered (URL, ids, the
// forwarded header lines both ways, the body, the bytes for the client). Shared by
// ClientSession (fills it while parsing), the worker (answers from it) and the upstream
// codec (serialises the request from it); pooled per thread by the worker.
#pragma once

#include <string>

#include "dataplane/header_collector.h"
#include "dataplane/small_str.h"

namespace llmgw::dataplane {

// Taken from a per-thread pool when a request starts and given back when its answer is
// out, so an idle keep-alive connection holds none of it (and no big body's capacity).
struct RequestState {
  SmallStr<1024> url;
  SmallStr<128> request_id;
  SmallStr<256> hash_value;
  // The client's end-to-end headers as "Name: value\r\n" lines, sent upstream as they
  // are. Capacity reserved once (gateway.max_header_bytes and a margin); never grown.
  HeaderCollector req_headers;
  bool has_content_type = false;
  // The upstream's end-to-end response headers, relayed to the client; same bound.
  HeaderCollector resp_headers;
  SmallStr<128> user;  // the body's `user`: consistent_hash key when the header is absent
  // W3C Trace Context as the client sent it (llmgw writes traceparent upstream itself:
  // the attempt's span when tracing, else the client's value unchanged); tracestate is
  // also forwarded as a header line. User-Agent for the access log.
  SmallStr<64> traceparent;
  SmallStr<256> tracestate;
  SmallStr<200> user_agent;
  std::string body;
  std::string out;     // bytes for the client; one send in flight at a time
  char prefix[1024];   // prompt prefix for prefix_affinity, extracted on first need
  int prefix_len = -1; // -1: not extracted yet
  void Reset() {
    url.Clear();
    request_id.Clear();
    hash_value.Clear();
    req_headers.Clear();
    has_content_type = false;
    resp_headers.Clear();
    user.Clear();
    traceparent.Clear();
    tracestate.Clear();
    user_agent.Clear();
    body.clear();
    out.clear();
    prefix_len = -1;
  }
};

}  // namespace llmgw::dataplane
