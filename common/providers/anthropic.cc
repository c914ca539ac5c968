// Anthropic's Messages API: chat completions go to /v1/messages with the key in x-api-key
// and the anthropic-version header; the request and the answer (streamed or not) are
// translated by anthropic_translate.h. GET /v1/models is the token-free probe.
#include "common/providers/providers_internal.h"

namespace llmgw::providers {
namespace {

class Anthropic final : public Provider {
 public:
  ProviderKind kind() const override { return ProviderKind::kAnthropic; }
  void WritePath(const ProviderParams& p, std::string_view openai_path, OutBuf* out) const override {
    out->Put(p.base_path).Put(openai_path == "/v1/chat/completions" ? std::string_view("/v1/messages") : openai_path);
  }
  void WriteAuthHeaders(const ProviderParams& p, OutBuf* out) const override {
    if (!p.api_key.empty()) out->Put("x-api-key: ").Put(p.api_key).Put("\r\n");
    out->Put("anthropic-version: 2023-06-01\r\n");
  }
  bool Serves(std::string_view openai_path) const override { return openai_path == "/v1/chat/completions"; }
  bool translates() const override { return true; }
};

}  // namespace

const Provider& AnthropicProvider() {
  static const Anthropic p;
  return p;
}

}  // namespace llmgw::providers
