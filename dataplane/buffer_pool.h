// BufferPool: a per-thread stock of reusable byte buffers for what a stream keeps only
// while it runs (the text already sent for a resume, a half-received SSE event, a
// continuation request's body). A buffer keeps its capacity when given back, so after
// warm-up a stream costs no heap allocation (the hot-path rule); one that grew beyond
// `keep_bytes` is shrunk on return, so a rare huge stream does not pin its memory.
// Single-threaded by design: each worker loop owns one.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace llmgw::dataplane {

class BufferPool {
 public:
  explicit BufferPool(size_t keep_bytes = 64 * 1024, size_t reserve_slots = 256) : keep_bytes_(keep_bytes) {
    free_.reserve(reserve_slots);
  }
  ~BufferPool() {
    for (std::string* b : free_) delete b;
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // An empty buffer; a new one only when none is free.
  std::string* Take() {
    if (free_.empty()) {
      ++created_;
      return new std::string();
    }
    std::string* b = free_.back();
    free_.pop_back();
    return b;
  }
  // Back to the pool (null is ignored). Its contents are dropped, its capacity kept up to
  // keep_bytes.
  void Give(std::string* b) {
    if (!b) return;
    b->clear();
    if (b->capacity() > keep_bytes_) b->shrink_to_fit();
    free_.push_back(b);
  }

  size_t free_count() const { return free_.size(); }
  size_t created() const { return created_; }  // buffers ever made (not taken from stock)

 private:
  size_t keep_bytes_;
  size_t created_ = 0;
  std::vector<std::string*> free_;
};

}  // namespace llmgw::dataplane
