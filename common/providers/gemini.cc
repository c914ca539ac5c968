// Google Gemini through its OpenAI-compatible endpoint: the OpenAI paths under
// /v1beta/openai (so /v1/chat/completions becomes /v1beta/openai/chat/completions) with
// the key as a Bearer token, as Google documents for that endpoint. Bodies and answers are
// OpenAI's shape; GET /v1beta/openai/models is the probe. That endpoint serves chat
// completions, embeddings and the model list, not the legacy completions nor the Responses
// API: those skip a gemini backend.
#include <rapidjson/document.h>

#include "common/providers/providers_internal.h"

namespace llmgw::providers {
namespace {

using Alloc = rapidjson::MemoryPoolAllocator<>;
using Doc = rapidjson::GenericDocument<rapidjson::UTF8<>, Alloc, Alloc>;
using Value = rapidjson::GenericValue<rapidjson::UTF8<>, Alloc>;

std::string_view StrOf(const Value& o, const char* k) {
  return o.IsObject() && o.HasMember(k) && o[k].IsString() ? std::string_view(o[k].GetString(), o[k].GetStringLength())
                                                           : std::string_view();
}

class Gemini final : public Provider {
 public:
  ProviderKind kind() const override { return ProviderKind::kGemini; }
  bool continues_streams() const override { return false; }
  void WritePath(const ProviderParams& p, std::string_view openai_path, OutBuf* out) const override {
    std::string_view op = openai_path;
    if (op.substr(0, 3) == "/v1") op.remove_prefix(3);
    out->Put(p.base_path).Put("/v1beta/openai").Put(op);
  }
  // Google's errors, which its OpenAI-compatible endpoint answers as a JSON array of
  // Google API errors — [{"error":{"code":400,"message":...,"status":"INVALID_ARGUMENT",
  // "details":[...]}}] — where OpenAI's SDKs look for an object's "error" (they would show
  // no message): rewritten as {"error":{"message","type","param","code"}}, the code being
  // Google's status name. An answer already in OpenAI's shape is kept as it is.
  bool reshapes_errors() const override { return true; }
  int ReshapeError(int status, std::string_view body, char* scratch, size_t scratch_len, OutBuf* out) const override {
    // Both pools on a 16-byte boundary (RapidJSON puts pointer-holding chunk headers there).
    size_t skip = (16 - reinterpret_cast<uintptr_t>(scratch) % 16) % 16;
    size_t len = scratch_len > skip ? scratch_len - skip : 0;
    size_t split = (len - len / 4) & ~size_t{15};
    Alloc values(scratch + skip, split), stack(scratch + skip + split, len - split);
    Doc doc(&values, len - split, &stack);
    doc.Parse(body.data(), body.size());
    const Value* e = nullptr;
    if (!doc.HasParseError()) {
      const Value* top = doc.IsArray() && !doc.Empty() ? &doc[0] : &doc;
      if (top->IsObject() && top->HasMember("error") && (*top)["error"].IsObject()) e = &(*top)["error"];
      if (e && top == &doc && !StrOf(*e, "type").empty()) {  // already OpenAI's shape
        out->Put(body);
        return status;
      }
    }
    std::string_view message = e ? StrOf(*e, "message") : std::string_view();
    std::string_view code = e ? StrOf(*e, "status") : std::string_view();
    if (message.empty()) message = "the gemini backend answered with an error";
    if (code.empty()) code = status >= 500 ? "INTERNAL" : "UNKNOWN";
    std::string_view type = status == 401 || code == "UNAUTHENTICATED" ? "authentication_error"
                            : status == 403                          ? "permission_error"
                            : status == 404                          ? "not_found_error"
                            : status == 429                          ? "rate_limit_error"
                            : status >= 500                          ? "server_error"
                                                                     : "invalid_request_error";
    out->Put("{\"error\":{\"message\":\"").PutJsonEscaped(message).Put("\",\"type\":\"").Put(type);
    out->Put("\",\"param\":null,\"code\":\"").PutJsonEscaped(code).Put("\"}}");
    return status;
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
