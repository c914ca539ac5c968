// What the llmgw integration tests (gateway_integration_test.cc,
// gateway_load_integration_test.cc) share beyond harness.h: a chat request body, the
// summed stats of a gateway, and the check of an OpenAI-shaped error answer.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "tests/dataplane/harness.h"

namespace llmgw::testing {

inline const std::string kChat = R"({"model":"m1","messages":[{"role":"user","content":"hello"}]})";

// `now` a second ahead: SumStats computes now - heartbeat unsigned, so a heartbeat
// written between our clock read and its read would wrap and count the thread as dead.
inline void SumStatsNow(Gateway& gw, shm::StatsTotals* t) {
  shm::SumStats(*gw.region(), 4, shm::NowUnixMs() + 1000, 10000, t);
}

inline void ExpectOpenAiError(const Response& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_NE(r.body.find("\"error\":{\"message\":"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"type\":"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"param\":"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"code\":\"" + code + "\""), std::string::npos) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
}

}  // namespace llmgw::testing
