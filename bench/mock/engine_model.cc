// Continuous-batching model of one vLLM engine; see engine_model.h.
#include "bench/mock/engine_model.h"

#include <algorithm>

namespace llmgw::mock {

void PromptBlockHashes(std::string_view prompt, int block_size_tokens, std::vector<uint64_t>* out) {
  out->clear();
  const size_t block_bytes = static_cast<size_t>(block_size_tokens) * kBytesPerToken;
  uint64_t h = 1469598103934665603ull;  // FNV-1a offset basis; chained across blocks
  for (size_t off = 0; off + block_bytes <= prompt.size(); off += block_bytes) {
    for (size_t i = off; i < off + block_bytes; ++i) {
      h ^= static_cast<unsigned char>(prompt[i]);
      h *= 1099511628211ull;
    }
    out->push_back(h);
  }
}

size_t PrefixCache::MatchAndInsert(const std::vector<uint64_t>& hashes) {
  size_t matched = 0;
  bool still_matching = true;
  for (uint64_t h : hashes) {
    auto it = index_.find(h);
    if (it != index_.end()) {
      if (still_matching) ++matched;
      lru_.splice(lru_.begin(), lru_, it->second);
      continue;
    }
    still_matching = false;
    if (capacity_ == 0) continue;
    if (index_.size() >= capacity_) {
      index_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(h);
    index_.emplace(h, lru_.begin());
  }
  return matched;
}

EngineModel::EngineModel(const EngineParams& p) : p_(p), cache_(p.prefix_cache_blocks) {
  if (p_.max_num_seqs < 1) p_.max_num_seqs = 1;
  if (p_.speed <= 0) p_.speed = 1.0;
  if (p_.block_size_tokens < 1) p_.block_size_tokens = 16;
}

int EngineModel::CachedTokens(std::string_view prompt, int prompt_tokens) {
  PromptBlockHashes(prompt, p_.block_size_tokens, &hash_scratch_);
  size_t hit_blocks = cache_.MatchAndInsert(hash_scratch_);
  // Like vLLM, the last prompt token is always computed so there are logits to sample.
  int cached = std::min<int>(static_cast<int>(hit_blocks) * p_.block_size_tokens, prompt_tokens - 1);
  if (cached < 0) cached = 0;
  prefix_queries_tokens_ += static_cast<uint64_t>(prompt_tokens);
  prefix_hit_tokens_ += static_cast<uint64_t>(cached);
  prefix_queries_blocks_ += hash_scratch_.size();
  prefix_hit_blocks_ += hit_blocks;
  return cached;
}

int EngineModel::AccountPrompt(std::string_view prompt) {
  return CachedTokens(prompt, PromptTokens(prompt));
}

int EngineModel::Submit(uint64_t id, std::string_view prompt, int output_tokens, int64_t now_us) {
  Seq s;
  s.id = id;
  s.prompt_tokens = PromptTokens(prompt);
  int cached = CachedTokens(prompt, s.prompt_tokens);
  s.uncached_tokens = s.prompt_tokens - cached;
  s.output_tokens = std::max(1, output_tokens);
  waiting_.push_back(s);
  if (step_end_us_ < 0) StartStep(now_us);
  return cached;
}

bool EngineModel::Cancel(uint64_t id, int64_t now_us) {
  for (size_t i = 0; i < running_.size(); ++i) {
    if (running_[i].id == id) {
      if (now_us >= 0 && step_end_us_ >= 0) {
        int64_t t = std::clamp<int64_t>(now_us, step_start_us_, step_end_us_);
        busy_slot_us_ += static_cast<double>(t - step_start_us_);
      }
      kv_reserved_ -= running_[i].prompt_tokens + running_[i].output_tokens;
      running_.erase(running_.begin() + static_cast<long>(i));
      if (running_.empty() && waiting_.empty()) step_end_us_ = -1;
      return true;
    }
  }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->id == id) {
      waiting_.erase(it);
      return true;
    }
  }
  return false;
}

void EngineModel::StartStep(int64_t now_us) {
  // Admit FIFO while there is a free slot and KV room for the whole sequence; an empty
  // batch always admits one so an oversized request cannot block the queue forever.
  int64_t prefill_tokens = 0;
  while (!waiting_.empty() && static_cast<int>(running_.size()) < p_.max_num_seqs) {
    const Seq& s = waiting_.front();
    int64_t need = s.prompt_tokens + s.output_tokens;
    if (!running_.empty() && kv_reserved_ + need > p_.kv_capacity_tokens) break;
    kv_reserved_ += need;
    prefill_tokens += s.uncached_tokens;
    running_.push_back(s);
    waiting_.pop_front();
  }
  if (running_.empty()) {
    step_end_us_ = -1;
    return;
  }
  double step_us = p_.token_interval_ms * 1000.0 *
                       (1.0 + p_.decode_batch_factor * static_cast<double>(running_.size() - 1)) +
                   p_.prefill_us_per_token * static_cast<double>(prefill_tokens);
  step_us /= p_.speed;
  step_start_us_ = now_us;
  step_end_us_ = now_us + std::max<int64_t>(1, static_cast<int64_t>(step_us));
}

void EngineModel::Advance(int64_t now_us, std::vector<TokenEvent>* out) {
  while (step_end_us_ >= 0 && step_end_us_ <= now_us) {
    int64_t step_end = step_end_us_;
    ++steps_;
    busy_slot_us_ += static_cast<double>(running_.size()) * static_cast<double>(step_end - step_start_us_);
    size_t keep = 0;
    for (size_t i = 0; i < running_.size(); ++i) {
      Seq& s = running_[i];
      bool finished = s.generated + 1 >= s.output_tokens;
      out->push_back(TokenEvent{s.id, s.generated, finished});
      ++s.generated;
      if (finished) {
        kv_reserved_ -= s.prompt_tokens + s.output_tokens;
      } else {
        running_[keep++] = s;
      }
    }
    running_.resize(keep);
    // The next step starts where this one ended, so a late timer does not slow the model.
    StartStep(step_end);
  }
}

double EngineModel::BusySlotUs(int64_t now_us) const {
  if (step_end_us_ < 0 || running_.empty()) return busy_slot_us_;
  int64_t t = std::clamp<int64_t>(now_us, step_start_us_, step_end_us_);
  return busy_slot_us_ + static_cast<double>(running_.size()) * static_cast<double>(t - step_start_us_);
}

int64_t EngineModel::kv_tokens_held() const {
  int64_t held = 0;
  for (const Seq& s : running_) held += s.prompt_tokens + s.generated;
  return held;
}

double EngineModel::kv_usage() const {
  if (p_.kv_capacity_tokens <= 0) return 0;
  double u = static_cast<double>(kv_tokens_held()) / static_cast<double>(p_.kv_capacity_tokens);
  return u > 1 ? 1 : u;
}

}  // namespace llmgw::mock
