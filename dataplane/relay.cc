// Relay: upstream reads parsed by the connection's codec and relayed to the client as
// they arrive (SSE, chunked or Content-Length), with backpressure; the codec's Handler
// (final head, body pieces, end) writes them through ResponseWriter and SseRelay; at the
// exchange's end the connection goes back to the UpstreamPool (ReleaseUpstream).
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
#include "common/providers/anthropic_translate.h"
#include "common/shm.h"
#include "dataplane/request_json.h"
#include "dataplane/worker_impl.h"

namespace llmgw::dataplane {

void WorkerImpl::OnUpRecv(UpstreamConn* u, int res) {
  u->recv_armed = false;
  if (u->closed || !u->client) return;
  ClientConn* c = u->client;
  if (res <= 0) return OnUpClosed(u, c, res);
  stats_.UpstreamBytesIn(u->slot, static_cast<uint64_t>(res));
  if (u->tls) return OnUpTlsRecv(u, c, static_cast<size_t>(res));  // upstream.cc
  // Before the final head, the first-byte deadline keeps running: an interim 1xx (or a
  // head trickling in) does not make a backend that never answers an idle one.
  if (c->rw.committed()) SetUpDeadline(c, 3, snap_->limits.idle_ms);
  if (!ParseUp(u, c, u->in, static_cast<size_t>(res))) return;
  AfterUpParse(u, c);
}

// The upstream closed (res 0) or its read failed.
void WorkerImpl::OnUpClosed(UpstreamConn* u, ClientConn* c, int res) {
  bool finished = res == 0 && u->codec.Finish() && c->response_done;
  if (finished) {
    // Body delimited by the upstream closing: complete.
    u->reused = false;
    ReleaseUpstream(c, false);
    // Nothing may be left to send (a close-delimited answer to an HTTP/1.0 client has
    // no terminating chunk): then the request is finished here.
    if (c->out_off < c->h->out.size()) QueueSend(c);
    else AfterClientDrained(c);
    return;
  }
  if (c->stream_error) return StreamBroke(c, u);  // a close-delimited stream ended before [DONE]
  if (u->reused && !u->codec.saw_bytes()) return RetryStale(c);
  stats_.UpstreamError(u->slot, shm::UpstreamErr::kReset);
  return UpstreamFailed(c, Error(ErrorKind::kConnectionReset, ErrorSide::kUpstream, true,
                                 "upstream closed the connection"));
}

// Answer bytes through the codec; false when that ended the attempt (failed over).
bool WorkerImpl::ParseUp(UpstreamConn* u, ClientConn* c, const char* p, size_t n) {
  // The codec calls OnResponseHead / Body / Complete below as the bytes say.
  if (u->codec.Parse(p, n) == UpstreamCodec::Parsed::kError) {
    // A refused 5xx / 429 was counted by OnResponseHead; anything else is not HTTP.
    if (u->codec.error().kind() == ErrorKind::kUpstreamProtocol)
      stats_.UpstreamError(u->slot, shm::UpstreamErr::kProtocol);
    UpstreamFailed(c, u->codec.error());
    return false;
  }
  if (c->stream_error) {
    StreamBroke(c, u);
    return false;
  }
  return true;
}

// After a read was parsed: the connection released when the answer is complete, what was
// relayed sent to the client, or the next upstream read armed.
void WorkerImpl::AfterUpParse(UpstreamConn* u, ClientConn* c) {
  if (c->response_done) {
    bool keep = u->codec.keep_alive();
    ReleaseUpstream(c, keep);
  }
  if (c->out_off < c->h->out.size()) {
    c->up_deadline_ms = 0;  // now waiting on the client, see ArmUpRecv
    QueueSend(c);  // next upstream read waits until this is on the wire: backpressure
  } else if (!c->response_done) {
    ArmUpRecv(u);
  } else {
    AfterClientDrained(c);
  }
}

// StreamFilter found the attempt's stream broken inside a complete HTTP answer: an error
// event, or the end before [DONE]. A failure of the backend like a reset.
void WorkerImpl::StreamBroke(ClientConn* c, UpstreamConn* u) {
  bool error_event = c->stream_error == 1;
  int64_t code = c->filter ? c->filter->error_code() : 0;  // no filter: an untranslatable stream
  stats_.UpstreamError(u->slot, error_event ? shm::UpstreamErr::kStatus5xx : shm::UpstreamErr::kProtocol);
  Error e(ErrorKind::kUpstreamStatus, ErrorSide::kUpstream, true, "%s",
          error_event              ? "upstream sent an error inside the stream"
          : c->stream_error == 3 ? "upstream stream is not in its provider's shape (not translatable)"
                                   : "upstream ended the stream before [DONE]");
  // An error about the request itself (4xx but 429) would come back from any backend.
  if (error_event && code >= 400 && code < 500 && code != 429)
    e = Error(ErrorKind::kUpstreamStatus, ErrorSide::kDownstream, false, "upstream sent an error inside the stream (%lld)",
              static_cast<long long>(code));
  e.set_upstream_status(static_cast<uint16_t>(error_event && code >= 400 && code < 600 ? code : 502));
  UpstreamFailed(c, e);
}

bool WorkerImpl::OnResponseHead(UpstreamCodec* codec, int status, int64_t content_length) {
  UpstreamConn* u = static_cast<UpstreamConn*>(codec->owner());
  ClientConn* c = u->client;
  if (c->continuing) {
    // A continuation's head is not the client's (that went out with the first attempt):
    // only an SSE 200 can carry the stream on; anything else fails this attempt.
    if (status != 200 || !c->relay.is_sse()) {
      stats_.UpstreamError(u->slot, status == 429   ? shm::UpstreamErr::kStatus429
                                    : status >= 500 ? shm::UpstreamErr::kStatus5xx
                                                    : shm::UpstreamErr::kProtocol);
      c->relay.KeepClientStream();
      return false;
    }
    c->first_byte_us = NowUs();
    if (local_[u->slot].awaiting) --local_[u->slot].awaiting;
    if (c->xlate) BeginTranslatedStream(c);
    return true;
  }
  if ((status >= 500 || status == 429) && !c->rw.committed()) {
    stats_.UpstreamError(u->slot, status == 429 ? shm::UpstreamErr::kStatus429 : shm::UpstreamErr::kStatus5xx);
    return false;  // the codec makes the error; UpstreamFailed decides on a retry
  }
  c->first_byte_us = NowUs();
  if (local_[u->slot].awaiting) --local_[u->slot].awaiting;
  if (c->xlate) {
    if (status != 200 || !c->relay.is_sse()) {
      // Anthropic's whole answer (or error) is collected, translated at its end.
      c->xlate_buffering = true;
      c->xlate_status = status;
      if (!c->xlate_answer) c->xlate_answer = stream_pool_.Take();
      c->xlate_answer->clear();
      return true;
    }
    BeginTranslatedStream(c);
    content_length = -1;  // the translated stream's length is not the upstream's
  } else if (c->reshape_errors && status >= 400) {
    // An error answer not in OpenAI's shape (Gemini's array): collected, rewritten at its end.
    c->xlate_buffering = true;
    c->xlate_status = status;
    if (!c->xlate_answer) c->xlate_answer = stream_pool_.Take();
    c->xlate_answer->clear();
    return true;
  }
  WriteHead(c, status, {}, content_length, c->h->resp_headers.lines());
  c->status = status;
  c->commit_us = c->first_byte_us;
  c->filtering = c->filter_wanted && status == 200 && c->relay.is_sse();
  return true;
}

void WorkerImpl::OnResponseBody(UpstreamCodec* codec, const char* at, size_t n) {
  ClientConn* c = static_cast<UpstreamConn*>(codec->owner())->client;
  if (c->xlate || c->xlate_buffering) return TranslateBody(c, at, n);  // OpenAI's shape first
  RelayBody(c, at, n);
}

void WorkerImpl::RelayBody(ClientConn* c, const char* at, size_t n) {
  uint64_t gap, now = NowUs();
  int model = c->has_model ? c->attempt.orig_model() : -1;
  if (c->relay.OnPiece(std::string_view(at, n), now, &gap)) stats_.InterToken(model, c->attempt.backend(), gap);
  if (c->relay.is_sse() && !c->first_token_us) {  // TTFT: streams only, their first event
    c->first_token_us = now;
    stats_.FirstToken(model, c->attempt.backend(), now - c->start_us);
  }
  if (!c->filtering) {
    if (c->tpm_live && c->relay.is_sse()) ChargeStreamedTokens(c, std::string_view(at, n));
    return c->rw.AppendBody(&c->h->out, at, n);
  }
  if (c->stream_error) return;  // nothing after an error event goes out
  StreamFilter::Result r = c->filter->OnPiece(std::string_view(at, n), &filter_scratch_, [&](std::string_view b) {
    c->rw.AppendBody(&c->h->out, b.data(), b.size());
  });
  if (r == StreamFilter::Result::kErrorEvent) c->stream_error = 1;
  if (c->tpm_live) ChargeStreamedTokens(c, {});
}

void WorkerImpl::OnResponseComplete(UpstreamCodec* codec) {
  ClientConn* c = static_cast<UpstreamConn*>(codec->owner())->client;
  if (c->xlate_buffering) return FinishTranslatedAnswer(c);
  if (c->stream_error) return;  // OnUpRecv fails the attempt (StreamBroke)
  if (c->filtering) {
    if (!c->filter->done()) {      // an OpenAI stream ends with [DONE]; without it, it broke
      c->stream_error = 2;
      return;
    }
    if (c->continuing) c->resume_outcome = ResumeOutcome::kOk;
  }
  c->rw.EndBody(&c->h->out);
  c->response_done = true;
}

// ---- Anthropic answers in OpenAI's shape (common/providers/anthropic_translate.h)

void WorkerImpl::BeginTranslatedStream(ClientConn* c) {
  if (!c->translator) {
    if (free_translators_.empty()) {
      c->translator = new providers::AnthropicStreamTranslator();  // the stock grows to the peak
    } else {
      c->translator = free_translators_.back();
      free_translators_.pop_back();
    }
  }
  c->translator->Reset(static_cast<int64_t>(shm::NowUnixMs() / 1000));
}

void WorkerImpl::ReleaseTranslation(ClientConn* c) {
  if (c->translator) free_translators_.push_back(c->translator);
  c->translator = nullptr;
  c->xlate = c->xlate_stream = c->xlate_buffering = false;
  c->reshape_errors = nullptr;
  stream_pool_.Give(c->xlate_body);
  stream_pool_.Give(c->xlate_answer);
  c->xlate_body = c->xlate_answer = nullptr;
}

void WorkerImpl::TranslateBody(ClientConn* c, const char* at, size_t n) {
  if (c->xlate_buffering) {
    // Bounded like a client's body: an answer beyond it is refused at its end.
    if (c->xlate_answer->size() + n <= kMaxTranslatedAnswer) c->xlate_answer->append(at, n);
    else c->xlate_status = -1;
    return;
  }
  if (!c->translator) return;
  // Events in, OpenAI chunks out: a slice of 4 KB makes at most a few times that.
  constexpr size_t kSlice = 4096;
  if (xlate_out_.size() < kTranslatedSliceOut) xlate_out_.resize(kTranslatedSliceOut);
  while (n > 0) {
    size_t k = std::min(n, kSlice);
    providers::OutBuf out(xlate_out_.data(), xlate_out_.size());
    Status st = c->translator->Feed(std::string_view(at, k), &out);
    if (!st.ok() || !out.ok()) {
      // Not Anthropic's stream: nothing more is relayed, and the stream is broken whether
      // it is filtered or not (ParseUp: StreamBroke). Resumed when it can be, else it ends
      // like any broken stream, with the SSE error event and the terminating chunk — never
      // with a clean end the client would take for a complete answer.
      LOG_WARN("anthropic stream not translatable", {{"request_id", c->h->request_id.View()},
                                                     {"error", st.ok() ? "chunk too large" : st.error().message()}});
      free_translators_.push_back(c->translator);
      c->translator = nullptr;
      c->stream_error = 3;
      return;
    }
    if (out.size()) RelayBody(c, out.view().data(), out.size());
    at += k;
    n -= k;
  }
}

void WorkerImpl::FinishTranslatedAnswer(ClientConn* c) {
  c->xlate_buffering = false;
  std::string_view answer = *c->xlate_answer;
  size_t cap = answer.size() * 2 + 4096;
  if (xlate_out_.size() < cap) xlate_out_.resize(cap);
  if (xlate_scratch_.size() < cap) xlate_scratch_.resize(cap);
  providers::OutBuf out(xlate_out_.data(), xlate_out_.size());
  int status = c->xlate_status;
  bool ok = status != -1;
  if (ok && !c->xlate && c->reshape_errors) {  // a provider's error, in OpenAI's shape
    status = c->reshape_errors->ReshapeError(status, answer, xlate_scratch_.data(), xlate_scratch_.size(), &out);
    ok = out.ok();
  } else if (ok && status >= 200 && status < 300) {
    ok = providers::OpenAiResponseFromAnthropic(answer, static_cast<int64_t>(shm::NowUnixMs() / 1000),
                                                xlate_scratch_.data(), xlate_scratch_.size(), &out)
             .ok() &&
         out.ok();
  } else if (ok) {
    status = providers::OpenAiErrorFromAnthropic(status, answer, xlate_scratch_.data(), xlate_scratch_.size(), &out);
    ok = out.ok();
  }
  if (!ok) {
    status = 502;
    out.Reset();
    out.Put(R"j({"error":{"message":"the upstream's answer is not its provider's shape, or too large",)j"
            R"j("type":"upstream_error","param":null,"code":"upstream_error"}})j");
  }
  WriteHead(c, status, {}, static_cast<int64_t>(out.size()), c->h->resp_headers.lines());
  c->status = status;
  c->commit_us = c->first_byte_us;
  RelayBody(c, out.view().data(), out.size());
  c->rw.EndBody(&c->h->out);
  c->response_done = true;
}

void WorkerImpl::ReleaseUpstream(ClientConn* c, bool keep) {
  UpstreamConn* u = c->up;
  if (!u) return;
  c->up = nullptr;
  c->up_deadline_ms = 0;
  int slot = u->slot;
  if (local_[slot].in_flight) --local_[slot].in_flight;
  if (c->first_byte_us == 0 && local_[slot].awaiting) --local_[slot].awaiting;  // never answered
  ++admit_credits_;
  stats_.BackendInFlight(slot, local_[slot].in_flight);
  if (!pool_.Give(u, keep && !draining_)) MaybeFree(u);
}

}  // namespace llmgw::dataplane
