// SPDX-License-Identifier: MIT
// src/executor_core.cpp -- the ordered executor's engine, the parts that
// are not on a job's path: construction and teardown, CPU-set changes, and
// drain(). The numbered invariants are in <rcukit/ordered_executor.hpp>,
// the tags (C1, R3, ...) in detail/executor_core.hpp.
#include <sched.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/cpu_set.hpp"
#include "rcukit/detail/executor_core.hpp"
#include "rcukit/detail/fatal.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

executor_core::executor_core(const executor_options& o, worker_loop loop)
    : loop_(loop),
      max_(o.max_in_flight),
      resume_at_(o.max_in_flight - 1 - o.max_in_flight / 4),
      on_full_(o.on_full),
      next_seq_(o.first_seq),
      release_seq_(o.first_seq) {
  std::size_t cap = 1;
  while (cap < max_) cap <<= 1;
  mask_ = cap - 1;
  ring_ = std::make_unique<ring_slot[]>(cap);
  for (std::size_t i = 0; i < cap; ++i) {
    // Invariant 7: before its first lap, index i holds "completed" for the
    // job one lap before the first job numbered there.
    const std::uint64_t first_here = o.first_seq + ((i - o.first_seq) & mask_);
    // relaxed: not shared yet (the workers start later, in update_cpus).
    ring_[i].claimed.store(first_here - cap, std::memory_order_relaxed);
  }
  next_release_ = o.first_seq;
  by_cpu_.assign(CPU_SETSIZE, nullptr);
  config_.store(new exec_config, std::memory_order_relaxed);  // relaxed: not shared yet
}

// The owner drained before. Invariant 5.
executor_core::~executor_core() {
  // A done() that released one of our jobs (or a late done() that was
  // absorbed) may still be running: wait for their read sides to end.
  rcu::synchronize<executor_rcu>();
  for (auto& w : all_) {
    w->quit.store(true, std::memory_order_seq_cst);  // (W4) read by the worker's sleep check (W2)
    rouse(*w);
  }
  for (auto& w : all_) w->thread.join();
  delete config_.load(std::memory_order_relaxed);  // relaxed: no other thread is left
}

absl::Status executor_core::set_cpus_locked(const cpu_set& s) {
  if (s.empty()) return absl::InvalidArgumentError("ordered_executor: empty CPU set");
  const cpu_set allowed = cpu_set::all();
  for (int c : s) {
    if (c < 0 || c >= CPU_SETSIZE || !allowed.contains(c)) {
      return absl::InvalidArgumentError("ordered_executor: CPU " + std::to_string(c) +
                                        " is not usable by this process");
    }
  }
  std::vector<std::unique_ptr<executor_worker>> fresh;
  for (int c : s) {
    if (by_cpu_[static_cast<std::size_t>(c)] != nullptr) continue;
    absl::StatusOr<std::unique_ptr<executor_worker>> w = make_worker(c);
    if (!w.ok()) {
      for (auto& f : fresh) stop_worker(*f);
      return w.status();
    }
    fresh.push_back(*std::move(w));
  }
  auto* nc = new exec_config;
  nc->cpus = s.ids();
  for (auto& f : fresh) by_cpu_[static_cast<std::size_t>(f->cpu)] = f.get();
  for (auto& f : fresh) all_.push_back(std::move(f));
  for (int c : s) nc->workers.push_back(by_cpu_[static_cast<std::size_t>(c)]);
  // (C2) release: publishes nc's contents; pairs with C1 in submit().
  exec_config* old = config_.exchange(nc, std::memory_order_acq_rel);
  rcu::retire<executor_rcu>(old);
  cpus_ = s;
  return absl::OkStatus();
}

cpu_set executor_core::cpus() const {
  std::lock_guard<std::mutex> g(cfg_mu_);
  return cpus_;
}

void executor_core::drain(const call_site& where) {
  if (on_own_thread()) {
    fatal("ordered_executor", "drain() called from inside a job (one of the executor's own threads)", where);
  }
  // acquire: pairs with S1; every job numbered below target has been assigned.
  const std::uint64_t target = next_seq_.load(std::memory_order_acquire);
  wait_until(drain_waiters_, [&] {
    // seq_cst: pairs with the seq_cst store (R3) and the drain_waiters_ Dekker.
    const std::uint64_t r = release_seq_.load(std::memory_order_seq_cst);
    return static_cast<std::int64_t>(r - target) >= 0;  // wrap-safe (64-bit sequence)
  });
  // Every job below target is on a serial list now; wait for those lists.
  std::vector<std::pair<executor_worker*, std::uint64_t>> snap;
  {
    std::lock_guard<std::mutex> g(cfg_mu_);
    for (auto& w : all_) {
      // acquire: ordered after R3 (read above), which the drainer stored after
      // these counters.
      snap.emplace_back(w.get(), w->ser_pushed.load(std::memory_order_acquire));
    }
  }
  wait_until(drain_waiters_, [&] {
    for (auto& [w, n] : snap) {
      // seq_cst: pairs with D0 and the drain_waiters_ Dekker.
      if (w->ser_done.load(std::memory_order_seq_cst) < n) return false;
    }
    return true;
  });
}

}  // namespace rcukit::detail
