// Unit tests of the dashboard's parts without HTTP (controlplane/dashboard.h): the token
// check, query decoding, the page's self-containment and the state event's content.
#include "controlplane/dashboard.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <string>

#include "common/config.h"
#include "common/shm.h"

namespace llmgw::cp {
namespace {

TEST(DashboardAuthTest, OpenWithoutATokenClosedWithOne) {
  EXPECT_TRUE(DashboardAuthorized("", "", "", ""));
  EXPECT_FALSE(DashboardAuthorized("", "", "", "s3cret"));
  EXPECT_TRUE(DashboardAuthorized("Bearer s3cret", "", "", "s3cret"));
  EXPECT_FALSE(DashboardAuthorized("Bearer s3cre", "", "", "s3cret"));
  EXPECT_FALSE(DashboardAuthorized("Bearer s3cretX", "", "", "s3cret"));
  EXPECT_FALSE(DashboardAuthorized("Basic s3cret", "", "", "s3cret"));
  EXPECT_TRUE(DashboardAuthorized("", "theme=dark; llmgw_admin_token=s3cret", "", "s3cret"));
  EXPECT_FALSE(DashboardAuthorized("", "other_llmgw_admin_token=s3cret", "", "s3cret"));
  EXPECT_TRUE(DashboardAuthorized("", "", "x=1&token=s3cret", "s3cret"));
  EXPECT_FALSE(DashboardAuthorized("", "", "xtoken=s3cret", "s3cret"));
  EXPECT_FALSE(DashboardAuthorized("", "", "token=", "s3cret"));
  // Percent-encoded tokens (a token with '&' or '=' in a URL).
  EXPECT_TRUE(DashboardAuthorized("", "", "token=a%26b%3Dc", "a&b=c"));
}

TEST(DashboardAuthTest, QueryParamDecodes) {
  EXPECT_EQ(QueryParam("a=1&token=x%20y&b=2", "token"), "x y");
  EXPECT_EQ(QueryParam("a=1", "token"), "");
  EXPECT_EQ(QueryParam("token=%zz", "token"), "%zz");  // not an escape: kept as is
}

TEST(DashboardPageTest, SelfContainedAndFedByTheEventStream) {
  std::string page(DashboardPage());
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("new EventSource("), std::string::npos);
  EXPECT_NE(page.find("/dashboard/events"), std::string::npos);
  EXPECT_NE(page.find("<canvas"), std::string::npos);
  // No external asset: nothing fetched from elsewhere (air-gapped sites, strict CSP).
  for (const char* bad : {"http://", "https://", "src=\"", "<link", "@import"})
    EXPECT_EQ(page.find(bad), std::string::npos) << bad;
}

TEST(DashboardStateTest, EveryBackendWithItsSignals) {
  std::string inst = "dash-" + std::to_string(getpid());
  ConfigResult r = ParseConfig("instance: " + inst +
                                   "\nmodels:\n  - name: m\n    policy: round_robin\n    backends:\n"
                                   "      - { id: gpu-a, url: \"http://127.0.0.1:9\" }\n"
                                   "      - { id: gpu-b, url: \"http://127.0.0.1:10\", max_concurrent: 7 }\n",
                               "test.yaml");
  ASSERT_TRUE(r.ok()) << r.ErrorText();
  ControllerOptions o;
  o.worker_threads = 0;
  o.prober = nullptr;
  Controller c(o);
  ASSERT_TRUE(c.StartWithConfig(std::move(r.config)).ok());
  std::string json = DashboardStateJson(c, 1234);
  c.Shutdown();
  shm::Unlink("/llmgw-" + inst);
  rapidjson::Document d;
  d.Parse(json.c_str());
  ASSERT_TRUE(d.IsObject()) << json;
  EXPECT_EQ(d["t"].GetUint64(), 1234u);
  EXPECT_EQ(std::string(d["status"]["instance"].GetString()), inst);
  EXPECT_EQ(d["status"]["backends_total"].GetUint(), 2u);
  ASSERT_EQ(d["backends"].Size(), 2u);
  EXPECT_EQ(std::string(d["backends"][0]["id"].GetString()), "gpu-a");
  EXPECT_EQ(std::string(d["backends"][1]["id"].GetString()), "gpu-b");
  EXPECT_EQ(d["backends"][1]["max_concurrent"].GetUint(), 7u);
  EXPECT_EQ(std::string(d["backends"][0]["breaker"].GetString()), "closed");
  for (const char* k : {"in_flight", "running", "waiting", "kv_cache_usage", "ewma_latency_ms", "latency_p99_ms",
                        "ttft_p99_ms", "scraped_ttft_p99_ms", "error_rate", "errors_total", "picks", "state"})
    EXPECT_TRUE(d["backends"][0].HasMember(k)) << k;
  for (const char* k : {"requests", "errors", "prompt_tokens", "completion_tokens"})
    EXPECT_TRUE(d["totals"].HasMember(k)) << k;
  ASSERT_EQ(d["models"].Size(), 1u);
  EXPECT_EQ(std::string(d["models"][0]["policy"].GetString()), "round_robin");
}

}  // namespace
}  // namespace llmgw::cp
