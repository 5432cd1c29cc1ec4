// SPDX-License-Identifier: MIT
// rcukit/detail/executor_worker.hpp -- the loop every worker thread of an
// ordered executor runs: its serial list first (that gives in-flight slots
// back), then its parallel list, then a short poll, then sleep (W1/W2). The
// numbered invariants are in <rcukit/ordered_executor.hpp>, the tags (Q2,
// W1, D0, ...) in detail/executor_core.hpp.
//
// Inline, not in src/: the loop calls the user's parallel() and serial()
// and (through done()) the reorder step, and compiled with the code that
// defines the jobs it can devirtualize and inline them (docs/DESIGN.md has
// the measurement). The facade hands run_worker to the engine, whose thread
// creation (src/executor_threads.cpp) starts each worker in it.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>

#include "rcukit/detail/backoff.hpp"
#include "rcukit/detail/executor_core.hpp"
#include "rcukit/ordered_job.hpp"

namespace rcukit::detail {

inline void executor_core::run(executor_worker& w) {
  // An idle worker polls its lists for up to kSpinFor before it sleeps: long
  // enough to cover a submitter's wake-up latency between bursts, short
  // enough not to steal a loaded machine's CPU for long.
  using clock = std::chrono::steady_clock;
  constexpr auto kSpinFor = std::chrono::microseconds(50);
  bool idle = false;
  backoff idle_wait;
  clock::time_point idle_since{};
  for (;;) {
    bool worked = run_serials(w) != 0;
    if (ordered_job* j = w.par_q.take_all()) {
      worked = true;
      const clock::time_point t0 = clock::now();
      std::uint64_t steps = 0;  // parallel and serial steps run in this list
      while (j != nullptr) {
        ordered_job* next = j->next_;  // read before user code (queue invariant 3)
        run_parallel(j);
        ++steps;
        // relaxed: single writer, heuristic (pick_worker).
        w.par_run.store(w.par_run.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        j = next;
        if (w.ser_q.maybe_nonempty()) steps += run_serials(w);  // serial first: frees in-flight slots
      }
      // Time per step in this list, smoothed: pick_worker's estimate of how
      // long a backlog takes to drain (a parallel job dealt to the callback
      // worker brings its serial step along, so steps are the right unit).
      // Two clock reads per list, none per job.
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0);
      const std::uint64_t per = static_cast<std::uint64_t>(ns.count()) / steps;
      const std::uint64_t old = w.par_ns.load(std::memory_order_relaxed);  // relaxed: single writer
      w.par_ns.store(old == 0 ? per : (3 * old + per) / 4,
                     std::memory_order_relaxed);  // relaxed: heuristic
    }
    if (worked) {
      idle = false;
      continue;
    }
    if (w.quit.load(std::memory_order_acquire)) return;  // acquire: pairs with W4
    if (!idle) {
      idle = true;
      idle_wait.reset();
      idle_since = clock::now();
    }
    // Poll again after a pause. Every backoff::kSpins polls the pause yields
    // instead, so that a runnable thread sharing this CPU (typically the
    // submitter: workers are pinned, submitters are not) runs instead of us:
    // an idle poll must not take CPU time from the thread that feeds it
    // (the yield returns at once when nothing else is runnable). Only then
    // is the clock read.
    if (!idle_wait.pause() || clock::now() - idle_since < kSpinFor) continue;
    idle = false;
    // (W1) seq_cst: announce sleep before the final look (W2); pairs with
    // the pushers' Q1 + W3 (store-buffering: one side sees the other).
    w.sleeping.store(1, std::memory_order_seq_cst);
    // (W2)
    if (!w.par_q.empty_seq_cst() || !w.ser_q.empty_seq_cst() || w.quit.load(std::memory_order_seq_cst)) {
      w.sleeping.store(0, std::memory_order_relaxed);  // relaxed: only this thread's own flag
      continue;
    }
    std::unique_lock<std::mutex> l(w.mu);
    while (w.sleeping.load(std::memory_order_relaxed) != 0) w.cv.wait(l);  // relaxed: under mu
  }
}

// In-flight slots and the ser_done count are given back once per kGiveBack
// serial steps and at the end of the list (see kGiveBack).
inline std::uint64_t executor_core::run_serials(executor_worker& w) {
  ordered_job* j = w.ser_q.take_all();  // (Q2)
  if (j == nullptr) return 0;
  std::uint64_t ran = 0;
  std::uint64_t finished = 0;
  while (j != nullptr) {
    ordered_job* next = j->next_;  // queue invariant 3
    // (J3) release: pairs with J2 in a later submit() of this job: every
    // read of the job by the executor is above this line, and the job may be
    // submitted again from here on (from inside serial() too).
    j->in_flight_.store(false, std::memory_order_release);
    try {
      j->serial();
    } catch (...) {
      serial_errors_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
    }
    // Invariant 4: j is the user's again.
    j = next;
    ++ran;
    if (++finished == kGiveBack) {
      give_back(w, finished);
      finished = 0;
    }
  }
  if (finished != 0) give_back(w, finished);
  return ran;
}

inline void executor_core::give_back(executor_worker& w, std::uint64_t n) {
  // (D0) seq_cst: single writer; read by drain() (Dekker with drain_waiters_).
  w.ser_done.store(w.ser_done.load(std::memory_order_relaxed) + n, std::memory_order_seq_cst);
  // (D1) seq_cst: gives the slots back; release for the ring argument, and
  // Dekker with a blocked submitter's predicate.
  const std::uint64_t left = in_flight_.fetch_sub(n, std::memory_order_seq_cst) - n;
  notify_if(drain_waiters_);
  if (left <= resume_at_) notify_if(submit_waiters_);
}

inline void executor_core::run_parallel(ordered_job* j) {
  // Read first: once done() has been called, on whatever thread, the job
  // may reach serial() and be freed while parallel() still runs.
  const std::uint64_t seq = j->seq_;
  try {
    j->parallel();
  } catch (...) {
    parallel_errors_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
    // Invariant 7. Lost: a done() (on any thread, before or during the
    // throw) completed the job, which is no longer ours: drop the
    // exception, touch nothing. Won: no done() has completed it and none
    // will (a later one is absorbed), so the job is still ours.
    if (claim(seq)) {
      j->error_ = std::current_exception();
      complete_unguarded(j);  // a worker: no read side needed (see done())
    }
  }
}

// A worker thread's body after it was pinned (executor_core::worker_loop).
inline void run_worker(executor_worker& w) { w.core->run(w); }

}  // namespace rcukit::detail
