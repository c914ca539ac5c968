// Loop: ring set-up and the provided receive buffers; see loop.h.
#include "dataplane/loop.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace llmgw::dataplane {

Loop::~Loop() {
  if (ok_) io_uring_queue_exit(&ring_);
  std::free(buf_ring_);
  std::free(recv_bufs_);
}

Status Loop::Init(const Options& o) {
  o_ = o;
  // The ring belongs to one thread alone. Where the kernel allows, say so:
  // SINGLE_ISSUER + DEFER_TASKRUN run completion work only when the loop waits for it
  // (no interrupts of the thread, completions batched), COOP_TASKRUN at least avoids
  // the inter-processor interrupt. The ring starts disabled because Init() runs on the
  // main thread and the loop on its own: the thread enabling it becomes its issuer.
  static constexpr struct {
    unsigned flags;
    const char* name;
  } kSetups[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED,
       "single_issuer+defer_taskrun"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, "coop_taskrun"},
      {0, "plain"},
  };
  io_uring_params p{};
  int r = -EINVAL;
  for (const auto& setup : kSetups) {
    p = io_uring_params{};
    // A larger completion queue than the default 2x: with thousands of streams a loop
    // turn can collect more completions than that, and overflow takes a slow path.
    p.flags = setup.flags | IORING_SETUP_CQSIZE;
    p.cq_entries = o_.cq_entries;
    r = io_uring_queue_init_params(o_.entries, &ring_, &p);
    if (r == 0) {
      mode_ = setup.name;
      disabled_ = setup.flags & IORING_SETUP_R_DISABLED;
      break;
    }
    if (r != -EINVAL) break;  // not a question of flags
  }
  if (r < 0) return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "io_uring_queue_init: %s", strerror(-r));
  ok_ = true;
  if (!(p.features & IORING_FEAT_EXT_ARG))
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false,
                 "kernel io_uring lacks IORING_FEAT_EXT_ARG (needs Linux >= 5.11)");
  return SetupRecvBuffers();
}

Status Loop::EnableOnThisThread() {
  if (!disabled_) return Status::Ok();
  // liburing 2.3 declares io_uring_enable_rings() but its library lacks it.
  long r = ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  if (r < 0) return Error(ErrorKind::kIo, ErrorSide::kInternal, false, "enabling the io_uring: %s", strerror(errno));
  disabled_ = false;
  return Status::Ok();
}

Status Loop::SetupRecvBuffers() {
  size_t ring_bytes = o_.recv_buf_count * sizeof(io_uring_buf);
  void* ring_mem = nullptr;
  void* bufs = nullptr;
  if (posix_memalign(&ring_mem, 4096, ring_bytes) != 0 ||
      posix_memalign(&bufs, 4096, static_cast<size_t>(o_.recv_buf_count) * o_.recv_buf_size) != 0) {
    std::free(ring_mem);
    return Error(ErrorKind::kInternal, ErrorSide::kInternal, false, "out of memory for receive buffers");
  }
  std::memset(ring_mem, 0, ring_bytes);
  buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
  recv_bufs_ = static_cast<char*>(bufs);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring_);
  reg.ring_entries = o_.recv_buf_count;
  reg.bgid = o_.recv_buf_group;
  int r = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (r < 0) {
    return Error(ErrorKind::kIo, ErrorSide::kInternal, false,
                 "io_uring provided buffer rings unavailable (%s); llmgw needs Linux >= 6.0", strerror(-r));
  }
  io_uring_buf_ring_init(buf_ring_);
  for (uint32_t i = 0; i < o_.recv_buf_count; ++i)
    io_uring_buf_ring_add(buf_ring_, RecvBuf(i), o_.recv_buf_size, static_cast<unsigned short>(i),
                          io_uring_buf_ring_mask(o_.recv_buf_count), static_cast<int>(i));
  io_uring_buf_ring_advance(buf_ring_, o_.recv_buf_count);
  return Status::Ok();
}

}  // namespace llmgw::dataplane
