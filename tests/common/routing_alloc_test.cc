// The hot-path promise: Router::Pick (every policy), ExtractPrefix and the admission
// queue's per-request calls allocate nothing. Counts global operator new while armed.
#include <gtest/gtest.h>

#include <memory>

#include <cstdlib>
#include <new>
#include <string>

#include "common/routing/admission.h"
#include "common/routing/prefix.h"
#include "tests/common/routing_test_util.h"

// Our operator new/delete pair malloc/free; GCC cannot see that through the inlined
// std::allocator and would warn about a mismatch that is not there.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
bool g_armed = false;
size_t g_allocs = 0;
}  // namespace

void* operator new(size_t n) {
  if (g_armed) ++g_allocs;
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace llmgw::routing {
namespace {

using testing::Fleet;
using testing::SplitMix;

TEST(HotPathAllocationTest, CounterSeesAllocations) {
  g_allocs = 0;
  g_armed = true;
  auto* p = new std::string(100, 'x');  // the string and its buffer
  g_armed = false;
  delete p;
  EXPECT_GE(g_allocs, 1u);
}

TEST(HotPathAllocationTest, PickNeverAllocates) {
  for (int p = 0; p < static_cast<int>(Policy::kCount); ++p) {
    SCOPED_TRACE(std::string(PolicyName(static_cast<Policy>(p))));
    Fleet f(static_cast<Policy>(p), 8, 50);
    for (int s = 0; s < 8; ++s) {
      f.b(s).metrics_fresh = s % 2;
      f.b(s).adaptive_weight = 0.125f;
      f.b(s).weight = 1 + s;
    }
    f.SetState(3, shm::BackendState::kHalfOpen);
    // Prefix reports on (as in llmgw), and one home published by llmcd (the pinned path).
    auto region = std::make_unique<shm::ShmRegion>();
    f.router.SetPrefixReport(region->slots[0].prefix_report, shm::kPrefixReportEntries);
    f.snap->num_prefix_homes = 1;
    f.snap->prefix_homes[0] = {Router::PrefixTag(Router::HashKey("You are a helpful assistant."), 0), f.b(2).key, 2, 0, 0};
    f.Publish();
    std::string key = "some-session", prefix = "You are a helpful assistant.";
    // Many distinct prefixes too (built before arming), so placement, moves and the
    // memory's collisions run under the counter as well as the remembered-home path.
    std::vector<std::string> prefixes;
    for (int k = 0; k < 5000; ++k) prefixes.push_back("system prompt number " + std::to_string(k));
    const uint16_t exclude[] = {1, 5};
    uint64_t x = 1;
    g_allocs = 0;
    g_armed = true;
    for (int i = 0; i < 20000; ++i) {
      std::string_view pv = i % 4 ? std::string_view(prefix) : std::string_view(prefixes[(i * 7) % prefixes.size()]);
      int s = f.Pick({.hash_key = key, .prefix = pv, .random = SplitMix(x)}, i % 3 ? exclude : std::span<const uint16_t>{});
      // Arrivals and completions, so the fleet never fills up and every path keeps running.
      if (s >= 0 && i % 2) ++f.local[s].in_flight;
      else if (s >= 0 && f.local[s].in_flight > 0) --f.local[s].in_flight;
      (void)f.router.AllAtCapacity(0, f.local);
    }
    g_armed = false;
    EXPECT_EQ(g_allocs, 0u);
  }
}

TEST(HotPathAllocationTest, ExtractPrefixAndAdmissionNeverAllocate) {
  std::string body = R"({"model":"m","messages":[{"role":"system","content":"You are \u00e9 helpful."},)"
                     R"({"role":"user","content":[{"type":"text","text":")" + std::string(4000, 'x') + R"("}]}]})";
  char buf[256];
  AdmissionQueue q(64, 1000);
  g_allocs = 0;
  g_armed = true;
  size_t n = ExtractPrefix(body, buf, sizeof buf);
  n += ExtractPrefix("{not json", buf, sizeof buf);
  for (uint64_t i = 0; i < 200; ++i) {
    q.Push(i, static_cast<int32_t>(i % 4));
    uint64_t c;
    if (i % 3 == 0) q.Pop(&c);
    q.ExpireOne(&c);
  }
  g_armed = false;
  EXPECT_EQ(g_allocs, 0u);
  EXPECT_EQ(n, sizeof buf);
}

}  // namespace
}  // namespace llmgw::routing
