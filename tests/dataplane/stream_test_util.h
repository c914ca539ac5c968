// SSE chunk builders and a JSON check shared by the stream tests on strings
// (sse_chunk_test.cc, stream_resume_test.cc): vLLM-shaped chat and usage chunks, an SSE
// event around a JSON, and a parse that fails the test on bad JSON.
#pragma once

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <string_view>

namespace llmgw::dataplane::stream_test {

// A vLLM-shaped chat chunk.
inline std::string ChatChunk(std::string_view id, std::string_view content, bool role = false, bool finish = false,
                             std::string_view model = "m1", int index = 0) {
  std::string s = "{\"id\":\"" + std::string(id) + "\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                  "\"model\":\"" + std::string(model) + "\",\"choices\":[{\"index\":" + std::to_string(index) +
                  ",\"delta\":{";
  if (role) s += "\"role\":\"assistant\",";
  s += "\"content\":\"" + std::string(content) + "\"},\"logprobs\":null,\"finish_reason\":";
  s += finish ? "\"stop\"" : "null";
  s += "}]}";
  return s;
}
inline std::string UsageChunk(std::string_view id, int p, int c, std::string_view model = "m1") {
  return "{\"id\":\"" + std::string(id) + "\",\"object\":\"chat.completion.chunk\",\"created\":1700000099,\"model\":\"" +
         std::string(model) + "\",\"choices\":[],\"usage\":{\"prompt_tokens\":" + std::to_string(p) +
         ",\"total_tokens\":" + std::to_string(p + c) + ",\"completion_tokens\":" + std::to_string(c) + "}}";
}
inline std::string Event(const std::string& json) { return "data: " + json + "\n\n"; }

inline rapidjson::Document Parse(std::string_view s) {
  rapidjson::Document d;
  d.Parse(s.data(), s.size());
  EXPECT_FALSE(d.HasParseError()) << s;
  return d;
}

}  // namespace llmgw::dataplane::stream_test
