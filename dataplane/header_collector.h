// HeaderCollector: one side's header block as llhttp delivers it (names and values in
// pieces), collected straight into "Name: value\r\n" lines ready to forward, in one
// buffer whose capacity is reserved once and never grown (an append past it is an
// overflow: the caller answers 431 or fails the upstream). Both sides of the proxy use
// it: the client's request headers going upstream and the upstream's response headers
// going to the client. The caller decides per header whether it is kept; hop-by-hop
// headers (RFC 9110 7.6.1) and those the Connection header names are removed here.
#pragma once

#include <string>
#include <string_view>

#include "dataplane/http_text.h"
#include "dataplane/small_str.h"

namespace llmgw::dataplane {

class HeaderCollector {
 public:
  // The only allocation: the lines' buffer, `cap` bytes, once per pooled request state.
  void Reserve(size_t cap) { lines_.reserve(cap); }
  void Clear() {
    lines_.clear();
    in_field_ = false;
    overflow_ = false;
    conn_tokens_.Clear();
  }

  // llhttp's on_header_field / on_header_value: false when the block overflows.
  bool OnField(const char* at, size_t n) {
    if (!in_field_) {
      in_field_ = true;
      field_start_ = lines_.size();
    }
    return Append(at, n);
  }
  bool OnValue(const char* at, size_t n) { return BeginValue() && Append(at, n); }

  // llhttp's on_header_value_complete: the header just read, its value without trailing
  // blanks. Then the caller calls Keep() or Drop(). False on overflow.
  bool OnValueComplete(std::string_view* name, std::string_view* value) {
    if (!BeginValue()) return false;  // an empty value brings no on_header_value
    std::string_view all(lines_);
    *name = all.substr(field_start_, value_start_ - 2 - field_start_);
    std::string_view v = all.substr(value_start_);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    *value = v;
    return true;
  }
  // The header just completed is forwarded (its trailing blanks cut).
  bool Keep(std::string_view value) {
    lines_.resize(value_start_ + value.size());
    return Append("\r\n", 2);
  }
  // The header just completed is not forwarded.
  void Drop() { lines_.resize(field_start_); }

  // Drops the header if it is hop-by-hop (a Connection header's tokens are remembered:
  // the headers they name are removed by Finish). True when dropped.
  bool DropIfHopByHop(std::string_view name, std::string_view value) {
    if (EqualsNoCase(name, "connection")) {
      if (conn_tokens_.len) conn_tokens_.Append(",", 1);
      conn_tokens_.Append(value.data(), value.size());
      Drop();
      return true;
    }
    if (!IsHopByHopOtherThanConnection(name)) return false;
    Drop();
    return true;
  }

  // The block is complete: removes the headers a Connection header named.
  void Finish() {
    if (conn_tokens_.len) RemoveConnectionNamed(&lines_, conn_tokens_.View());
  }

  std::string_view lines() const { return lines_; }
  bool overflow() const { return overflow_; }

 private:
  bool Append(const char* p, size_t n) {
    if (lines_.size() + n > lines_.capacity()) {  // never reallocate on the hot path
      overflow_ = true;
      return false;
    }
    lines_.append(p, n);
    return true;
  }
  bool BeginValue() {
    if (!in_field_) return true;
    in_field_ = false;
    if (!Append(": ", 2)) return false;
    value_start_ = lines_.size();
    return true;
  }

  std::string lines_;
  size_t field_start_ = 0, value_start_ = 0;
  bool in_field_ = false;   // llhttp is delivering a name
  bool overflow_ = false;
  SmallStr<256> conn_tokens_;  // the Connection header's value: more hop-by-hop names
};

}  // namespace llmgw::dataplane
