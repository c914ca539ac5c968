// Azure OpenAI: requests go to the deployment (/openai/deployments/<deployment>/<op>) with
// the api-version query parameter and the key in the api-key header; the model list
// (/openai/models) is the token-free probe. Bodies and answers are OpenAI's shape. The
// Responses API is served only by Azure's versionless v1 surface (/openai/v1/responses,
// no api-version) and names the deployment in the body's model field.
#include "common/providers/providers_internal.h"

namespace llmgw::providers {
namespace {

class Azure final : public Provider {
 public:
  ProviderKind kind() const override { return ProviderKind::kAzure; }
  bool continues_streams() const override { return false; }
  void WritePath(const ProviderParams& p, std::string_view openai_path, OutBuf* out) const override {
    std::string_view op = openai_path;
    if (op.substr(0, 3) == "/v1") op.remove_prefix(3);  // "/chat/completions"
    size_t q = op.find('?');
    std::string_view query = q == std::string_view::npos ? std::string_view() : op.substr(q + 1);
    op = op.substr(0, q);
    out->Put(p.base_path);
    if (op == "/responses") {
      out->Put("/openai/v1/responses");
      if (!query.empty()) out->Put('?').Put(query);
      return;
    }
    if (op == "/models" || op.substr(0, 8) == "/models/") out->Put("/openai").Put(op);
    else out->Put("/openai/deployments/").Put(p.deployment).Put(op);
    out->Put("?api-version=").Put(p.api_version);
    if (!query.empty()) out->Put('&').Put(query);
  }
  void WriteAuthHeaders(const ProviderParams& p, OutBuf* out) const override {
    if (!p.api_key.empty()) out->Put("api-key: ").Put(p.api_key).Put("\r\n");
  }
  std::string_view BodyModel(const ProviderParams& p, std::string_view openai_path) const override {
    return openai_path == "/v1/responses" ? p.deployment : std::string_view();
  }
};

}  // namespace

const Provider& AzureProvider() {
  static const Azure p;
  return p;
}

}  // namespace llmgw::providers
