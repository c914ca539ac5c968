// llmgw-mock's OpenAI endpoints: /v1/chat/completions and /v1/completions (request checks,
// the fast path, engine submission, SSE token emission, the non-streaming answer) and
// /v1/embeddings, plus the die_after count of finished inference requests.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include <rapidjson/error/en.h>

#include "bench/mock/mock_server_internal.h"
#include "common/log.h"

namespace llmgw::mock::internal {

namespace {

// Words the mock "generates"; each token is one word with a leading space.
const char* const kVocab[] = {"the", "model", "gateway", "token", "stream", "batch", "cache",
                              "prefix", "latency", "request", "route", "backend", "queue",
                              "server", "answer", "simple", "fast", "mock", "data", "plane"};
constexpr uint64_t kVocabSize = sizeof(kVocab) / sizeof(kVocab[0]);

// Text of the prompt as the model would see it: the chat messages' roles and contents, or
// the completion prompt (strings, or token ids written as numbers).
bool ExtractPrompt(const rapidjson::GenericValue<rapidjson::UTF8<>, JsonAlloc>& d, Api api, std::string* prompt,
                   std::string* err, std::string* param) {
  if (api == Api::kChat) {
    if (!d.HasMember("messages") || !d["messages"].IsArray() || d["messages"].Empty()) {
      *err = "messages must be a non-empty array";
      *param = "messages";
      return false;
    }
    for (const auto& m : d["messages"].GetArray()) {
      if (!m.IsObject() || !m.HasMember("role") || !m["role"].IsString()) {
        *err = "each message needs a string role";
        *param = "messages";
        return false;
      }
      prompt->append("<|").append(m["role"].GetString()).append("|>");
      if (!m.HasMember("content")) continue;
      const auto& ct = m["content"];
      if (ct.IsString()) {
        prompt->append(ct.GetString(), ct.GetStringLength());
      } else if (ct.IsArray()) {
        for (const auto& part : ct.GetArray())
          if (part.IsObject() && part.HasMember("text") && part["text"].IsString())
            prompt->append(part["text"].GetString(), part["text"].GetStringLength());
      } else if (!ct.IsNull()) {
        *err = "message content must be a string or an array of parts";
        *param = "messages";
        return false;
      }
    }
    return true;
  }
  if (!d.HasMember("prompt")) {
    *err = "prompt is required";
    *param = "prompt";
    return false;
  }
  const auto& p = d["prompt"];
  if (p.IsString()) {
    prompt->append(p.GetString(), p.GetStringLength());
    return true;
  }
  if (p.IsArray() && !p.Empty()) {
    for (const auto& e : p.GetArray()) {
      if (e.IsString()) {
        prompt->append(e.GetString(), e.GetStringLength());
      } else if (e.IsInt()) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%4d", e.GetInt() % 10000);  // one id = one token = 4 bytes
        prompt->append(buf, 4);
      } else {
        *err = "prompt must be a string, an array of strings or an array of token ids";
        *param = "prompt";
        return false;
      }
    }
    return true;
  }
  *err = "prompt must be a string, an array of strings or an array of token ids";
  *param = "prompt";
  return false;
}

}  // namespace

bool Server::HandleInference(Conn* c, Api api) {
  char value_buf[16384], parse_buf[4096];
  JsonAlloc value_alloc(value_buf, sizeof value_buf), parse_alloc(parse_buf, sizeof parse_buf);
  JsonDoc d(&value_alloc, sizeof parse_buf, &parse_alloc);
  d.Parse(c->body.data(), c->body.size());
  if (d.HasParseError()) {
    char msg[128];
    std::snprintf(msg, sizeof msg, "invalid JSON body at offset %zu: %s", d.GetErrorOffset(),
                  rapidjson::GetParseError_En(d.GetParseError()));
    SendError(c, 400, msg);
    return true;
  }
  if (!d.IsObject()) {
    SendError(c, 400, "request body must be a JSON object");
    return true;
  }
  if (d.HasMember("model")) {
    if (!d["model"].IsString()) {
      SendError(c, 400, "model must be a string", "model");
      return true;
    }
    std::string_view m(d["model"].GetString(), d["model"].GetStringLength());
    if (m != opts_.model) {
      SendError(c, 404, "The model `" + std::string(m) + "` does not exist.", "model");
      return true;
    }
  } else if (api == Api::kAnthropic) {
    SendError(c, 400, "model: Field required", "model");
    return true;
  }
  if (!ProviderAcceptsFields(c, d, api)) return true;
  Req r;
  r.api = api;
  std::string err, param;
  std::string& prompt = prompt_scratch_;
  prompt.clear();
  if (api == Api::kAnthropic ? !ExtractAnthropicPrompt(d, &prompt, &err, &param)
                             : !ExtractPrompt(d, api, &prompt, &err, &param)) {
    SendError(c, 400, err, param);
    return true;
  }
  // continue_final_message (vLLM's, chat only): the final assistant message is continued,
  // not answered; its words count as already generated toward --output-tokens.
  bool continue_final = false;
  int already = 0;
  if (api == Api::kChat && d.HasMember("continue_final_message")) {
    if (!d["continue_final_message"].IsBool()) {
      SendError(c, 400, "continue_final_message must be a boolean", "continue_final_message");
      return true;
    }
    continue_final = d["continue_final_message"].GetBool();
  }
  if (continue_final) {
    const auto& msgs = d["messages"];
    const auto& last = msgs[msgs.Size() - 1];
    bool add_gen = !d.HasMember("add_generation_prompt") ||
                   (d["add_generation_prompt"].IsBool() && d["add_generation_prompt"].GetBool());
    if (add_gen) {  // vLLM refuses the combination
      SendError(c, 400, "continue_final_message and add_generation_prompt cannot both be true",
                "add_generation_prompt");
      return true;
    }
    if (std::string_view(last["role"].GetString()) != "assistant") {
      SendError(c, 400, "continue_final_message needs a final assistant message", "messages");
      return true;
    }
    if (last.HasMember("content") && last["content"].IsString()) {
      std::string_view t(last["content"].GetString(), last["content"].GetStringLength());
      for (size_t i = 0; i < t.size(); ++i)
        if (t[i] != ' ' && (i == 0 || t[i - 1] == ' ')) ++already;
    }
  }
  if (d.HasMember("stream")) {
    if (!d["stream"].IsBool()) {
      SendError(c, 400, "stream must be a boolean", "stream");
      return true;
    }
    r.stream = d["stream"].GetBool();
  }
  if (d.HasMember("stream_options") && d["stream_options"].IsObject() &&
      d["stream_options"].HasMember("include_usage") && d["stream_options"]["include_usage"].IsBool())
    r.include_usage = d["stream_options"]["include_usage"].GetBool();
  int64_t max_tokens = -1;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (d.HasMember(key) && !d[key].IsNull()) {
      if (!d[key].IsInt64() || d[key].GetInt64() < 1) {
        SendError(c, 400, std::string(key) + " must be a positive integer", key);
        return true;
      }
      max_tokens = d[key].GetInt64();
    }
  }
  if (api == Api::kAnthropic && max_tokens < 0) {
    SendError(c, 400, "max_tokens: Field required", "max_tokens");
    return true;
  }
  bool ignore_eos = d.HasMember("ignore_eos") && d["ignore_eos"].IsBool() && d["ignore_eos"].GetBool();
  r.prompt_tokens = PromptTokens(prompt);
  if (r.prompt_tokens > opts_.max_model_len) {
    SendError(c, 400, "prompt is longer than the model's maximum context length", "messages");
    return true;
  }
  // The model "stops" (EOS) after --output-tokens unless max_tokens cuts it short, or
  // ignore_eos (vLLM's extension) asks for exactly max_tokens.
  int64_t n = std::max(1, opts_.output_tokens - already);
  if (max_tokens > 0 && (ignore_eos || max_tokens < n)) {
    n = max_tokens;
    r.length_limited = true;
  }
  r.output_tokens = static_cast<int>(std::min<int64_t>(n, opts_.max_model_len));

  r.ctx_hash = Fnv1a(kFnvBasis, prompt);
  if (api == Api::kChat && !continue_final) r.ctx_hash = Fnv1a(r.ctx_hash, "<|assistant|>");

  ++requests_total_;
  if (faults_.error_rate > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < faults_.error_rate) {
    ++errors_injected_;
    ++metrics_.errors_injected;
    SendError(c, faults_.error_status, "injected fault");
    CountRequestDone();
    return true;
  }
  r.id = next_req_id_++;
  r.conn = c;
  r.arrival_us = NowUs();
  r.created = time(nullptr);
  const bool delayed = faults_.hang_first_byte || faults_.slow_first_byte_ms > 0;
  if (immediate_ && !delayed) {
    // Fast path for gateway benchmarks: answered before returning, so the request never
    // needs to outlive this call (no map entry, no copy of the prompt) unless a stall
    // fault keeps it (then it owns active_req).
    StartRequest(&r, prompt);
    return !c->dead && c->active_req == 0;
  }
  c->active_req = r.id;
  Req& stored = reqs_.emplace(r.id, std::move(r)).first->second;
  if (faults_.hang_first_byte) return false;  // stays until the client gives up
  if (faults_.slow_first_byte_ms > 0) {
    stored.prompt = prompt;
    delayed_.emplace(stored.arrival_us + int64_t{faults_.slow_first_byte_ms} * 1000, stored.id);
    RearmTimer();
    return false;
  }
  uint64_t id = stored.id;
  StartRequest(&stored, prompt);
  return reqs_.find(id) == reqs_.end() && !c->dead && c->active_req == 0;
}

void Server::StartRequest(Req* r, std::string_view prompt) {
  metrics_.prompt_tokens_total += static_cast<uint64_t>(r->prompt_tokens);
  if (immediate_) {
    engine_.AccountPrompt(prompt);
    EmitTokens(r, 0, r->output_tokens, true, NowUs());
    return;
  }
  engine_.Submit(r->id, prompt, r->output_tokens, NowUs());
  RearmTimer();
}

void Server::AppendWord(std::string* out, Req* r) {
  const char* w = kVocab[SplitMix(opts_.seed ^ r->ctx_hash) % kVocabSize];
  out->push_back(' ');
  out->append(w);
  r->ctx_hash = Fnv1a(Fnv1a(r->ctx_hash, " "), w);
}

void Server::AppendUsage(std::string* out, const Req* r) const {
  out->append("\"usage\":{\"prompt_tokens\":");
  AppendInt(out, r->prompt_tokens);
  out->append(",\"total_tokens\":");
  AppendInt(out, r->prompt_tokens + r->output_tokens);
  out->append(",\"completion_tokens\":");
  AppendInt(out, r->output_tokens);
  out->append(",\"prompt_tokens_details\":null}");
}

void Server::AppendChunkEvent(std::string* out, Req* r, int index, bool finished) {
  // One SSE event inside one HTTP chunk; the chunk size is patched in once the event is built.
  size_t size_at = out->size();
  out->append("00000000\r\n");
  size_t start = out->size();
  const bool chat = r->api == Api::kChat;
  out->append(chat ? "data: {\"id\":\"chatcmpl-" : "data: {\"id\":\"cmpl-");
  AppendInt(out, static_cast<int64_t>(r->id));
  out->append(chat ? "\",\"object\":\"chat.completion.chunk\",\"created\":" : "\",\"object\":\"text_completion\",\"created\":");
  AppendInt(out, r->created);
  out->append(",\"model\":");
  AppendJsonString(out, opts_.model);
  if (index < 0) {  // the usage-only chunk of stream_options.include_usage
    out->append(",\"choices\":[],");
    AppendUsage(out, r);
    out->append("}\n\n");
  } else {
    out->append(chat ? ",\"choices\":[{\"index\":0,\"delta\":{" : ",\"choices\":[{\"index\":0,\"text\":\"");
    if (chat) {
      if (index == 0) out->append("\"role\":\"assistant\",");
      out->append("\"content\":\"");
    }
    AppendWord(out, r);
    out->append(chat ? "\"},\"logprobs\":null,\"finish_reason\":" : "\",\"logprobs\":null,\"finish_reason\":");
    out->append(!finished ? "null" : (r->length_limited ? "\"length\"" : "\"stop\""));
    out->append("}]}\n\n");
  }
  size_t len = out->size() - start;
  for (int i = 7; i >= 0; --i, len >>= 4) (*out)[size_at + static_cast<size_t>(i)] = "0123456789abcdef"[len & 15];
  out->append("\r\n");
}

void Server::EmitTokens(Req* r, int first_index, int count, bool finished, int64_t now) {
  Conn* c = r->conn;
  if (r->stalled) return;  // the stall fault: nothing more leaves
  if (first_index == 0) {
    metrics_.ttft_seconds.Observe(static_cast<double>(now - r->arrival_us) / 1e6);
  } else {
    metrics_.inter_token_seconds.Observe(static_cast<double>(now - r->last_token_us) / 1e6);
  }
  for (int i = 1; i < count; ++i) metrics_.inter_token_seconds.Observe(0);
  r->last_token_us = now;
  metrics_.generation_tokens_total += static_cast<uint64_t>(count);
  // The earliest mid-stream fault that applies; the close fault also cuts non-streaming
  // answers, the others are about streams.
  enum class Cut { kNone, kClose, kReset, kStall, kErrorEvent, kGarbage } kind = Cut::kNone;
  int at = 0;
  auto consider = [&](int after, Cut k, bool stream_only) {
    if (after <= 0 || (stream_only && !r->stream)) return;
    if (kind == Cut::kNone || after < at) {
      kind = k;
      at = after;
    }
  };
  consider(faults_.close_mid_stream_after, Cut::kClose, false);
  consider(faults_.reset_mid_stream_after, Cut::kReset, true);
  consider(faults_.stall_mid_stream_after, Cut::kStall, true);
  consider(faults_.error_event_mid_stream_after, Cut::kErrorEvent, true);
  consider(faults_.garbage_event_mid_stream_after, Cut::kGarbage, true);
  bool cut = kind != Cut::kNone && first_index + count >= at && !(finished && first_index + count <= at);
  if (cut) count = std::max(0, std::min(count, at - first_index));

  std::string& s = scratch_;
  s.clear();
  if (r->stream) {
    if (first_index == 0)
      s.append("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
               "transfer-encoding: chunked\r\n");
    if (first_index == 0 && !c->keep_alive) s.append("connection: close\r\n");
    if (first_index == 0) s.append("\r\n");
    if (r->api == Api::kAnthropic) {
      AppendAnthropicEvents(&s, r, first_index, count, finished && !cut);
      if (finished && !cut) s.append("0\r\n\r\n");
    } else {
      for (int i = 0; i < count; ++i) AppendChunkEvent(&s, r, first_index + i, finished && !cut && i == count - 1);
    }
    if (finished && !cut && r->api != Api::kAnthropic) {
      if (r->include_usage) AppendChunkEvent(&s, r, -1, true);
      s.append("e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
    }
    if (cut && kind == Cut::kErrorEvent) {
      // What vLLM sends when generation fails inside a stream: an error object as a data
      // event, then [DONE]; the HTTP answer itself ends cleanly.
      static constexpr std::string_view kEvent =
          "data: {\"error\":{\"object\":\"error\",\"message\":\"injected mid-stream error\","
          "\"type\":\"InternalServerError\",\"param\":null,\"code\":500}}\n\n";
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", kEvent.size());
      s.append(size).append(kEvent).append("\r\n");
      s.append("e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
    }
    if (cut && kind == Cut::kGarbage) {
      // An event in the flavour's framing whose data is cut JSON, then a clean end.
      const std::string_view ev = r->api == Api::kAnthropic
                                      ? std::string_view("event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                                                         "\"index\":0,\"delta\":{\"type\":\"text_del\n\n")
                                      : std::string_view("data: {\"id\":\"chatcmpl-cut\",\"choices\":[{\"delta\n\n");
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", ev.size());
      s.append(size).append(ev).append("\r\n0\r\n\r\n");
    }
    Send(c, s);
  }
  if (c->dead) return;  // Send failed: CloseConn cancelled the request and freed *r
  r->sent = first_index + count;
  if (!cut) {
    if (finished) CompleteRequest(r);
    return;
  }
  uint64_t id = r->id;
  engine_.Cancel(id, NowUs());
  RearmTimer();
  switch (kind) {
    case Cut::kErrorEvent:
      ++error_events_mid_stream_;
      EndExchange(r);
      return;
    case Cut::kGarbage:
      ++garbage_events_mid_stream_;
      EndExchange(r);
      return;
    case Cut::kStall:
      // Sends nothing more and keeps the connection (its parser paused) until the client
      // gives up; a fast-path request is kept in reqs_ for that.
      ++stalled_mid_stream_;
      r->stalled = true;
      if (c->active_req != id) {
        reqs_.emplace(id, *r);
        c->active_req = id;
      }
      CountRequestDone();
      return;
    case Cut::kReset: {
      ++reset_mid_stream_;
      linger lg{1, 0};  // close() then sends RST instead of FIN
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      break;
    }
    default:
      ++closed_mid_stream_;
      break;
  }
  c->active_req = 0;
  reqs_.erase(id);
  CountRequestDone();
  CloseConn(c);
}

void Server::CompleteRequest(Req* r) {
  Conn* c = r->conn;
  if (!r->stream && r->api == Api::kAnthropic) {
    std::string& body = body_scratch_;
    body.clear();
    AppendAnthropicMessage(&body, r);
    SendSimple(c, 200, "application/json", body);
  } else if (!r->stream) {
    std::string& body = body_scratch_;
    body.clear();
    const bool chat = r->api == Api::kChat;
    body.append(chat ? "{\"id\":\"chatcmpl-" : "{\"id\":\"cmpl-");
    AppendInt(&body, static_cast<int64_t>(r->id));
    body.append(chat ? "\",\"object\":\"chat.completion\",\"created\":" : "\",\"object\":\"text_completion\",\"created\":");
    AppendInt(&body, r->created);
    body.append(",\"model\":");
    AppendJsonString(&body, opts_.model);
    body.append(chat ? ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\""
                     : ",\"choices\":[{\"index\":0,\"text\":\"");
    for (int i = 0; i < r->output_tokens; ++i) AppendWord(&body, r);
    body.append(chat ? "\"},\"logprobs\":null,\"finish_reason\":" : "\",\"logprobs\":null,\"finish_reason\":");
    body.append(r->length_limited ? "\"length\"" : "\"stop\"");
    body.append("}],");
    AppendUsage(&body, r);
    body.append("}");
    SendSimple(c, 200, "application/json", body);
  }
  metrics_.e2e_seconds.Observe(static_cast<double>(NowUs() - r->arrival_us) / 1e6);
  metrics_.queue_seconds.Observe(0);
  (r->length_limited ? metrics_.success_length : metrics_.success_stop)++;
  ++completed_total_;
  EndExchange(r);
}

// A request's answer is out (completely, or ended by a fault that keeps the connection):
// forget it and go on with the connection's next request.
void Server::EndExchange(Req* r) {
  Conn* c = r->conn;
  const uint64_t id = r->id;
  // Only requests that outlived their Dispatch call are in reqs_ and own active_req.
  const bool was_async = c->active_req == id;
  reqs_.erase(id);
  if (c->dead) return;
  c->active_req = 0;
  CountRequestDone();
  if (!was_async) return;  // Dispatch's caller goes on parsing
  FinishExchange(c);
  if (c->dead || c->close_after_flush) return;
  if (!c->pending_in.empty()) {
    std::string in = std::move(c->pending_in);
    c->pending_in.clear();
    ProcessBytes(c, in.data(), in.size());
  }
}

void Server::CountRequestDone() {
  if (die_at_ > 0 && static_cast<int64_t>(DoneCount()) >= die_at_) {
    Log(LogLevel::kWarn, "die_after reached; exiting", {{"requests", static_cast<uint64_t>(requests_total_)}});
    _exit(3);
  }
}

bool Server::HandleEmbeddings(Conn* c) {
  JsonDoc d;
  d.Parse(c->body.data(), c->body.size());
  if (d.HasParseError() || !d.IsObject()) {
    SendError(c, 400, "request body must be a JSON object");
    return true;
  }
  if (d.HasMember("model") && (!d["model"].IsString() || opts_.model != d["model"].GetString())) {
    SendError(c, 404, "The model does not exist.", "model");
    return true;
  }
  if (!d.HasMember("input") || !(d["input"].IsString() || d["input"].IsArray())) {
    SendError(c, 400, "input must be a string or an array", "input");
    return true;
  }
  std::vector<std::string> inputs;
  if (d["input"].IsString()) {
    inputs.emplace_back(d["input"].GetString(), d["input"].GetStringLength());
  } else {
    for (const auto& e : d["input"].GetArray()) {
      if (e.IsString()) inputs.emplace_back(e.GetString(), e.GetStringLength());
      else if (e.IsInt()) inputs.emplace_back(std::to_string(e.GetInt()));
      else {
        SendError(c, 400, "input array must hold strings or token ids", "input");
        return true;
      }
    }
  }
  ++requests_total_;
  std::string b;
  b.append("{\"object\":\"list\",\"data\":[");
  int tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    tokens += PromptTokens(inputs[i]);
    if (i) b.push_back(',');
    b.append("{\"object\":\"embedding\",\"index\":");
    AppendInt(&b, static_cast<int64_t>(i));
    b.append(",\"embedding\":[");
    uint64_t h = 1469598103934665603ull;
    for (char ch : inputs[i]) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    std::vector<double> v(static_cast<size_t>(opts_.embedding_dim));
    double norm = 0;
    for (size_t k = 0; k < v.size(); ++k) {
      v[k] = static_cast<double>(SplitMix(h + k) % 20001) / 10000.0 - 1.0;
      norm += v[k] * v[k];
    }
    norm = norm > 0 ? std::sqrt(norm) : 1;
    char num[32];
    for (size_t k = 0; k < v.size(); ++k) {
      std::snprintf(num, sizeof num, "%s%.6f", k ? "," : "", v[k] / norm);
      b.append(num);
    }
    b.append("]}");
  }
  b.append("],\"model\":");
  AppendJsonString(&b, opts_.model);
  b.append(",\"usage\":{\"prompt_tokens\":");
  AppendInt(&b, tokens);
  b.append(",\"total_tokens\":");
  AppendInt(&b, tokens);
  b.append("}}");
  metrics_.prompt_tokens_total += static_cast<uint64_t>(tokens);
  SendSimple(c, 200, "application/json", b);
  ++completed_total_;
  CountRequestDone();
  return true;
}

}  // namespace llmgw::mock::internal
