// SPDX-License-Identifier: MIT
// rcukit/detail/backoff.hpp -- how rcukit waits for another thread when it
// holds no mutex to sleep on: spin, then yield, then spin again.
//
// The idea. A short wait (a lock held for a handful of stores, a seqcount
// write section, a notifier finishing its last instructions) is cheapest to
// spin through, telling the core we spin (cpu_relax: x86 PAUSE, arm64 YIELD)
// so the sibling hyperthread and the thread we wait for run faster. But in
// user space the thread we wait for can be preempted (lock-holder preemption
// is real on a 2-core machine), and then spinning only burns its CPU: after
// a bounded number of pauses the waiter yields the CPU and starts counting
// again.
//
// Invariants: (1) pause() never blocks for longer than one sched_yield();
// (2) a waiter that keeps failing yields at least once every kSpins + 1
// calls. Not supported: timed waits, fairness, parking (a wait with no bound
// on its length belongs on a mutex and condition variable, not here).
#pragma once

#include <thread>

namespace rcukit::detail {

// One pause of a spin-wait loop.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#else
  std::this_thread::yield();
#endif
}

// The state of one wait: call pause() once after every failed check.
class backoff {
 public:
  static constexpr unsigned kSpins = 64;  // pauses between two yields

  // Relaxes the CPU, or every (kSpins + 1)-th call yields it instead; returns
  // true when it yielded (a caller with a deadline checks it then).
  bool pause() noexcept {
    if (++spins_ > kSpins) {
      spins_ = 0;
      std::this_thread::yield();
      return true;
    }
    cpu_relax();
    return false;
  }
  // The wait is over (e.g. work arrived): the next pause() spins again.
  void reset() noexcept { spins_ = 0; }

 private:
  unsigned spins_ = 0;
};

// Returns once done() is true, pausing with backoff between checks.
// Blocking; the ordering of the wait is that of the loads inside done().
template <class Done>
void spin_until(Done done) noexcept(noexcept(done())) {
  backoff b;
  while (!done()) b.pause();
}

}  // namespace rcukit::detail
