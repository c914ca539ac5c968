// llmgw-mock's minimal OpenAI Responses API (POST /v1/responses): enough for a client or
// the gateway's pass-through tests to see a well-formed answer, non-streaming (a
// `response` object) and streaming (response.created, response.output_text.delta events,
// response.completed with usage). It does not go through the engine simulation: the
// answer is immediate and its text fixed, echoing how many input characters it saw.
#include <string>

#include "bench/mock/mock_server_internal.h"

namespace llmgw::mock::internal {

bool Server::HandleResponses(Conn* c) {
  JsonDoc d;
  d.Parse(c->body.data(), c->body.size());
  if (d.HasParseError() || !d.IsObject()) {
    SendError(c, 400, "request body must be a JSON object");
    return true;
  }
  // Azure's Responses API (its v1 surface) names the deployment in the model field.
  const std::string& want = opts_.provider == MockProvider::kAzure ? opts_.deployment : opts_.model;
  if (!d.HasMember("model") || !d["model"].IsString() || want != d["model"].GetString()) {
    SendError(c, 404, "The model does not exist.", "model");
    return true;
  }
  if (!d.HasMember("input") || !(d["input"].IsString() || d["input"].IsArray())) {
    SendError(c, 400, "input must be a string or an array", "input");
    return true;
  }
  const bool stream = d.HasMember("stream") && d["stream"].IsBool() && d["stream"].GetBool();
  std::string input = d["input"].IsString() ? std::string(d["input"].GetString(), d["input"].GetStringLength()) : "";
  ++requests_total_;
  const int in_tokens = PromptTokens(input.empty() ? std::string("x") : input);
  const char* words[] = {"Hello", " from", " the", " mock"};
  const int out_tokens = static_cast<int>(std::size(words));
  std::string text;
  for (const char* w : words) text += w;
  auto usage = [&](std::string* b) {
    b->append("\"usage\":{\"input_tokens\":");
    AppendInt(b, in_tokens);
    b->append(",\"output_tokens\":");
    AppendInt(b, out_tokens);
    b->append(",\"total_tokens\":");
    AppendInt(b, in_tokens + out_tokens);
    b->append("}");
  };
  auto response = [&](std::string* b, const char* status, bool with_output) {
    b->append("{\"id\":\"resp_mock\",\"object\":\"response\",\"created_at\":0,\"status\":\"");
    b->append(status);
    b->append("\",\"model\":");
    AppendJsonString(b, opts_.model);
    b->append(",\"output\":[");
    if (with_output) {
      b->append("{\"type\":\"message\",\"id\":\"msg_mock\",\"status\":\"completed\",\"role\":\"assistant\","
                "\"content\":[{\"type\":\"output_text\",\"text\":");
      AppendJsonString(b, text);
      b->append(",\"annotations\":[]}]}");
    }
    b->append("],");
    if (with_output) usage(b);
    else b->append("\"usage\":null");
    b->append("}");
  };
  std::string b;
  if (!stream) {
    response(&b, "completed", true);
    SendSimple(c, 200, "application/json", b);
  } else {
    b.append("event: response.created\ndata: {\"type\":\"response.created\",\"response\":");
    response(&b, "in_progress", false);
    b.append("}\n\n");
    for (const char* w : words) {
      b.append("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":"
               "\"msg_mock\",\"output_index\":0,\"content_index\":0,\"delta\":");
      AppendJsonString(&b, w);
      b.append("}\n\n");
    }
    b.append("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":");
    response(&b, "completed", true);
    b.append("}\n\n");
    SendSimple(c, 200, "text/event-stream", b);
  }
  metrics_.prompt_tokens_total += static_cast<uint64_t>(in_tokens);
  ++completed_total_;
  CountRequestDone();
  return true;
}

}  // namespace llmgw::mock::internal
