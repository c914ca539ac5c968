// The provider registry, the shared OutBuf helpers and the openai_compatible provider
// (vLLM, SGLang, TGI, llama.cpp: the OpenAI paths under the URL's base, an optional Bearer
// key, scraped for engine metrics), which the hosted providers start from.
#include "common/providers/provider.h"

#include "common/providers/providers_internal.h"

namespace llmgw::providers {

namespace {
constexpr std::string_view kNames[] = {"openai_compatible", "openai", "azure", "anthropic", "gemini"};

class OpenAiCompatibleProvider final : public Provider {
 public:
  ProviderKind kind() const override { return ProviderKind::kOpenAiCompatible; }
  bool scraped() const override { return true; }
};
}  // namespace

std::string_view ProviderName(ProviderKind k) {
  auto i = static_cast<size_t>(k);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

bool ParseProvider(std::string_view s, ProviderKind* out) {
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (s == kNames[i]) {
      *out = static_cast<ProviderKind>(i);
      return true;
    }
  return false;
}

OutBuf& OutBuf::PutUint(uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  char out[24];
  for (size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return Put(std::string_view(out, n));
}

OutBuf& OutBuf::PutJsonEscaped(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;  // start of the pending run of bytes that need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    Put(s.substr(run, i - run));
    switch (c) {
      case '"': Put("\\\""); break;
      case '\\': Put("\\\\"); break;
      case '\n': Put("\\n"); break;
      case '\r': Put("\\r"); break;
      case '\t': Put("\\t"); break;
      default: {
        char e[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        Put(std::string_view(e, 6));
      }
    }
    run = i + 1;
  }
  return Put(s.substr(run));
}

void Provider::WritePath(const ProviderParams& p, std::string_view openai_path, OutBuf* out) const {
  out->Put(p.base_path).Put(openai_path);
}

void Provider::WriteAuthHeaders(const ProviderParams& p, OutBuf* out) const {
  if (!p.api_key.empty()) out->Put("Authorization: Bearer ").Put(p.api_key).Put("\r\n");
}

const Provider& ProviderFor(ProviderKind k) {
  static const OpenAiCompatibleProvider compatible;
  switch (k) {
    case ProviderKind::kOpenAi: return OpenAiProvider();
    case ProviderKind::kAzure: return AzureProvider();
    case ProviderKind::kAnthropic: return AnthropicProvider();
    case ProviderKind::kGemini: return GeminiProvider();
    default: return compatible;
  }
}

}  // namespace llmgw::providers
