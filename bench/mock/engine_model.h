// The continuous-batching model behind llmgw-mock: a vLLM-like scheduler (max_num_seqs
// running, FIFO waiting queue), a prefix cache (LRU of prompt-prefix block hashes) and a
// step clock where prefill cost grows with uncached prompt tokens and decode cost grows
// with batch size. It does no I/O and takes time as an argument, so tests drive it with a
// fake clock and the server drives it from a timerfd.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmgw::mock {

struct EngineParams {
  int max_num_seqs = 64;
  int64_t kv_capacity_tokens = 131072;
  int block_size_tokens = 16;
  size_t prefix_cache_blocks = 8192;
  double token_interval_ms = 25.0;    // one decode step with a batch of one (40 tok/s)
  double decode_batch_factor = 0.02;  // each extra running sequence slows a step by 2%
  double prefill_us_per_token = 40.0; // 1,000 uncached prompt tokens cost 40 ms
  double speed = 1.0;                 // divides every duration (0.5 = half as fast)
};

// The mock counts one token per 4 prompt bytes: close to BPE on English, and stable, so a
// shared prefix of bytes is a shared prefix of tokens.
constexpr int kBytesPerToken = 4;
inline int PromptTokens(std::string_view prompt) {
  int n = static_cast<int>((prompt.size() + kBytesPerToken - 1) / kBytesPerToken);
  return n < 1 ? 1 : n;
}

// Chained hashes of each full block of the prompt (hash i covers bytes [0, (i+1)*block)),
// the way vLLM keys its prefix cache, so two prompts share block i only if they share all
// bytes before it.
void PromptBlockHashes(std::string_view prompt, int block_size_tokens, std::vector<uint64_t>* out);

class PrefixCache {
 public:
  explicit PrefixCache(size_t capacity_blocks) : capacity_(capacity_blocks) {}
  // Returns how many leading blocks were already cached, then marks all of them most
  // recently used (inserting the missing ones and evicting the least recently used).
  size_t MatchAndInsert(const std::vector<uint64_t>& hashes);
  size_t size() const { return index_.size(); }

 private:
  size_t capacity_;
  std::list<uint64_t> lru_;  // front = most recently used
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> index_;
};

struct TokenEvent {
  uint64_t id;
  int index;      // 0 = first token
  bool finished;  // this was the last token
};

class EngineModel {
 public:
  explicit EngineModel(const EngineParams& p);

  // Queues a request; it joins the batch at the next step boundary (or now if idle).
  // Returns the number of prompt tokens served from the prefix cache.
  int Submit(uint64_t id, std::string_view prompt, int output_tokens, int64_t now_us);
  // Removes a waiting or running request (client went away). Returns false if unknown.
  // now_us closes the cancelled sequence's share of busy-slot time; -1 (unknown) counts
  // none of the current step for it.
  bool Cancel(uint64_t id, int64_t now_us = -1);
  // Runs every step that ended by now_us, appending the tokens they produced.
  void Advance(int64_t now_us, std::vector<TokenEvent>* out);
  // When the current step ends, or -1 when idle.
  int64_t NextDeadlineUs() const { return step_end_us_; }

  // Prefix-cache accounting for requests answered without the timing model
  // (--token-interval-ms 0). Returns cached prompt tokens.
  int AccountPrompt(std::string_view prompt);

  int running() const { return static_cast<int>(running_.size()); }
  int waiting() const { return static_cast<int>(waiting_.size()); }
  int64_t kv_tokens_held() const;
  double kv_usage() const;
  uint64_t prefix_queries_tokens() const { return prefix_queries_tokens_; }
  uint64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }
  uint64_t prefix_queries_blocks() const { return prefix_queries_blocks_; }
  uint64_t prefix_hit_blocks() const { return prefix_hit_blocks_; }
  uint64_t steps() const { return steps_; }
  // Time integral of running sequences (occupied batch slots) up to now_us, in slot-us:
  // busy / (elapsed * max_num_seqs) is the utilisation over a window. Model time: a step
  // counts from its start to its end, so a late timer does not inflate it.
  double BusySlotUs(int64_t now_us) const;
  const EngineParams& params() const { return p_; }

 private:
  struct Seq {
    uint64_t id;
    int prompt_tokens;
    int uncached_tokens;
    int output_tokens;
    int generated = 0;
  };
  int CachedTokens(std::string_view prompt, int prompt_tokens);
  void StartStep(int64_t now_us);

  EngineParams p_;
  PrefixCache cache_;
  std::vector<uint64_t> hash_scratch_;
  std::vector<Seq> running_;
  std::deque<Seq> waiting_;
  int64_t kv_reserved_ = 0;  // prompt + output of running sequences (admission check)
  int64_t step_end_us_ = -1;
  uint64_t prefix_queries_tokens_ = 0, prefix_hit_tokens_ = 0;
  uint64_t prefix_queries_blocks_ = 0, prefix_hit_blocks_ = 0;
  uint64_t steps_ = 0;
  int64_t step_start_us_ = -1;  // start of the current step (valid while step_end_us_ >= 0)
  double busy_slot_us_ = 0;     // closed steps and cancelled partial steps
};

}  // namespace llmgw::mock
