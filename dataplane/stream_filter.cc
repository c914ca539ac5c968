// StreamFilter's set-up and the stream end it writes itself; see stream_filter.h.
#include "dataplane/stream_filter.h"

#include <cstdio>

namespace llmgw::dataplane {

void StreamFilter::Begin(BufferPool* pool, const Options& o) {
  opts_ = o;
  pool_ = pool;
  splitter_.Begin(pool, kMaxEventBytes);
  memo_.Clear();
  state_.Begin(pool, o.resume_max_bytes);
  state_.SetRequestedChoices(o.requested_choices);
  passthrough_ = false;
  done_ = false;
  error_ = false;
  error_code_ = 0;
}

void StreamFilter::Release() {
  splitter_.Release();
  state_.Release();
}

void StreamFilter::AppendEnd(std::string* out) const {
  if (opts_.client_wants_usage) {
    uint64_t p = state_.TotalPrompt(), c = state_.TotalCompletion();
    out->append("data: {\"id\":");
    out->append(state_.first_id().empty() ? "\"\"" : state_.first_id());
    out->append(opts_.chat ? ",\"object\":\"chat.completion.chunk\",\"created\":" : ",\"object\":\"text_completion\",\"created\":");
    out->append(state_.first_created().empty() ? "0" : state_.first_created());
    out->append(",\"model\":");
    out->append(state_.first_model().empty() ? "\"\"" : state_.first_model());
    char usage[128];
    int len = std::snprintf(usage, sizeof usage,
                            ",\"choices\":[],\"usage\":{\"prompt_tokens\":%llu,\"total_tokens\":%llu,\"completion_tokens\":%llu}}\n\n",
                            static_cast<unsigned long long>(p), static_cast<unsigned long long>(p + c),
                            static_cast<unsigned long long>(c));
    out->append(usage, static_cast<size_t>(len));
  }
  out->append("data: [DONE]\n\n");
}

}  // namespace llmgw::dataplane
