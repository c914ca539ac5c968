// Google Gemini through its OpenAI-compatible endpoint: the OpenAI paths under
// /v1beta/openai (so /v1/chat/completions becomes /v1beta/openai/chat/completions) with
// the key as a Bearer token, as Google documents for that endpoint. Bodies and answers are
// OpenAI's shape; GET /v1beta/openai/models is the probe. That endpoint serves chat
// completions, embeddings and the model list, not the legacy completions nor the Responses
// API: those skip a gemini backend.
#include "common/providers/providers_internal.h"

namespace llmgw::providers {
namespace {

class Gemini final : public Provider {
 public:
  ProviderKind kind() const override { return ProviderKind::kGemini; }
  bool continues_streams() const override { return false; }
  void WritePath(const ProviderParams& p, std::string_view openai_path, OutBuf* out) const override {
    std::string_view op = openai_path;
    if (op.substr(0, 3) == "/v1") op.remove_prefix(3);
    out->Put(p.base_path).Put("/v1beta/openai").Put(op);
  }
  bool Serves(std::string_view openai_path) const override {
    return openai_path != "/v1/responses" && openai_path != "/v1/completions";
  }
};

}  // namespace

const Provider& GeminiProvider() {
  static const Gemini p;
  return p;
}

}  // namespace llmgw::providers
