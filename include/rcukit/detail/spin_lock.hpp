// SPDX-License-Identifier: MIT
// rcukit/detail/spin_lock.hpp -- a small test-and-test-and-set spin lock.
//
// The idea: the kernel's leaf locks are spinlocks held for a handful of
// stores; a user-space mutex would cost a syscall on contention. We spin on a
// relaxed load (no cache-line ping-pong while the lock is held) with the
// common backoff (detail/backoff.hpp: relax, then yield the CPU, because in
// user space the holder can be preempted).
//
// Invariants: (1) lock() returns only once the flag went false->true by this
// thread's exchange (acquire); (2) unlock() is a release store of false, so
// everything written under the lock happens-before the next owner's critical
// section. Not supported: recursion, fairness, timed waits.
#pragma once

#include <atomic>

#include "rcukit/detail/backoff.hpp"

namespace rcukit::detail {

class spin_lock {
 public:
  // Blocking; not wait-free (spins, then yields). Never allocates.
  void lock() noexcept {
    for (;;) {
      // acquire: pairs with the release store in unlock().
      if (!flag_.exchange(true, std::memory_order_acquire)) return;
      // relaxed: only a hint that the lock may be free; the exchange above orders.
      spin_until([&] { return !flag_.load(std::memory_order_relaxed); });
    }
  }
  bool try_lock() noexcept {
    // relaxed pre-check avoids a write when held; acquire on success pairs with unlock().
    return !flag_.load(std::memory_order_relaxed) && !flag_.exchange(true, std::memory_order_acquire);
  }
  // release: pairs with the acquire exchange in lock()/try_lock().
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

}  // namespace rcukit::detail
