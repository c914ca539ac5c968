// llmgw-mock's provider flavours (--provider): each checks what the real API checks first
// — its key header, its paths, Anthropic's request shape — and refuses like it does, in its
// error shape, so tests show that llmgw sends each provider what it expects. Accepted
// requests run through the same engine as vLLM-style ones; answers in Anthropic's shape
// (message / SSE events) are built here, the others are OpenAI's shape already.
#include <algorithm>
#include <cstring>

#include "bench/mock/mock_server_internal.h"

namespace llmgw::mock::internal {

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

std::string_view QueryParam(std::string_view url, std::string_view name) {
  size_t q = url.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = url.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view kv = rest.substr(0, amp);
    if (kv.size() > name.size() && kv.substr(0, name.size()) == name && kv[name.size()] == '=')
      return kv.substr(name.size() + 1);
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

const char* AnthropicErrorType(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

void AppendSse(std::string* out, std::string_view event, std::string_view data) {
  // One SSE event inside one HTTP chunk.
  std::string ev;
  ev.append("event: ").append(event).append("\ndata: ").append(data).append("\n\n");
  char size[16];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", ev.size());
  out->append(size, static_cast<size_t>(n)).append(ev).append("\r\n");
}

}  // namespace

void Conn::KeepHeader() {
  if (IEquals(hdr_name, "authorization")) h_authorization = hdr_value;
  else if (IEquals(hdr_name, "api-key")) h_api_key = hdr_value;
  else if (IEquals(hdr_name, "x-api-key")) h_x_api_key = hdr_value;
  else if (IEquals(hdr_name, "anthropic-version")) h_anthropic_version = hdr_value;
  else if (IEquals(hdr_name, "openai-organization")) h_openai_organization = hdr_value;
  hdr_name.clear();
  hdr_value.clear();
}

void Server::SendProviderError(Conn* c, int status, std::string_view type, std::string_view message) {
  std::string body;
  if (opts_.provider == MockProvider::kAnthropic) {
    body.append("{\"type\":\"error\",\"error\":{\"type\":\"").append(type).append("\",\"message\":");
    AppendJsonString(&body, message);
    body.append("}}");
  } else if (opts_.provider == MockProvider::kGemini) {
    // Google's API error, in the JSON array its OpenAI-compatible endpoint answers with.
    body.append("[{\"error\":{\"code\":");
    AppendInt(&body, status);
    body.append(",\"message\":");
    AppendJsonString(&body, message);
    body.append(",\"status\":\"").append(type).append("\"}}]");
  } else if (opts_.provider == MockProvider::kAzure) {
    body.append("{\"error\":{\"code\":\"").append(type).append("\",\"message\":");
    AppendJsonString(&body, message);
    body.append("}}");
  } else {
    body.append("{\"error\":{\"message\":");
    AppendJsonString(&body, message);
    body.append(",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"").append(type).append("\"}}");
  }
  SendSimple(c, status, "application/json", body, status == 429 ? "retry-after: 1\r\n" : "");
}

bool Server::ProviderRoute(Conn* c, std::string_view path, std::string* routed) {
  // The mock's own admin paths stay reachable in every flavour (tests drive faults).
  if (path == "/health" || path == "/metrics" || path.substr(0, 6) == "/mock/") {
    *routed = std::string(path);
    return true;
  }
  auto refuse_key = [&](std::string_view type, std::string_view msg) {
    ++provider_auth_failures_;
    SendProviderError(c, 401, type, msg);
    return false;
  };
  const std::string bearer = "Bearer " + opts_.api_key;
  switch (opts_.provider) {
    case MockProvider::kNone: break;
    case MockProvider::kOpenAi:
      if (c->h_authorization != bearer) return refuse_key("invalid_api_key", "Incorrect API key provided.");
      // A key used for an organization it does not name (or none, when --organization
      // says requests must name one) is refused as OpenAI refuses a mismatched one.
      if (!opts_.organization.empty() && c->h_openai_organization != opts_.organization)
        return refuse_key("mismatched_organization",
                          "OpenAI-Organization header should match organization for API key");
      if (path.substr(0, 4) != "/v1/") break;
      *routed = std::string(path);
      return true;
    case MockProvider::kGemini:
      if (c->h_authorization != bearer) return refuse_key("UNAUTHENTICATED", "API key not valid. Please pass a valid API key.");
      if (path.substr(0, 15) != "/v1beta/openai/") break;
      // Gemini's OpenAI-compatible endpoint serves chat completions, embeddings and the
      // model list, not the legacy completions nor the Responses API.
      if (path == "/v1beta/openai/responses" || path == "/v1beta/openai/completions") break;
      *routed = "/v1/" + std::string(path.substr(15));
      return true;
    case MockProvider::kAzure: {
      if (c->h_api_key != opts_.api_key)
        return refuse_key("401", "Access denied due to invalid subscription key or wrong API endpoint.");
      // The Responses API is served by the versionless v1 surface (the deployment is the
      // body's model, checked in HandleResponses), not under a deployment's URL.
      if (path == "/openai/v1/responses") {
        *routed = "/v1/responses";
        return true;
      }
      if (QueryParam(c->url, "api-version").empty()) {
        SendProviderError(c, 404, "404", "Resource not found");  // what Azure answers without it
        return false;
      }
      if (path == "/openai/models") {
        *routed = "/v1/models";
        return true;
      }
      std::string prefix = "/openai/deployments/" + opts_.deployment + "/";
      if (path.substr(0, 20) == "/openai/deployments/" && path.substr(0, prefix.size()) != prefix) {
        SendProviderError(c, 404, "DeploymentNotFound",
                          "The API deployment for this resource does not exist.");
        return false;
      }
      if (path.substr(0, prefix.size()) != prefix) break;
      *routed = "/v1/" + std::string(path.substr(prefix.size()));
      return true;
    }
    case MockProvider::kAnthropic:
      if (c->h_x_api_key != opts_.api_key) return refuse_key("authentication_error", "invalid x-api-key");
      if (c->h_anthropic_version.empty()) {
        SendProviderError(c, 400, "invalid_request_error", "anthropic-version: header is required");
        return false;
      }
      if (path != "/v1/messages" && path != "/v1/models") break;
      *routed = std::string(path);
      return true;
  }
  SendProviderError(c, 404,
                    opts_.provider == MockProvider::kAnthropic ? "not_found_error"
                    : opts_.provider == MockProvider::kGemini  ? "NOT_FOUND"
                                                               : "404",
                    "not found: " + std::string(path));
  return false;
}

bool Server::ProviderAcceptsFields(Conn* c, const JsonValue& body, Api api) {
  // The request fields each API documents; anything else (vLLM's continue_final_message,
  // ignore_eos, top_k, ...) is refused the way the real API refuses it.
  static constexpr std::string_view kChat[] = {
      "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
      "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model", "n",
      "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "reasoning_effort",
      "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
      "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
      "web_search_options"};
  static constexpr std::string_view kCompletion[] = {
      "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs", "max_tokens", "model", "n",
      "presence_penalty", "prompt", "seed", "stop", "stream", "stream_options", "suffix", "temperature",
      "top_p", "user"};
  static constexpr std::string_view kGeminiChat[] = {
      "audio", "extra_body", "frequency_penalty", "logprobs", "max_completion_tokens", "max_tokens",
      "messages", "modalities", "model", "n", "presence_penalty", "reasoning_effort", "response_format",
      "seed", "stop", "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs",
      "top_p", "user"};
  if (opts_.provider == MockProvider::kNone || opts_.provider == MockProvider::kAnthropic) return true;
  const std::string_view* begin = kChat;
  const std::string_view* end = kChat + std::size(kChat);
  if (opts_.provider == MockProvider::kGemini) {
    begin = kGeminiChat;
    end = kGeminiChat + std::size(kGeminiChat);
  } else if (api == Api::kCompletion) {
    begin = kCompletion;
    end = kCompletion + std::size(kCompletion);
  }
  for (auto m = body.MemberBegin(); m != body.MemberEnd(); ++m) {
    std::string_view name(m->name.GetString(), m->name.GetStringLength());
    bool known = std::find(begin, end, name) != end;
    if (!known && opts_.provider == MockProvider::kAzure && name == "data_sources") known = true;  // "On Your Data"
    if (known) continue;
    std::string msg;
    if (opts_.provider == MockProvider::kGemini) {
      msg.append("Invalid JSON payload received. Unknown name \"").append(name).append("\": Cannot find field.");
      SendProviderError(c, 400, "INVALID_ARGUMENT", msg);  // Google's status name
    } else {
      msg.append("Unrecognized request argument supplied: ").append(name);
      SendProviderError(c, 400, "unrecognized_argument", msg);
    }
    return false;
  }
  return true;
}

void Server::HandleAnthropicModels(Conn* c) {
  std::string body = "{\"data\":[{\"type\":\"model\",\"id\":";
  AppendJsonString(&body, opts_.model);
  body.append(",\"display_name\":");
  AppendJsonString(&body, opts_.model);
  body.append(",\"created_at\":\"2025-01-01T00:00:00Z\"}],\"has_more\":false,\"first_id\":");
  AppendJsonString(&body, opts_.model);
  body.append(",\"last_id\":");
  AppendJsonString(&body, opts_.model);
  body.append("}");
  SendSimple(c, 200, "application/json", body);
}

bool ExtractAnthropicPrompt(const JsonValue& d, std::string* prompt, std::string* err, std::string* param) {
  auto fail = [&](const char* p, std::string msg) {
    *param = p;
    *err = std::string(p) + ": " + msg;
    return false;
  };
  if (d.HasMember("system")) {
    const auto& sys = d["system"];
    if (sys.IsString()) {
      prompt->append("<|system|>").append(sys.GetString(), sys.GetStringLength());
    } else if (sys.IsArray()) {
      for (const auto& b : sys.GetArray()) {
        if (!b.IsObject() || !b.HasMember("type") || !b["type"].IsString() || std::strcmp(b["type"].GetString(), "text") ||
            !b.HasMember("text") || !b["text"].IsString())
          return fail("system", "blocks must be {\"type\":\"text\",\"text\":...}");
        prompt->append("<|system|>").append(b["text"].GetString(), b["text"].GetStringLength());
      }
    } else {
      return fail("system", "must be a string or an array of text blocks");
    }
  }
  if (!d.HasMember("messages") || !d["messages"].IsArray() || d["messages"].Empty())
    return fail("messages", "Field required (a non-empty array)");
  for (const auto& m : d["messages"].GetArray()) {
    if (!m.IsObject() || !m.HasMember("role") || !m["role"].IsString())
      return fail("messages", "each message needs a role");
    std::string_view role = m["role"].GetString();
    if (role != "user" && role != "assistant")
      return fail("messages", "Unexpected role \"" + std::string(role) +
                                  "\". Allowed roles are \"user\" or \"assistant\"; the system prompt is the top-level system field");
    prompt->append("<|").append(role).append("|>");
    if (!m.HasMember("content")) return fail("messages", "each message needs content");
    const auto& ct = m["content"];
    if (ct.IsString()) {
      prompt->append(ct.GetString(), ct.GetStringLength());
      continue;
    }
    if (!ct.IsArray()) return fail("messages", "content must be a string or an array of content blocks");
    for (const auto& b : ct.GetArray()) {
      if (!b.IsObject() || !b.HasMember("type") || !b["type"].IsString())
        return fail("messages", "content blocks need a type");
      std::string_view type = b["type"].GetString();
      if (type == "text") {
        if (!b.HasMember("text") || !b["text"].IsString()) return fail("messages", "text blocks need text");
        prompt->append(b["text"].GetString(), b["text"].GetStringLength());
      } else if (type == "tool_use") {
        if (role != "assistant" || !b.HasMember("id") || !b.HasMember("name") || !b.HasMember("input") ||
            !b["input"].IsObject())
          return fail("messages", "tool_use blocks belong to assistant turns and need id, name and an object input");
      } else if (type == "tool_result") {
        if (role != "user" || !b.HasMember("tool_use_id") || !b["tool_use_id"].IsString())
          return fail("messages", "tool_result blocks belong to user turns and need tool_use_id");
        if (b.HasMember("content") && b["content"].IsString())
          prompt->append(b["content"].GetString(), b["content"].GetStringLength());
      } else if (type != "image" && type != "document") {
        return fail("messages", "unknown content block type \"" + std::string(type) + "\"");
      }
    }
  }
  if (d.HasMember("stop_sequences")) {
    if (!d["stop_sequences"].IsArray()) return fail("stop_sequences", "must be an array of strings");
    for (const auto& s : d["stop_sequences"].GetArray())
      if (!s.IsString()) return fail("stop_sequences", "must be an array of strings");
  }
  if (d.HasMember("temperature") && (!d["temperature"].IsNumber() || d["temperature"].GetDouble() < 0 ||
                                     d["temperature"].GetDouble() > 1))
    return fail("temperature", "must be a number between 0 and 1");
  if (d.HasMember("tools")) {
    if (!d["tools"].IsArray()) return fail("tools", "must be an array");
    for (const auto& t : d["tools"].GetArray())
      if (!t.IsObject() || !t.HasMember("name") || !t["name"].IsString() || !t.HasMember("input_schema") ||
          !t["input_schema"].IsObject())
        return fail("tools", "each tool needs a name and an input_schema object");
  }
  for (const char* openai_only : {"max_completion_tokens", "stop", "n", "stream_options", "tool_calls"})
    if (d.HasMember(openai_only)) return fail(openai_only, "Extra inputs are not permitted");
  return true;
}

void Server::AppendAnthropicEvents(std::string* out, Req* r, int first_index, int count, bool finished) {
  std::string data;
  if (first_index == 0) {
    data = "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock" + std::to_string(r->id) +
           "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":";
    AppendJsonString(&data, opts_.model);
    data.append(",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
    AppendInt(&data, r->prompt_tokens);
    data.append(",\"output_tokens\":1}}}");
    AppendSse(out, "message_start", data);
    AppendSse(out, "content_block_start",
              "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    AppendSse(out, "ping", "{\"type\":\"ping\"}");
  }
  for (int i = 0; i < count; ++i) {
    data = "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"";
    AppendWord(&data, r);  // words follow the context (continuable text)
    data.append("\"}}");
    AppendSse(out, "content_block_delta", data);
  }
  if (finished) {
    AppendSse(out, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
    data = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":";
    data.append(r->length_limited ? "\"max_tokens\"" : "\"end_turn\"");
    data.append(",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
    AppendInt(&data, r->output_tokens);
    data.append("}}");
    AppendSse(out, "message_delta", data);
    AppendSse(out, "message_stop", "{\"type\":\"message_stop\"}");
  }
}

void Server::AppendAnthropicMessage(std::string* out, Req* r) {
  out->append("{\"id\":\"msg_mock");
  AppendInt(out, static_cast<int64_t>(r->id));
  out->append("\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
  AppendJsonString(out, opts_.model);
  out->append(",\"content\":[{\"type\":\"text\",\"text\":\"");
  for (int i = 0; i < r->output_tokens; ++i) AppendWord(out, r);
  out->append("\"}],\"stop_reason\":");
  out->append(r->length_limited ? "\"max_tokens\"" : "\"end_turn\"");
  out->append(",\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
  AppendInt(out, r->prompt_tokens);
  out->append(",\"output_tokens\":");
  AppendInt(out, r->output_tokens);
  out->append("}}");
}

// Google's status name for an HTTP status (the gemini flavour's errors).
const char* GoogleStatusFor(int status) {
  switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 429: return "RESOURCE_EXHAUSTED";
    case 503: return "UNAVAILABLE";
    default: return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
}

// Used by SendError for the anthropic flavour.
const char* AnthropicErrorTypeFor(int status) { return AnthropicErrorType(status); }

}  // namespace llmgw::mock::internal
