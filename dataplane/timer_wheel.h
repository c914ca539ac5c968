// TimerWheel: the loop's deadlines without scanning every connection. A hashed wheel of
// kSlots lists, each one tick wide; an object embeds a TimerNode and is scheduled at a
// millisecond deadline; Advance(now) visits only the slots whose ticks passed and fires the
// nodes that are due (a node whose deadline is more than one wheel turn away stays in its
// slot until its turn comes round). Intrusive doubly-linked lists: scheduling, moving and
// cancelling never allocate and cost a few pointer writes. A node may be cancelled or
// rescheduled from inside a fire callback, its own or another's.
#pragma once

#include <cstddef>
#include <cstdint>

namespace llmgw::dataplane {

struct TimerNode {
  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  uint64_t at_ms = 0;  // the deadline it is scheduled for (valid while linked)
  void* owner = nullptr;  // the object the node belongs to, for the fire callback
  bool linked() const { return next != nullptr; }
};

class TimerWheel {
 public:
  static constexpr uint32_t kSlots = 4096;  // power of two; 4096 x 10 ms = 41 s per turn

  explicit TimerWheel(uint32_t tick_ms = 10) : tick_ms_(tick_ms) {
    for (auto& s : slots_) s.prev = s.next = &s;
  }
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // The wheel's time starts at `now_ms` (before the first Schedule).
  void Start(uint64_t now_ms) { cur_tick_ = now_ms / tick_ms_; }

  // (Re)schedules `n` at `at_ms`; a deadline already passed fires at the next Advance.
  void Schedule(TimerNode* n, uint64_t at_ms) {
    if (n->linked()) Unlink(n);
    n->at_ms = at_ms;
    uint64_t tick = at_ms / tick_ms_;
    if (tick <= cur_tick_) tick = cur_tick_ + 1;
    LinkBefore(&slots_[tick & (kSlots - 1)], n);
    ++size_;
  }
  void Cancel(TimerNode* n) {
    if (n->linked()) Unlink(n);
  }

  // Fires every node due at `now_ms`: fire(node) is called with the node already
  // unlinked (reschedule it there if it should fire again).
  template <typename Fire>
  void Advance(uint64_t now_ms, Fire&& fire) {
    uint64_t now_tick = now_ms / tick_ms_;
    uint64_t last = cur_tick_ + kSlots < now_tick ? cur_tick_ + kSlots : now_tick;  // each slot once at most
    while (cur_tick_ < last) {
      ++cur_tick_;
      TimerNode* slot = &slots_[cur_tick_ & (kSlots - 1)];
      if (slot->next == slot) continue;
      // Move the slot's nodes to a local list: a callback may then cancel or reschedule
      // any of them safely (they are still linked, to `pending`).
      TimerNode pending;
      pending.next = slot->next;
      pending.prev = slot->prev;
      pending.next->prev = &pending;
      pending.prev->next = &pending;
      slot->next = slot->prev = slot;
      while (pending.next != &pending) {
        TimerNode* n = pending.next;
        Unlink(n);
        if (n->at_ms <= now_ms) {
          fire(n);
        } else {  // a later turn of the wheel (or a tick not reached yet): keep it
          uint64_t tick = n->at_ms / tick_ms_;
          if (tick <= now_tick) tick = now_tick + 1;
          LinkBefore(&slots_[tick & (kSlots - 1)], n);
          ++size_;
        }
      }
    }
    if (cur_tick_ < now_tick) cur_tick_ = now_tick;
  }

  size_t size() const { return size_; }

 private:
  static void LinkBefore(TimerNode* head, TimerNode* n) {
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
  }
  void Unlink(TimerNode* n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = nullptr;
    --size_;
  }

  uint32_t tick_ms_;
  uint64_t cur_tick_ = 0;
  size_t size_ = 0;
  TimerNode slots_[kSlots];
};

}  // namespace llmgw::dataplane
