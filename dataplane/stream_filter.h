// StreamFilter: what sits between an upstream's SSE body and the client when llmgw must
// handle the stream event by event rather than byte by byte — stream resume is on, or
// the client streams without stream_options.include_usage (llmgw asks the backend for
// usage anyway, to count tokens, and strips the usage-only chunk). Only whole events
// reach the client, so an attempt that dies mid-event leaves nothing half-sent; runs of
// unchanged events go out as one slice of the read, only rewritten events are copied.
// It notices an error inside the 200 stream (an `event: error`, or a data object with an
// `error` member) and holds it back: the attempt logic decides between a continuation and
// ending the stream. When neither resume nor stripping is needed it is not used at all
// (the relay's byte path stays as it was).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/buffer_pool.h"
#include "dataplane/sse_chunk.h"
#include "dataplane/stream_resume.h"

namespace llmgw::dataplane {

class StreamFilter {
 public:
  struct Options {
    bool resume = true;             // keep what resume needs
    size_t resume_max_bytes = 262144;
    bool client_wants_usage = true; // false: drop the usage-only chunk
    int64_t requested_choices = 1;  // the request's `n`
    bool chat = true;               // chat.completion.chunk, else text_completion
  };
  // Largest event held back while it arrives (a chunk with big logprobs fits).
  static constexpr size_t kMaxEventBytes = 1 << 20;

  void Begin(BufferPool* pool, const Options& o);
  void Release();

  enum class Result : uint8_t {
    kOk,          // relayed what there was; go on
    kDone,        // [DONE] went out: the stream is complete
    kErrorEvent,  // an error event arrived (not relayed): the attempt failed
  };
  // One piece of the upstream body. emit(std::string_view) receives the bytes for the
  // client, in order; `scratch` (the caller's, reused) holds rewritten events.
  template <typename Emit>
  Result OnPiece(std::string_view piece, std::string* scratch, Emit&& emit);

  // The attempt failed (reset, close, stall, error event): a half-received event is
  // dropped and the next chunks are a continuation's.
  void AttemptFailed() {
    splitter_.Reset();
    state_.AttemptFailed();
    done_ = false;
    error_ = false;
  }
  // Why a continuation cannot carry on, or kOk.
  ResumeOutcome CanResume() const {
    if (!opts_.resume) return ResumeOutcome::kDisabled;
    if (passthrough_) return ResumeOutcome::kTooLarge;
    return state_.Check();
  }
  // The text is complete (choice 0 sent its finish_reason) but [DONE] did not come:
  // the end of the stream as the backend would have sent it (usage chunk when the
  // client asked for it, then [DONE]), appended to *out. No continuation is needed.
  void AppendEnd(std::string* out) const;

  const StreamResumeState& state() const { return state_; }
  const ChunkShapeMemo& memo() const { return memo_; }
  bool done() const { return done_; }
  bool passthrough() const { return passthrough_; }
  int64_t error_code() const { return error_code_; }  // of the last error event (0: none given)
  // Tokens of the whole stream as counted here (reported usage, else relayed chunks).
  uint64_t prompt_tokens() const { return state_.TotalPrompt(); }
  uint64_t completion_tokens() const { return state_.TotalCompletion(); }

 private:
  Options opts_;
  BufferPool* pool_ = nullptr;
  SseEventSplitter splitter_;
  ChunkShapeMemo memo_;  // most chunks differ from the one before only in their text
  StreamResumeState state_;
  bool passthrough_ = false;  // an event over kMaxEventBytes: bytes go on unsplit, no resume
  bool done_ = false;
  bool error_ = false;  // an error event came: nothing more of this attempt goes out
  int64_t error_code_ = 0;
};

template <typename Emit>
StreamFilter::Result StreamFilter::OnPiece(std::string_view piece, std::string* scratch, Emit&& emit) {
  // Whatever follows [DONE] or an error event in this attempt is not relayed.
  if (error_) return Result::kErrorEvent;
  if (done_) return Result::kDone;
  if (passthrough_) {
    if (!piece.empty()) emit(piece);
    return Result::kOk;
  }
  Result result = Result::kOk;
  // A run of events relayed unchanged, not yet emitted: [run_b, run_e) of `piece`.
  const char* run_b = nullptr;
  const char* run_e = nullptr;
  auto flush = [&] {
    if (run_b != run_e) emit(std::string_view(run_b, static_cast<size_t>(run_e - run_b)));
    run_b = run_e = nullptr;
  };
  const char* pbeg = piece.data();
  const char* pend = piece.data() + piece.size();
  auto as_is = [&](std::string_view ev) {
    // Contiguous with the run and inside `piece` (not the splitter's buffer): extend it.
    if (ev.data() >= pbeg && ev.data() + ev.size() <= pend) {
      if (run_e == ev.data()) {
        run_e += ev.size();
        return;
      }
      flush();
      run_b = ev.data();
      run_e = ev.data() + ev.size();
      return;
    }
    flush();
    emit(ev);
  };
  auto on_event = [&](std::string_view ev) {
    if (result != Result::kOk) return;  // nothing after [DONE] or an error goes out
    SseEventView v;
    SplitEvent(ev, &v);
    if (v.name == "error") {
      error_code_ = 0;
      error_ = true;
      result = Result::kErrorEvent;
      return;
    }
    if (v.data_lines == 0) return as_is(ev);  // a comment or keep-alive
    if (v.IsDone()) {
      done_ = true;
      result = Result::kDone;
      return as_is(ev);
    }
    ChunkInfo info;
    if (v.data_lines > 1 || !memo_.Parse(v.data, &info)) {
      state_.OnUnrecognised();
      return as_is(ev);
    }
    if (info.error) {
      error_code_ = info.error_code;
      error_ = true;
      result = Result::kErrorEvent;
      return;
    }
    state_.OnChunk(v.data, info);
    size_t before = scratch->size();
    switch (RewriteChunk(ev, v, info, state_, opts_.client_wants_usage, scratch)) {
      case ChunkAction::kAsIs:
        return as_is(ev);
      case ChunkAction::kDropped:
        return flush();
      case ChunkAction::kRewritten:
        flush();
        emit(std::string_view(*scratch).substr(before));
        scratch->resize(before);
        return;
    }
  };
  size_t consumed = 0;
  if (!splitter_.Feed(piece, on_event, &consumed)) {
    // An event too big to hold: from here on the bytes go through unsplit, and this
    // stream can no longer be resumed.
    flush();
    passthrough_ = true;
    if (result == Result::kOk) {
      std::string_view held = splitter_.held();
      if (!held.empty()) emit(held);
      if (consumed < piece.size()) emit(piece.substr(consumed));
    }
    splitter_.Reset();
    return result;
  }
  flush();
  return result;
}

}  // namespace llmgw::dataplane
