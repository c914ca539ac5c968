// What differs between the APIs a backend may speak (DESIGN.md "Upstream TLS and hosted
// providers"): the request path, the credential headers, the token-free health check and,
// for Anthropic, the shape of requests and answers. One small interface, one file per
// provider; llmgw uses it per request (writing into caller-provided buffers: no heap
// allocation on the hot path), llmcd for its probes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace llmgw::providers {

enum class ProviderKind : uint8_t { kOpenAiCompatible = 0, kOpenAi, kAzure, kAnthropic, kGemini, kCount };
std::string_view ProviderName(ProviderKind k);  // as in the config: "openai_compatible", "azure", ...
bool ParseProvider(std::string_view s, ProviderKind* out);

// A bounded writer over a caller's buffer. Appends past the end set `overflow` and write
// nothing more, so a caller checks once at the end.
class OutBuf {
 public:
  OutBuf(char* p, size_t cap) : p_(p), cap_(cap) {}
  OutBuf& Put(std::string_view s) {
    if (overflow_ || s.size() > cap_ - len_) {
      overflow_ = true;
      return *this;
    }
    // An empty view may carry a null data(): memcpy's arguments must not be null even for 0.
    if (!s.empty()) std::memcpy(p_ + len_, s.data(), s.size());
    len_ += s.size();
    return *this;
  }
  OutBuf& Put(char c) { return Put(std::string_view(&c, 1)); }
  OutBuf& PutUint(uint64_t v);
  // s as the inside of a JSON string (quotes, backslashes and control characters escaped).
  OutBuf& PutJsonEscaped(std::string_view s);
  std::string_view view() const { return {p_, len_}; }
  size_t size() const { return len_; }
  bool ok() const { return !overflow_; }
  void Reset() { len_ = 0; overflow_ = false; }

 private:
  char* p_;
  size_t cap_;
  size_t len_ = 0;
  bool overflow_ = false;
};

// A backend's provider settings, as views into the config or the snapshot.
struct ProviderParams {
  std::string_view api_key;
  std::string_view organization;  // openai
  std::string_view deployment;    // azure
  std::string_view api_version;   // azure
  std::string_view base_path;     // the URL's path prefix ("" usually)
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual ProviderKind kind() const = 0;
  // The request target for an OpenAI path such as "/v1/chat/completions" (query included).
  virtual void WritePath(const ProviderParams& p, std::string_view openai_path, OutBuf* out) const;
  // The credential and version headers, each "Name: value\r\n" (nothing without a key).
  virtual void WriteAuthHeaders(const ProviderParams& p, OutBuf* out) const;
  // A GET that proves the backend is reachable and the key accepted, spending no tokens.
  virtual void WriteProbePath(const ProviderParams& p, OutBuf* out) const { WritePath(p, "/v1/models", out); }
  // Whether the provider serves this OpenAI path at all ("/v1/responses", ...): a backend
  // whose provider does not is skipped for the request, which fails over to the model's
  // other backends.
  virtual bool Serves(std::string_view openai_path) const {
    (void)openai_path;
    return true;
  }
  // The model name the body must carry on this path when the provider dictates it (Azure's
  // Responses API: the deployment); empty: the usual rules (upstream_model, alias rewrite).
  virtual std::string_view BodyModel(const ProviderParams& p, std::string_view openai_path) const {
    (void)p;
    (void)openai_path;
    return {};
  }
  // Whether a stream broken on another backend can be continued here (stream resume): the
  // continuation ends with the text so far as a final assistant message to be continued —
  // vLLM's and SGLang's continue_final_message, Anthropic's prefill. OpenAI, Azure and
  // Gemini have no such continuation (they refuse vLLM's fields, and would answer a new
  // turn): their backends are skipped for continuations.
  virtual bool continues_streams() const { return true; }
  // Whether the provider's error answers (status >= 400) are not OpenAI's shape and are
  // rewritten by ReshapeError before they reach the client (Gemini: a JSON array).
  virtual bool reshapes_errors() const { return false; }
  // `body`, the provider's error answer with `status`, in OpenAI's error shape into `out`
  // (scratch: the JSON parser's memory); returns the status for the client.
  virtual int ReshapeError(int status, std::string_view body, char* scratch, size_t scratch_len, OutBuf* out) const {
    (void)scratch;
    (void)scratch_len;
    out->Put(body);
    return status;
  }
  // True when requests and answers are not OpenAI's shape and go through a translator.
  virtual bool translates() const { return false; }
  // Whether llmcd scrapes the backend's /metrics (engines we run do; hosted APIs have none).
  virtual bool scraped() const { return false; }
};

// The one instance of each provider (stateless).
const Provider& ProviderFor(ProviderKind k);

}  // namespace llmgw::providers
