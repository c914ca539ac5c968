// The end of a request as the stats slot and the access log see it: the client session's
// numbers handed to ThreadStats (thread_stats.h) and AccessLog (access_log.h).
#include <string_view>

#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

void WorkerImpl::EndRequestStats(ClientConn* c, int status) {
  if (status == 0) status = 499;
  if (c->addr_counted) {
    addr_limiter_.Release(c->addr_key);
    c->addr_counted = false;
  }
  if (c->addr_counted) {
    addr_limiter_.Release(c->addr_key);
    c->addr_counted = false;
  }
  uint64_t us = NowUs() - c->start_us;
  bool has_model = c->has_model;
  RequestOutcome r;
  r.status = status;
  r.duration_us = us;
  r.ttfb_us = c->first_byte_us ? c->first_byte_us - c->start_us : 0;
  r.attempt_wait_us = (c->first_byte_us ? c->first_byte_us : NowUs()) - c->attempt_start_us;
  r.model = has_model ? c->attempt.orig_model() : -1;
  r.backend = c->attempt.backend();
  // Through StreamFilter the counts cover every attempt of a resumed stream (and usage the
  // client did not ask for); else the relay's scan of the answer.
  r.prompt_tokens = c->filtering ? c->filter.prompt_tokens() : c->relay.prompt_tokens();
  r.completion_tokens = c->filtering ? c->filter.completion_tokens() : c->relay.completion_tokens();
  if (c->commit_us) r.ttfb_us = c->commit_us - c->start_us;  // the client's, not a continuation's
  stats_.EndRequest(r);
  if (has_model && c->resume_outcome != ResumeOutcome::kCount) stats_.StreamResume(c->attempt.orig_model(), c->resume_outcome);
  if (access_log_.enabled()) {
    AccessRecord a;
    a.method = llhttp_method_name(c->session.method());
    a.path = c->h->url.View();
    a.status = status;
    a.model = has_model ? std::string_view(snap_->models[c->attempt.orig_model()].name) : "";
    a.backend = c->attempt.backend() >= 0 ? std::string_view(snap_->backends[c->attempt.backend()].id) : "";
    a.stream = c->streaming;
    a.attempts = c->attempt.attempts();
    a.duration_us = us;
    a.ttft_us = r.ttfb_us;
    a.bytes_out = c->bytes_out;
    a.prompt_tokens = r.prompt_tokens;
    a.completion_tokens = r.completion_tokens;
    a.resumes = c->filtering ? c->filter.state().resumes() : 0;
    if (c->resume_outcome != ResumeOutcome::kCount) a.resume = ResumeOutcomeName(c->resume_outcome);
    a.request_id = c->h->request_id.View();
    access_log_.Write(a, &rng_);
  }
  c->has_model = false;
}

}  // namespace llmgw::dataplane
