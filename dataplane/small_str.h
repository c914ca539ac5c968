// SmallStr: a fixed-capacity string for header names/values, the URL and ids, which
// llhttp may deliver in pieces across reads. Never allocates; remembers an overflow.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>

namespace llmgw::dataplane {

template <size_t N>
struct SmallStr {
  char data[N];
  size_t len = 0;
  bool overflow = false;
  void Clear() {
    len = 0;
    overflow = false;
  }
  void Append(const char* p, size_t n) {
    size_t take = std::min(n, N - len);
    std::memcpy(data + len, p, take);
    len += take;
    if (take < n) overflow = true;
  }
  std::string_view View() const { return {data, len}; }
};

}  // namespace llmgw::dataplane
