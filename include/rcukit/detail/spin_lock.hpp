// rcukit/detail/spin_lock.hpp -- a small test-and-test-and-set spin lock.
//
// The idea: the kernel's leaf locks are spinlocks held for a handful of
// stores; a user-space mutex would cost a syscall on contention. We spin on a
// relaxed load (no cache-line ping-pong while the lock is held) and yield the
// CPU after a bounded number of spins, because in user space the holder can be
// preempted (lock-holder preemption is real on a 2-core machine).
//
// Invariants: (1) lock() returns only once the flag went false->true by this
// thread's exchange (acquire); (2) unlock() is a release store of false, so
// everything written under the lock happens-before the next owner's critical
// section. Not supported: recursion, fairness, timed waits.
#pragma once

#include <atomic>
#include <thread>

namespace rcukit::detail {

// One pause of a spin-wait loop: tells the core we are spinning (x86 PAUSE,
// arm64 YIELD) so the sibling hyperthread and the lock holder run faster.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#else
  std::this_thread::yield();
#endif
}

class spin_lock {
 public:
  // Blocking; not wait-free (spins, then yields). Never allocates.
  void lock() noexcept {
    for (;;) {
      // acquire: pairs with the release store in unlock().
      if (!flag_.exchange(true, std::memory_order_acquire)) return;
      int spins = 0;
      // relaxed: only a hint that the lock may be free; the exchange above orders.
      while (flag_.load(std::memory_order_relaxed)) {
        if (++spins > 64) {
          std::this_thread::yield();
          spins = 0;
        } else {
          cpu_relax();
        }
      }
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
