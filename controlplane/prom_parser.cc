// Prometheus text parser: a hand-written line scanner, because scraped input is
// untrusted and a regex or exception-based parser would make a hostile backend expensive.
#include "controlplane/prom_parser.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace llmgw::cp {

std::string_view PromSample::Label(std::string_view key) const {
  for (const auto& [k, v] : labels)
    if (k == key) return v;
  return {};
}

namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }
bool IsSpace(char c) { return c == ' ' || c == '\t'; }

void SkipSpaces(std::string_view s, size_t* i) {
  while (*i < s.size() && IsSpace(s[*i])) ++*i;
}

// Parses one sample line; false when it is not one.
bool ParseSampleLine(std::string_view line, const PromParseLimits& limits, PromSample* out) {
  size_t i = 0;
  SkipSpaces(line, &i);
  if (i >= line.size() || !IsNameStart(line[i])) return false;
  size_t start = i;
  while (i < line.size() && IsNameChar(line[i])) ++i;
  out->name.assign(line.substr(start, i - start));
  out->labels.clear();
  SkipSpaces(line, &i);
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      SkipSpaces(line, &i);
      if (i >= line.size()) return false;
      if (line[i] == '}') { ++i; break; }
      if (!IsNameStart(line[i])) return false;
      size_t ks = i;
      while (i < line.size() && IsNameChar(line[i])) ++i;
      std::string key(line.substr(ks, i - ks));
      SkipSpaces(line, &i);
      if (i >= line.size() || line[i] != '=') return false;
      ++i;
      SkipSpaces(line, &i);
      if (i >= line.size() || line[i] != '"') return false;
      ++i;
      std::string val;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '"') { closed = true; break; }
        if (c == '\\' && i < line.size()) {
          char e = line[i++];
          val.push_back(e == 'n' ? '\n' : e);
        } else {
          val.push_back(c);
        }
      }
      if (!closed) return false;
      if (out->labels.size() >= limits.max_labels) return false;
      out->labels.emplace_back(std::move(key), std::move(val));
      SkipSpaces(line, &i);
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  SkipSpaces(line, &i);
  size_t vs = i;
  while (i < line.size() && !IsSpace(line[i])) ++i;
  if (vs == i) return false;
  if (!ParsePromDouble(line.substr(vs, i - vs), &out->value)) return false;
  // An optional timestamp may follow; anything else makes the line invalid.
  SkipSpaces(line, &i);
  if (i < line.size()) {
    double ts;
    size_t ts_start = i;
    while (i < line.size() && !IsSpace(line[i])) ++i;
    if (!ParsePromDouble(line.substr(ts_start, i - ts_start), &ts)) return false;
    SkipSpaces(line, &i);
    if (i < line.size()) return false;
  }
  return true;
}

}  // namespace

bool ParsePromDouble(std::string_view s, double* out) {
  if (s.empty() || s.size() > 64) return false;
  if (s == "+Inf" || s == "Inf" || s == "+inf" || s == "inf") { *out = HUGE_VAL; return true; }
  if (s == "-Inf" || s == "-inf") { *out = -HUGE_VAL; return true; }
  if (s == "NaN" || s == "nan") { *out = std::nan(""); return true; }
  char buf[72];
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
    if (!ok) return false;  // rejects hex floats, "infinity" spellings, junk
  }
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  char* end = nullptr;
  double v = std::strtod(buf, &end);
  if (end != buf + s.size()) return false;
  *out = v;
  return true;
}

PromParseResult ParsePrometheusText(std::string_view text, const PromParseLimits& limits) {
  PromParseResult r;
  size_t pos = 0;
  PromSample s;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t i = 0;
    SkipSpaces(line, &i);
    if (i == line.size() || line[i] == '#') continue;
    if (line.size() > limits.max_line_bytes) { ++r.bad_lines; continue; }
    if (r.samples.size() >= limits.max_samples) { r.truncated = true; break; }
    if (ParseSampleLine(line, limits, &s)) {
      r.samples.push_back(std::move(s));
      s = PromSample{};
    } else {
      ++r.bad_lines;
    }
  }
  return r;
}

}  // namespace llmgw::cp
