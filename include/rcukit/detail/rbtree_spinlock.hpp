// rcukit/detail/rbtree_spinlock.hpp -- the one global lock of the rbtree
// baselines.
//
// The idea: a test-and-test-and-set spinlock, the user-space stand-in for the
// kernel's spin_lock_irqsave(&iovad->iova_rbtree_lock) that the 2013 IOVA
// allocator took around every operation. Waiters spin on a plain load (no
// cache-line ping-pong), with a pause hint, and yield the CPU after a bounded
// number of spins: in user space the holder can be preempted (the kernel
// disabled interrupts and preemption instead), and on a 2-core machine pure
// spinning behind a preempted holder would burn whole time slices.
//
// Invariants: (1) at most one holder; (2) unlock() happens-before the next
// successful lock() (release/acquire on locked_).
// Not supported: fairness (no ticket order), recursion, try-with-timeout.
#pragma once

#include <atomic>
#include <thread>

namespace rcukit::detail {

class rb_spinlock {
 public:
  // Blocking (spins, then yields). Not recursive.
  void lock() noexcept {
    for (;;) {
      // acquire: pairs with the release store in unlock(), so the previous
      // holder's writes to the tree are visible to us.
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      int spins = 0;
      // relaxed: only a hint that the lock looks free; the exchange above
      // carries the ordering.
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 128) {
          cpu_relax();
        } else {
          std::this_thread::yield();
          spins = 0;
        }
      }
    }
  }
  // release: pairs with the acquire exchange in lock().
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
  }
  std::atomic<bool> locked_{false};
};

// RAII holder.
class rb_lock_guard {
 public:
  explicit rb_lock_guard(rb_spinlock& l) noexcept : l_(l) { l_.lock(); }
  ~rb_lock_guard() { l_.unlock(); }
  rb_lock_guard(const rb_lock_guard&) = delete;
  rb_lock_guard& operator=(const rb_lock_guard&) = delete;

 private:
  rb_spinlock& l_;
};

}  // namespace rcukit::detail
