// SPDX-License-Identifier: MIT
// rcukit/detail/rcu_poll.hpp -- polled grace periods: "has a full grace
// period elapsed since I asked?", without a callback per object.
//
// The idea (the kernel's get_state_synchronize_rcu / poll_state_synchronize_rcu,
// which liburcu 0.13 lacks): one process-wide chain of RCU callbacks per
// flavour counts completed grace periods. start() returns a cookie and makes
// sure the chain runs; done(cookie) is true once a grace period that began
// after start() has ended. A structure that recycles its own nodes (the
// skiplist's node pool) stamps a batch of removed nodes with a cookie and
// reuses them once done() says so: one shared write per batch, no rcu_head
// per node, no callback that outlives the structure.
//
// Why cookie = completed + 2: a callback already in flight when start() runs
// may have begun its grace period before the call; the one queued after it
// began its grace period after the call. Every chain callback acquires the
// readers' clocks (rcu.hpp's callback trampolines) and then stores
// `completed` with release; done() loads it with acquire, so a thread that
// sees done() also happens-after every read side the grace period waited for
// (what ThreadSanitizer needs to accept the reuse).
//
// Invariants: (1) at most one chain callback is queued at a time
// (`in_flight`); (2) while requested > completed, a callback is queued or
// about to be (start() and the callback each re-check the other's flag,
// Dekker-style, so neither can leave the chain idle with work pending);
// (3) completed only grows.
// Not supported: waiting (there is no sleep-until-done; callers poll).
#pragma once

#include <atomic>
#include <cstdint>

#include "rcukit/rcu.hpp"

namespace rcukit::rcu::detail {

template <class F>
class gp_poll {
 public:
  // A cookie for done(). Wait-free apart from liburcu's call_rcu enqueue
  // when the chain is idle. Callable inside or outside a read side.
  static uint64_t start() noexcept {
    const uint64_t c = cookie();
    request(c);
    return c;
  }
  // A cookie without asking for a grace period yet: done(c) becomes true
  // only after request(c) (by anyone) and the grace periods it starts.
  // Lets a caller stamp many things cheaply and ask only when it needs them.
  static uint64_t cookie() noexcept {
    // acquire: pairs with the release increment in run(); a later done()
    // compares against a count at least this recent.
    return completed_.load(std::memory_order_acquire) + 2;
  }
  // Makes sure the chain runs until done(c).
  static void request(uint64_t c) noexcept {
    uint64_t r = requested_.load(std::memory_order_relaxed);
    // seq_cst: ordered before the in_flight_ load in kick() (invariant 2).
    while (r < c && !requested_.compare_exchange_weak(r, c, std::memory_order_seq_cst)) {
    }
    kick();
  }
  // True once a grace period that began after the start() that returned c
  // has ended. acquire: pairs with the release increment in run() (see top).
  static bool done(uint64_t c) noexcept { return completed_.load(std::memory_order_acquire) >= c; }

 private:
  struct node : retirable {};
  static void kick() noexcept {
    // seq_cst (both): pair with the callback's store of false and its
    // re-check of requested_ (invariant 2).
    if (in_flight_.load(std::memory_order_seq_cst)) return;
    bool idle = false;
    if (in_flight_.compare_exchange_strong(idle, true, std::memory_order_seq_cst)) queue();
  }
  static void queue() noexcept { rcu::retire_with<&gp_poll::run, F>(&node_); }
  // The chain callback: one grace period has ended.
  static void run(node*) noexcept {
    // release: pairs with the acquire loads in start()/done(); everything the
    // trampoline acquired (the readers' clocks) is carried to those threads.
    const uint64_t now = completed_.fetch_add(1, std::memory_order_release) + 1;
    // seq_cst: see kick().
    if (requested_.load(std::memory_order_seq_cst) > now) {
      queue();  // still in flight (invariant 1)
      return;
    }
    in_flight_.store(false, std::memory_order_seq_cst);
    if (requested_.load(std::memory_order_seq_cst) > now) kick();
  }

  static inline std::atomic<uint64_t> completed_{0};
  static inline std::atomic<uint64_t> requested_{0};
  static inline std::atomic<bool> in_flight_{false};
  static inline node node_{};
};

}  // namespace rcukit::rcu::detail
