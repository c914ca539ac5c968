// libFuzzer target: feeds arbitrary bytes to llhttp as a client request stream (with the
// gateway's callbacks shape: pause per message, resume, continue) and every body to the
// top-level JSON field reader. Build with -DLLMGW_BUILD_FUZZERS=ON and clang.
#include <llhttp.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "dataplane/request_json.h"

namespace {
std::string g_body;
int OnBody(llhttp_t*, const char* at, size_t n) {
  if (g_body.size() + n > (1 << 20)) return -1;
  g_body.append(at, n);
  return 0;
}
int OnMessageBegin(llhttp_t*) {
  g_body.clear();
  return 0;
}
int OnMessageComplete(llhttp_t*) { return HPE_PAUSED; }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_body = OnBody;
  s.on_message_begin = OnMessageBegin;
  s.on_message_complete = OnMessageComplete;
  llhttp_t p;
  llhttp_init(&p, HTTP_REQUEST, &s);
  const char* cur = reinterpret_cast<const char*>(data);
  const char* end = cur + size;
  llmgw::dataplane::RequestFields f;
  // The raw input is also a JSON body candidate on its own.
  llmgw::dataplane::ReadRequestFields(cur, size, "priority", &f);
  while (cur < end) {
    llhttp_errno_t e = llhttp_execute(&p, cur, static_cast<size_t>(end - cur));
    if (e == HPE_PAUSED) {
      llmgw::dataplane::ReadRequestFields(g_body.data(), g_body.size(), "priority", &f);
      if (f.valid_json && f.model_raw_end > f.model_raw_begin && f.model_raw_end > g_body.size()) __builtin_trap();
      const char* pos = llhttp_get_error_pos(&p);
      llhttp_resume(&p);
      if (pos <= cur) break;
      cur = pos;
      continue;
    }
    break;
  }
  return 0;
}
