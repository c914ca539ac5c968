// RecentHistogram: a histogram over the last `window_ms` only, built from the data
// plane's cumulative (since-start) histograms. llmctl's and the dashboard's TTFT and
// latency quantiles come from here: a since-start histogram hides a recent change under
// hours of history (issue 16). Keeps one cumulative sample per second of the window and
// answers with the difference between the newest and the oldest one.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>

#include "common/shm.h"

namespace llmgw::cp {

class RecentHistogram {
 public:
  explicit RecentHistogram(uint64_t window_ms = 30000) : window_ms_(window_ms) {}

  // The cumulative histogram as of now_ms (monotonic milliseconds, non-decreasing).
  void Record(uint64_t now_ms, const shm::HistogramTotals& cumulative) {
    // Samples within one second of each other collapse into the later one: ~window/1 s
    // samples per histogram however fast the caller ticks.
    if (samples_.size() >= 2 && samples_.back().first / 1000 == now_ms / 1000)
      samples_.back() = {now_ms, cumulative};
    else
      samples_.emplace_back(now_ms, cumulative);
    // Keep the newest sample at or before the window's start as the baseline.
    while (samples_.size() >= 2 && samples_[1].first + window_ms_ <= now_ms) samples_.pop_front();
  }

  // Observations of the window (the newest sample minus the baseline). A count that went
  // backwards (the stats were reset) starts over from the newest sample.
  shm::HistogramTotals Recent() const {
    shm::HistogramTotals out;
    if (samples_.empty()) return out;
    const shm::HistogramTotals& now = samples_.back().second;
    const shm::HistogramTotals& then = samples_.front().second;
    if (samples_.size() == 1 || now.count < then.count || now.sum_us < then.sum_us) return out;
    for (uint32_t i = 0; i < shm::kHistBuckets; ++i) {
      if (now.buckets[i] < then.buckets[i]) return shm::HistogramTotals{};
      out.buckets[i] = now.buckets[i] - then.buckets[i];
    }
    out.count = now.count - then.count;
    out.sum_us = now.sum_us - then.sum_us;
    return out;
  }

  // The cumulative histogram jumped by history that is not news (a fleet gateway joined
  // with its since-start counts): every kept sample moves by the jump, so the window
  // keeps what it held and the joining history never shows as recent. The observations
  // of the current tick fall with it, as the other fleet deltas' re-baseline does.
  void Rebaseline(const shm::HistogramTotals& cumulative) {
    if (samples_.empty()) return;
    const shm::HistogramTotals now = samples_.back().second;
    if (cumulative.count < now.count || cumulative.sum_us < now.sum_us) {
      samples_.clear();  // went backwards: nothing to keep
      return;
    }
    for (uint32_t i = 0; i < shm::kHistBuckets; ++i)
      if (cumulative.buckets[i] < now.buckets[i]) {
        samples_.clear();
        return;
      }
    for (auto& [ms, h] : samples_) {
      for (uint32_t i = 0; i < shm::kHistBuckets; ++i) h.buckets[i] += cumulative.buckets[i] - now.buckets[i];
      h.count += cumulative.count - now.count;
      h.sum_us += cumulative.sum_us - now.sum_us;
    }
  }

  // Quantile q of the window in milliseconds; 0 when the window saw nothing.
  double QuantileMs(double q) const { return Recent().QuantileUs(q) / 1000.0; }
  uint64_t window_ms() const { return window_ms_; }

 private:
  uint64_t window_ms_;
  std::deque<std::pair<uint64_t, shm::HistogramTotals>> samples_;
};

}  // namespace llmgw::cp
