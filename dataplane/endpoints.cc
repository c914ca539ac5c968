// Local answers and endpoints: response heads, OpenAI-shaped errors, /v1/models, /health,
// /ready, and the request dispatch that resolves the model and starts proxying.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/log.h"
#include "dataplane/request_json.h"
#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

// ClientSession::Handler: a whole request was parsed (client_session.cc).
void WorkerImpl::OnRequest(ClientSession* s) { HandleRequest(static_cast<ClientConn*>(s->owner())); }

void WorkerImpl::BeginResponse(ClientConn* c) {
  AcquireRequest(c);  // an error may come before any request byte was understood
  c->session.BeginAnswer();
  c->response_done = false;
  c->streaming = false;
  c->relay.Begin();
  c->status = 0;
  c->start_us = NowUs();
  c->first_byte_us = 0;
  c->first_token_us = 0;
  c->trace_begun = false;
  c->start_unix_ns = 0;
  c->attempt_open = false;
  c->n_notes = 0;
  c->log_flags = 0;
  c->up = nullptr;
  c->attempt.Reset();
  c->up_deadline_ms = 0;
  c->total_deadline_ms = 0;
  c->bytes_out = 0;
  c->bytes_in = c->session.head_bytes() + c->h->body.size();  // this request's, as parsed
  c->queued = false;
  c->retry_after_s = 0;
  c->deadline_ms = 0;
  c->deadline_status = 0;
  c->has_model = false;
  c->key_slot = c->key_model = -1;
  c->key_hash = 0;
  c->key_conc_held = false;
  c->tpm_live = false;
  c->tpm_events = 0;
  c->tpm_charged = 0;
  c->rl_headers.Clear();
  c->filter_wanted = c->filtering = c->add_usage = c->continuing = c->resumed = false;
  c->stream_error = 0;
  c->commit_us = 0;
  c->resume_outcome = ResumeOutcome::kCount;
  // The session knows the request's version and keep-alive (client_session.h).
  c->rw.Begin(c->session.http10(), !c->session.keep_alive());
  if (c->h->request_id.len == 0) {
    // 24 hex digits from 96 random bits.
    static constexpr char kDigits[] = "0123456789abcdef";
    char id[24];
    uint64_t r = NextRandom();
    uint64_t r2 = NextRandom();
    for (int i = 0; i < 16; ++i) id[i] = kDigits[(r >> (60 - 4 * i)) & 15];
    for (int i = 0; i < 8; ++i) id[16 + i] = kDigits[(r2 >> (28 - 4 * i)) & 15];
    c->h->request_id.Append(id, sizeof(id));
  }
}

// `content_type` empty: none of llmgw's own (a relayed answer brings its own in
// `relayed`, the upstream's end-to-end header lines).
void WorkerImpl::WriteHead(ClientConn* c, int status, std::string_view content_type,
                                             int64_t content_length, std::string_view relayed) {
  c->status = status;
  HeadExtras x;
  x.request_id = c->h->request_id.View();
  x.no_cache = c->relay.needs_no_cache();
  x.retry_after_s = c->retry_after_s;
  x.draining = draining_;
  x.extra_lines = c->rl_headers.View();
  c->rw.WriteHead(&c->h->out, status, content_type, content_length, relayed, x);
}

void WorkerImpl::SendLocal(ClientConn* c, int status, std::string_view body, std::string_view ct) {
  WriteHead(c, status, ct, static_cast<int64_t>(body.size()));
  if (c->session.method() != HTTP_HEAD) c->h->out.append(body);  // HEAD: the length, no body
  c->response_done = true;
  QueueSend(c);
}

// OpenAI-shaped error. `fatal`: the connection closes after it (broken framing).
void WorkerImpl::SendError(ClientConn* c, int status, std::string_view message, std::string_view type,
               const char* param, std::string_view code, bool fatal) {
  if (!c->session.busy()) BeginResponse(c);
  if (fatal) c->rw.CloseAfterSend();
  scratch_.clear();
  AppendErrorJson(&scratch_, message, type, param, code);
  SendLocal(c, status, scratch_);
}

void WorkerImpl::SendFailure(ClientConn* c, const Error& e, bool fatal) {
  ErrorReply r = ReplyFor(e);
  SendError(c, r.status, e.message(), r.type, nullptr, r.code, fatal);
}

bool WorkerImpl::AnyEligible() {
  if (!has_snapshot_) return false;
  for (uint32_t i = 0; i < snap_->num_backends; ++i) {
    const auto& b = snap_->backends[i];
    if (b.state == static_cast<uint8_t>(shm::BackendState::kEmpty)) continue;
    if (router_.Eligible(b, local_[i])) return true;
  }
  return false;
}

void WorkerImpl::SendModels(ClientConn* c) {
  std::string& b = scratch_;
  b.clear();
  b.append("{\"object\":\"list\",\"data\":[");
  bool first = true;
  auto add = [&](const char* name, const char* root) {
    if (!first) b.push_back(',');
    first = false;
    b.append("{\"id\":");
    AppendJsonString(&b, name);
    b.append(",\"object\":\"model\",\"created\":0,\"owned_by\":\"llmgw\",\"root\":");
    AppendJsonString(&b, root);
    b.push_back('}');
  };
  if (has_snapshot_) {
    for (uint32_t m = 0; m < snap_->num_models && m < shm::kMaxModels; ++m) {
      const auto& me = snap_->models[m];
      if (!me.present) continue;
      add(me.name, me.name);
      for (uint32_t a = 0; a < me.num_aliases && a < shm::kMaxAliases; ++a) add(me.aliases[a], me.name);
    }
  }
  b.append("]}");
  SendLocal(c, 200, b);
}

int WorkerImpl::FindModel(std::string_view name, bool* via_alias) {
  *via_alias = false;
  for (uint32_t m = 0; m < snap_->num_models && m < shm::kMaxModels; ++m) {
    const auto& me = snap_->models[m];
    if (!me.present) continue;
    if (name == me.name) return static_cast<int>(m);
  }
  for (uint32_t m = 0; m < snap_->num_models && m < shm::kMaxModels; ++m) {
    const auto& me = snap_->models[m];
    if (!me.present) continue;
    for (uint32_t a = 0; a < me.num_aliases && a < shm::kMaxAliases; ++a)
      if (name == me.aliases[a]) {
        *via_alias = name != me.name;
        return static_cast<int>(m);
      }
  }
  return -1;
}

void WorkerImpl::HandleRequest(ClientConn* c) {
  BeginResponse(c);
  std::string_view url = c->h->url.View();
  size_t q = url.find('?');
  std::string_view path = q == std::string_view::npos ? url : url.substr(0, q);
  auto method = c->session.method();
  bool get = method == HTTP_GET || method == HTTP_HEAD;
  bool post = method == HTTP_POST;
  auto wrong_method = [&] {
    SendFailure(c, Error(ErrorKind::kMethodNotAllowed, ErrorSide::kDownstream, false,
                         "method not allowed on this path"));
  };
  if (path == "/health") {
    if (!get) return wrong_method();
    return SendLocal(c, 200, "{\"status\":\"ok\"}");
  }
  if (path == "/ready") {
    if (!get) return wrong_method();
    if (!has_snapshot_) return SendLocal(c, 503, "{\"status\":\"not ready\",\"reason\":\"no snapshot yet\"}");
    if (!AnyEligible()) return SendLocal(c, 503, "{\"status\":\"not ready\",\"reason\":\"no eligible backend\"}");
    return SendLocal(c, 200, "{\"status\":\"ready\"}");
  }
  if (path == "/v1/models") {
    if (!get) return wrong_method();
    return SendModels(c);
  }
  if (path.size() > 11 && path.substr(0, 11) == "/v1/models/") {  // the SDK's models.retrieve
    if (!get) return wrong_method();
    // The id is the rest of the path ("org/name" ids have slashes), %XX-decoded.
    char id[shm::kNameLen];
    size_t n = 0;
    std::string_view raw = path.substr(11);
    for (size_t i = 0; i < raw.size() && n + 1 < sizeof id; ++i) {
      auto hex = [](char ch) {
        char lo = static_cast<char>(ch | 32);
        return ch >= '0' && ch <= '9' ? ch - '0' : lo >= 'a' && lo <= 'f' ? lo - 'a' + 10 : -1;
      };
      if (raw[i] == '%' && i + 2 < raw.size() && hex(raw[i + 1]) >= 0 && hex(raw[i + 2]) >= 0) {
        id[n++] = static_cast<char>(hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
        i += 2;
      } else {
        id[n++] = raw[i];
      }
    }
    bool via_alias = false;
    int m = has_snapshot_ ? FindModel(std::string_view(id, n), &via_alias) : -1;
    if (m < 0)
      return SendError(c, 404, "The model does not exist or you do not have access to it.", "invalid_request_error",
                       "model", "model_not_found");
    std::string& b = scratch_;
    b.clear();
    b.append("{\"id\":");
    AppendJsonString(&b, std::string_view(id, n));
    b.append(",\"object\":\"model\",\"created\":0,\"owned_by\":\"llmgw\",\"root\":");
    AppendJsonString(&b, snap_->models[m].name);
    b.push_back('}');
    return SendLocal(c, 200, b);
  }
  const char* api = nullptr;
  if (path == "/v1/chat/completions") api = "/v1/chat/completions";
  else if (path == "/v1/completions") api = "/v1/completions";
  else if (path == "/v1/embeddings") api = "/v1/embeddings";
  else if (path == "/v1/responses") api = "/v1/responses";  // passed through; anthropic and gemini backends skipped (upstream.cc)
  if (!api) {
    return SendFailure(c, Error(ErrorKind::kNotFound, ErrorSide::kDownstream, false, "unknown path"));
  }
  if (!post) return wrong_method();
  std::memcpy(c->api_path, api, std::strlen(api) + 1);  // every api path fits
  BeginTrace(c);
  if (!has_snapshot_) {
    return SendError(c, 503, "gateway has no routing snapshot yet", "service_unavailable", nullptr,
                     "not_ready");
  }
  // Who asks comes before what is asked: a request without a valid key learns nothing
  // about models or its body (keys.cc).
  if (!AuthenticateClient(c)) return;
  RequestFields f;
  ReadRequestFields(c->h->body.data(), c->h->body.size(), cfg_.gateway.admission.priority_field, &f);
  if (!f.valid_json) {
    char msg[160];
    std::snprintf(msg, sizeof(msg), "request body is not valid JSON: %s", f.error);
    return SendError(c, 400, msg, "invalid_request_error", nullptr, "invalid_json");
  }
  if (!f.is_object) {
    return SendError(c, 400, "request body must be a JSON object", "invalid_request_error", nullptr,
                     "invalid_json");
  }
  if (!f.has_model) {
    return SendError(c, 400, "you must provide a model parameter", "invalid_request_error", "model",
                     "missing_model");
  }
  if (!f.model_is_string || f.model_len == 0) {
    return SendError(c, 400, "model must be a non-empty string", "invalid_request_error", "model",
                     "invalid_model");
  }
  if (f.model_too_long) {
    char msg[96];
    std::snprintf(msg, sizeof(msg), "model name is longer than %zu bytes", kMaxModelName);
    return SendError(c, 400, msg, "invalid_request_error", "model", "invalid_model");
  }
  bool via_alias = false;
  int m = FindModel(f.Model(), &via_alias);
  if (m < 0) {
    char msg[192];
    std::snprintf(msg, sizeof(msg), "The model `%.*s` does not exist", static_cast<int>(f.model_len), f.model);
    return SendError(c, 404, msg, "invalid_request_error", "model", "model_not_found");
  }
  c->has_model = true;
  c->attempt.SetModel(m, via_alias);
  if (!AdmitLimits(c, m)) {
    c->has_model = false;  // not counted as the model's request: never admitted
    return;
  }
  // The client's level (its key's priority) bounds the body's priority field: a value
  // above it, or an absurd one (-2^31, 1e300), cannot evict anyone.
  const int32_t level = c->key_slot >= 0 ? snap_->keys[c->key_slot].priority : kDefaultClientPriority;
  c->priority = f.has_priority ? static_cast<int32_t>(std::clamp<int64_t>(f.priority, 0, level)) : level;
  c->model_begin = f.model_raw_begin;
  c->model_end = f.model_raw_end;
  c->streaming = f.stream;
  c->chat = std::strcmp(api, "/v1/chat/completions") == 0;
  // The Responses API streams its own events (response.output_text.delta, ...), not chat
  // chunks: its body and stream pass through untouched (no usage asked for, no resume).
  const bool passthrough = std::strcmp(api, "/v1/responses") == 0;
  if (f.stream && std::strcmp(api, "/v1/embeddings") != 0 && !passthrough) {
    // Tokens are counted for every stream: a client that did not ask for usage gets it
    // asked for anyway and stripped again (StreamFilter). Resume needs the events too.
    const auto& lim = snap_->limits;
    c->add_usage = !f.include_usage;
    c->filter_wanted = lim.resume_streams || c->add_usage;
    if (c->filter_wanted) {
      StreamFilter::Options o;
      o.resume = lim.resume_streams != 0;
      o.resume_max_bytes = lim.resume_max_bytes;
      o.client_wants_usage = !c->add_usage;
      o.requested_choices = f.n;
      o.chat = c->chat;
      if (!free_filters_.empty()) {
        c->filter = free_filters_.back();
        free_filters_.pop_back();
      } else {
        c->filter = new StreamFilter();  // once per concurrent stream; reused after
      }
      c->filter->Begin(&stream_pool_, o);
    }
  }
  c->h->user.Clear();
  c->h->user.Append(f.user, f.user_len);
  if (!addr_limiter_.Acquire(c->addr_key)) {
    c->has_model = false;  // not counted as the model's request: never admitted
    return SendError(c, 429, "too many concurrent requests from this client address (gateway.max_requests_per_client)",
                     "rate_limit_error", nullptr, "rate_limit_exceeded");
  }
  c->addr_counted = true;
  stats_.RequestRouted(m);
  const auto& lim = snap_->limits;
  if (lim.total_ms) {
    c->total_deadline_ms = NowMs() + lim.total_ms;
    ScheduleDeadline(c);
  }
  StartAttempt(c);
}

}  // namespace llmgw::dataplane
