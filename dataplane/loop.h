// Loop: one data-plane thread's io_uring and what hangs off it: the ring (set up with the
// strongest single-thread flags the kernel takes), submission slots, the provided
// receive-buffer ring for multishot recv, the wait that hands each completion's user data
// to the caller (the worker's tags name the object and operation it completes), and the
// TimerWheel of deadlines. The worker owns one; nothing here knows HTTP.
#pragma once

#include <liburing.h>

#include <cstdint>

#include "common/error.h"
#include "dataplane/timer_wheel.h"

namespace llmgw::dataplane {

class Loop {
 public:
  struct Options {
    uint32_t entries = 4096;     // submission queue
    uint32_t cq_entries = 16384;
    uint32_t recv_buf_count = 1024;  // power of two
    uint32_t recv_buf_size = 4096;
    uint16_t recv_buf_group = 1;
  };

  Loop() = default;
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  ~Loop();

  // Creates the ring (disabled when the kernel takes SINGLE_ISSUER: the thread that calls
  // EnableOnThisThread becomes its issuer) and registers the receive buffers.
  Status Init(const Options& o);
  Status Init() { return Init(Options{}); }
  // On the thread that runs the loop, before its first submission.
  Status EnableOnThisThread();

  // A submission slot (submits what is queued when the queue is full).
  io_uring_sqe* Sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (!s) {
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    return s;
  }
  void Submit() { io_uring_submit(&ring_); }

  // Provided receive buffers: a multishot recv with IOSQE_BUFFER_SELECT and this group
  // gets buffer `bid` in its completion's flags; the caller gives it back when done.
  uint16_t recv_buf_group() const { return o_.recv_buf_group; }
  uint32_t recv_buf_size() const { return o_.recv_buf_size; }
  char* RecvBuf(uint32_t bid) { return recv_bufs_ + static_cast<size_t>(bid) * o_.recv_buf_size; }
  void ReturnRecvBuf(uint32_t bid) {
    io_uring_buf_ring_add(buf_ring_, RecvBuf(bid), o_.recv_buf_size, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(o_.recv_buf_count), 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
  }

  // Submits what is queued, waits up to `timeout_ms` for at least one completion, calls
  // woke() once, then handle(user_data, res, flags) for each completion there. False on a
  // ring error (the loop cannot go on); a timeout or a signal is not one.
  template <typename Woke, typename Handle>
  bool Wait(uint32_t timeout_ms, Woke&& woke, Handle&& handle, int* error = nullptr) {
    __kernel_timespec ts{0, static_cast<long long>(timeout_ms) * 1000000};
    io_uring_cqe* cqe = nullptr;
    int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    woke();
    if (r < 0 && r != -ETIME && r != -EINTR) {
      if (error) *error = -r;
      return false;
    }
    unsigned head;
    unsigned count = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++count;
      handle(cqe->user_data, cqe->res, cqe->flags);
    }
    io_uring_cq_advance(&ring_, count);
    return true;
  }

  TimerWheel& timers() { return timers_; }
  io_uring* ring() { return &ring_; }
  const char* mode() const { return mode_; }
  uint64_t cq_overflow() const { return ok_ ? *ring_.cq.koverflow : 0; }

 private:
  Status SetupRecvBuffers();

  Options o_;
  io_uring ring_{};
  bool ok_ = false;
  bool disabled_ = false;  // created with R_DISABLED; enabled by the loop's thread
  const char* mode_ = "plain";
  io_uring_buf_ring* buf_ring_ = nullptr;
  char* recv_bufs_ = nullptr;
  TimerWheel timers_;
};

}  // namespace llmgw::dataplane
