// llmgw-bench's workload: the request mix (models, prompt lengths, shared prefixes with
// Zipf popularity, streaming ratio) built from the flags, and the SSE event classifier the
// runner uses to count tokens (see loadgen.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "bench/loadgen/loadgen.h"
#include "bench/loadgen/text.h"

namespace llmgw::bench {

namespace {

// Four bytes = one mock token; letters only, so JSON needs no escaping.
void AppendPiece(std::string* s, uint64_t v) {
  for (int i = 0; i < 3; ++i) {
    s->push_back(static_cast<char>('a' + v % 26));
    v /= 26;
  }
  s->push_back(' ');
}


}  // namespace

bool Workload::Init(std::string* err) {
  auto parts = Split(o_.prompt_dist, ':');
  bool ok = false;
  if (parts[0] == "fixed" && parts.size() == 2) {
    dist_ = Dist::kFixed;
    ok = ToDouble(parts[1], &a_) && a_ >= 1;
  } else if (parts[0] == "uniform" && parts.size() == 3) {
    dist_ = Dist::kUniform;
    ok = ToDouble(parts[1], &a_) && ToDouble(parts[2], &b_) && a_ >= 1 && b_ >= a_;
  } else if (parts[0] == "lognormal" && parts.size() == 3) {
    dist_ = Dist::kLognormal;
    ok = ToDouble(parts[1], &a_) && ToDouble(parts[2], &b_) && a_ >= 1 && b_ >= 0;
  }
  if (!ok) {
    *err = "--prompt-tokens: expected fixed:N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA, got '" + o_.prompt_dist + "'";
    return false;
  }
  if (o_.models.empty() || o_.models[0].empty()) {
    *err = "--model: at least one model name";
    return false;
  }
  if (o_.endpoint != "chat" && o_.endpoint != "completions") {
    *err = "--endpoint: chat or completions";
    return false;
  }
  if (o_.prefix_zipf < 0 || !std::isfinite(o_.prefix_zipf)) {
    *err = "--prefix-zipf: a number >= 0";
    return false;
  }
  zipf_cdf_.clear();
  if (o_.prefix_zipf > 0 && o_.prefix_groups > 0) {
    double total = 0;
    for (int g = 0; g < o_.prefix_groups; ++g) {
      total += 1.0 / std::pow(static_cast<double>(g + 1), o_.prefix_zipf);
      zipf_cdf_.push_back(total);
    }
    for (double& c : zipf_cdf_) c /= total;
    zipf_cdf_.back() = 1.0;
  }
  return true;
}

int Workload::SampleGroup() {
  if (zipf_cdf_.empty()) {  // uniform: the same draw as before --prefix-zipf existed
    return static_cast<int>(
        std::uniform_int_distribution<uint64_t>(0, static_cast<uint64_t>(o_.prefix_groups) - 1)(rng_));
  }
  double u = std::uniform_real_distribution<double>(0, 1)(rng_);
  auto it = std::upper_bound(zipf_cdf_.begin(), zipf_cdf_.end(), u);
  if (it == zipf_cdf_.end()) --it;
  return static_cast<int>(it - zipf_cdf_.begin());
}

int Workload::SamplePromptTokens() {
  double v = a_;
  if (dist_ == Dist::kUniform) v = std::uniform_real_distribution<double>(a_, b_ + 1)(rng_);
  if (dist_ == Dist::kLognormal) v = std::lognormal_distribution<double>(std::log(a_), b_)(rng_);
  int n = static_cast<int>(v);
  return n < 1 ? 1 : n;
}

void Workload::Next(BuiltRequest* out) {
  int tokens = SamplePromptTokens();
  std::string prompt;
  prompt.reserve(static_cast<size_t>(tokens + o_.prefix_tokens) * 4);
  out->group = -1;
  if (o_.prefix_groups > 0) {
    out->group = SampleGroup();
    uint64_t g = static_cast<uint64_t>(out->group);
    for (int i = 0; i < o_.prefix_tokens; ++i) AppendPiece(&prompt, g * 1000003ull + static_cast<uint64_t>(i));
  }
  for (int i = 0; i < tokens; ++i) AppendPiece(&prompt, rng_());
  out->prompt_tokens = tokens + (o_.prefix_groups > 0 ? o_.prefix_tokens : 0);
  out->stream = std::uniform_real_distribution<double>(0, 1)(rng_) < o_.stream_ratio;
  const std::string& model =
      o_.models[std::uniform_int_distribution<size_t>(0, o_.models.size() - 1)(rng_)];
  std::string body = "{\"model\":\"" + model + "\",";
  if (o_.endpoint == "chat") body += "\"messages\":[{\"role\":\"user\",\"content\":\"" + prompt + "\"}]";
  else body += "\"prompt\":\"" + prompt + "\"";
  if (o_.max_tokens > 0) body += ",\"max_tokens\":" + std::to_string(o_.max_tokens);
  if (o_.ignore_eos) body += ",\"ignore_eos\":true";
  if (out->stream) body += ",\"stream\":true,\"stream_options\":{\"include_usage\":true}";
  body += "}";
  out->raw = std::string("POST ") + (o_.endpoint == "chat" ? "/v1/chat/completions" : "/v1/completions") +
             " HTTP/1.1\r\nHost: llmgw-bench\r\nContent-Type: application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body;
}

SseEvent ClassifySseEvent(std::string_view ev) {
  bool token = false;
  size_t pos = 0;
  while (pos <= ev.size()) {
    size_t nl = ev.find('\n', pos);
    std::string_view line = ev.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.rfind("event:", 0) == 0) {
      std::string_view type = line.substr(6);
      while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
      if (type == "error") return SseEvent::kError;
    } else if (line.rfind("data:", 0) == 0) {
      std::string_view data = line.substr(5);
      while (!data.empty() && data.front() == ' ') data.remove_prefix(1);
      if (data.rfind("{\"error\"", 0) == 0) return SseEvent::kError;
      // A usage-only chunk (choices: []) and the terminator are not tokens.
      if (data != "[DONE]" && data.find("\"choices\":[]") == std::string_view::npos) token = true;
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return token ? SseEvent::kToken : SseEvent::kOther;
}

}  // namespace llmgw::bench
