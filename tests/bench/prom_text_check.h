// A minimal Prometheus text-format (0.0.4) checker for the mock's /metrics tests, until the
// control plane's scraper exists: every sample line parses, belongs to a family declared by
// a TYPE line, and every histogram's buckets never decrease and end with +Inf == _count.
#pragma once

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace llmgw::testing {

struct PromSample {
  std::string name;
  std::string labels;  // raw text between the braces
  double value;
};

struct PromParse {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|...
  std::vector<PromSample> samples;
  double Value(const std::string& name, const std::string& label_substr = {}) const {
    for (const auto& s : samples)
      if (s.name == name && s.labels.find(label_substr) != std::string::npos) return s.value;
    return -1;
  }
};

inline bool IsNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

inline std::string FamilyOf(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const char* suf : {"_bucket", "_count", "_sum"}) {
    std::string s(suf);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      std::string base = name.substr(0, name.size() - s.size());
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return {};
}

inline bool ParsePrometheusText(const std::string& text, PromParse* out, std::string* err) {
  size_t pos = 0;
  int lineno = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) {
      *err = "last line has no newline";
      return false;
    }
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++lineno;
    auto fail = [&](const std::string& why) {
      *err = "line " + std::to_string(lineno) + ": " + why + ": " + line;
      return false;
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (line.rfind("# TYPE ", 0) == 0) {
        size_t sp = line.find(' ', 7);
        if (sp == std::string::npos) return fail("TYPE without type");
        std::string name = line.substr(7, sp - 7), type = line.substr(sp + 1);
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
          return fail("unknown type");
        if (out->types.count(name)) return fail("family declared twice");
        out->types[name] = type;
      }
      continue;
    }
    size_t i = 0;
    while (i < line.size() && IsNameChar(line[i], i == 0)) ++i;
    if (i == 0) return fail("bad metric name");
    PromSample s;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      size_t close = line.find('}', i);
      if (close == std::string::npos) return fail("unclosed labels");
      s.labels = line.substr(i + 1, close - i - 1);
      // label="value" pairs separated by commas
      size_t j = 0;
      const std::string& l = s.labels;
      while (j < l.size()) {
        size_t k = j;
        while (k < l.size() && IsNameChar(l[k], k == j) && l[k] != ':') ++k;
        if (k == j || k + 1 >= l.size() || l[k] != '=' || l[k + 1] != '"') return fail("bad label");
        size_t q = l.find('"', k + 2);
        if (q == std::string::npos) return fail("unterminated label value");
        j = q + 1;
        if (j < l.size()) {
          if (l[j] != ',') return fail("labels not comma separated");
          ++j;
        }
      }
      i = close + 1;
    }
    if (i >= line.size() || line[i] != ' ') return fail("no space before value");
    std::string v = line.substr(i + 1);
    char* end = nullptr;
    s.value = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || (*end != '\0' && *end != ' ')) return fail("bad value");
    if (FamilyOf(s.name, out->types).empty()) return fail("sample without TYPE");
    out->samples.push_back(s);
  }
  // Histogram invariants.
  for (const auto& [fam, type] : out->types) {
    if (type != "histogram") continue;
    double prev = 0, inf = -1, count = -1;
    for (const auto& s : out->samples) {
      if (s.name == fam + "_bucket") {
        if (s.value < prev) {
          *err = fam + ": buckets decrease";
          return false;
        }
        prev = s.value;
        if (s.labels.find("le=\"+Inf\"") != std::string::npos) inf = s.value;
      } else if (s.name == fam + "_count") {
        count = s.value;
      }
    }
    if (inf < 0 || count < 0 || inf != count) {
      *err = fam + ": +Inf bucket missing or != _count";
      return false;
    }
  }
  return true;
}

}  // namespace llmgw::testing
