// The colder parts of ResponseWriter (see its header): error bodies and the SSE error
// event that ends a broken stream.
#include <cstdio>

#include "dataplane/response_writer.h"

namespace llmgw::dataplane {

void AppendErrorJson(std::string* b, std::string_view message, std::string_view type, const char* param,
                     std::string_view code) {
  b->append("{\"error\":{\"message\":");
  AppendJsonString(b, message);
  b->append(",\"type\":");
  AppendJsonString(b, type);
  b->append(",\"param\":");
  if (param) AppendJsonString(b, param);
  else b->append("null");
  b->append(",\"code\":");
  AppendJsonString(b, code);
  b->append("}}");
}

void ResponseWriter::AppendStreamError(std::string* out, const ErrorReply& reply, std::string_view message,
                                       std::string_view separator) {
  // A chunked body ends cleanly with its last chunk (the connection may be kept); one
  // delimited by the close ends only that way.
  if (close_delimited_) close_after_send_ = true;
  // Built in fixed buffers (no allocation): a chunk needs its length up front.
  char msg[256];
  size_t m = JsonEscapeInto(msg, 0, sizeof(msg), message);
  char ev[512];
  int n = std::snprintf(ev, sizeof(ev),
                        "%.*sevent: error\ndata: {\"error\":{\"message\":\"%.*s\",\"type\":\"%.*s\",\"param\":null,"
                        "\"code\":\"%.*s\"}}\n\n",
                        static_cast<int>(separator.size()), separator.data(), static_cast<int>(m), msg, static_cast<int>(reply.type.size()), reply.type.data(),
                        static_cast<int>(reply.code.size()), reply.code.data());
  if (n >= static_cast<int>(sizeof(ev))) n = sizeof(ev) - 1;
  AppendBody(out, ev, static_cast<size_t>(n));
  EndBody(out);  // chunked: the last chunk; close-delimited: the close ends it
}

}  // namespace llmgw::dataplane
