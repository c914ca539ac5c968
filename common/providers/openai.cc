// OpenAI's own API: the OpenAI paths, a Bearer key and, when configured, the
// OpenAI-Organization header. Probed on GET /v1/models (no tokens spent).
#include "common/providers/providers_internal.h"

namespace llmgw::providers {
namespace {

class OpenAi final : public Provider {
 public:
  ProviderKind kind() const override { return ProviderKind::kOpenAi; }
  bool continues_streams() const override { return false; }
  void WriteAuthHeaders(const ProviderParams& p, OutBuf* out) const override {
    Provider::WriteAuthHeaders(p, out);
    if (!p.organization.empty()) out->Put("OpenAI-Organization: ").Put(p.organization).Put("\r\n");
  }
};

}  // namespace

const Provider& OpenAiProvider() {
  static const OpenAi p;
  return p;
}

}  // namespace llmgw::providers
