// SPDX-License-Identifier: MIT
// rcukit/detail/executor_front_end.hpp -- the waiting and error bookkeeping
// that the executor's front ends (<rcukit/executor_front_ends.hpp>) share:
// a completion counter one owner waits on, and the first exception by index.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <utility>

#include "rcukit/detail/backoff.hpp"

namespace rcukit::detail {

// Completion counter for the front ends. Notifiers: ordered_transform's
// serial steps (one at a time) or parallel_chunks' helpers (concurrent); one
// owning thread waits, any number of times, the last time with wait_all()
// before the counter is destroyed.
//
// add_one() costs two uncontended read-modify-writes in the common case; it
// takes the mutex only when a waiter announced a target it has reached. Lost
// wake-up: the notifier increments `count` then loads `target` (K1, K2); a
// waiter stores `target` then loads `count` (T1, T2), all seq_cst: in the
// single total order one side sees the other, so either the waiter does not
// sleep or the notifier notifies, after taking the mutex the waiter holds
// from before its check until it sleeps. Lifetime: add_one() touches the
// counter after K1, so the final wait_all() also waits until `exited` (each
// notifier's last access, E1) has counted every notifier out; that wait is a
// bounded spin (detail/backoff.hpp) over the few instructions left in
// add_one(), not a park.
struct completion_counter {
  std::mutex mu;
  std::condition_variable cv;
  alignas(64) std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> exited{0};
  alignas(64) std::atomic<std::uint64_t> target{UINT64_MAX};  // written by the waiter only

  void add_one() {
    const std::uint64_t c = count.fetch_add(1, std::memory_order_seq_cst) + 1;  // (K1) pairs with T2
    if (c >= target.load(std::memory_order_seq_cst)) {                          // (K2) pairs with T1
      { std::lock_guard<std::mutex> g(mu); }  // the waiter is before its check (T2) or asleep
      cv.notify_all();
    }
    exited.fetch_add(1, std::memory_order_release);  // (E1) last access; pairs with E2
  }
  // Returns once count >= t. Owning thread only. The object must stay alive
  // afterwards (use wait_all() for the last wait before destroying it).
  void wait_for(std::uint64_t t) {
    // acquire: pairs with K1, so the finished steps' writes are visible.
    if (count.load(std::memory_order_acquire) >= t) return;
    std::unique_lock<std::mutex> l(mu);
    target.store(t, std::memory_order_seq_cst);  // (T1) pairs with K2
    // (T2) seq_cst: pairs with K1 (and acquire, like above).
    cv.wait(l, [&] { return count.load(std::memory_order_seq_cst) >= t; });
    target.store(UINT64_MAX, std::memory_order_relaxed);  // relaxed: only suppresses later notifications
  }
  // Returns once count >= t and t notifiers have left add_one(); with
  // exactly t notifiers in all, the object may then be destroyed.
  void wait_all(std::uint64_t t) {
    wait_for(t);
    // (E2) acquire: pairs with E1. Bounded: a notifier past K1 has only K2
    // and possibly a mutex hand-off left.
    spin_until([&] { return exited.load(std::memory_order_acquire) >= t; });
  }
};

// The first exception by index, for front ends that rethrow after finishing.
struct first_error {
  std::mutex mu;
  std::uint64_t index = UINT64_MAX;  // guarded by mu
  std::exception_ptr error;          // guarded by mu
  void record(std::uint64_t i, std::exception_ptr e) {
    std::lock_guard<std::mutex> g(mu);
    if (i < index) {
      index = i;
      error = std::move(e);
    }
  }
  void rethrow_if_any() {
    std::exception_ptr e;
    {
      std::lock_guard<std::mutex> g(mu);
      e = error;
    }
    if (e) std::rethrow_exception(e);
  }
};

}  // namespace rcukit::detail
