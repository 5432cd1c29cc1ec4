// SPDX-License-Identifier: MIT
// rcukit/detail/executor_core.hpp -- the padata engine behind <rcukit/ordered_executor.hpp>.
//
// What every job pays for (submit, submit_batch, done and the reorder step a
// done() may run) is defined here, inline, so it compiles into the caller's
// code, and so is the workers' loop (detail/executor_worker.hpp), which runs
// the user's parallel() and serial(); the rest (construction, CPU-set
// changes, drain, creating and pinning the worker threads) is declared here
// and compiled once in src/ (rcukit::runtime, docs/DESIGN.md).
// Includes only the vocabulary headers (cpu_set, ordered_job, rcu) and
// other detail files.
//
// The idea, the source and the numbered invariants (1)-(7) are in the header
// essay; this file refers to them. Atomic accesses are tagged (S1), (R1), ...
// and name their partner.
//
// Threads and what they own:
//  * submitters: reserve an in-flight slot (in_flight_), take a sequence
//    number (next_seq_), push onto a worker's parallel list. The front
//    ends' submit_batch does each of the three once for up to 16 jobs.
//  * worker (one per CPU ever in the set, pinned, immortal until the
//    destructor): runs its serial list first (that frees in-flight slots),
//    then its parallel list; spins briefly, then sleeps on its own condition
//    variable after announcing `sleeping` (Dekker with the pushers).
//  * any thread in done(): stores the job in the reorder ring and maybe
//    becomes the single drainer (pending_ election), which owns
//    next_release_ and the workers' ser_pushed counters, and pushes each run
//    of ready jobs with one callback worker as one chain.
//  * a worker gives in-flight slots back (in_flight_, ser_done) once per
//    kGiveBack serial steps and at the end of each list it took.
//
// Why the ring cannot overflow (invariant 1). Let t be a job and s = t - cap.
// Reservation precedes seq assignment in every submit (a batch reserves all
// its slots in one CAS before its one fetch_add on next_seq_; counting slots
// instead of CAS operations, the argument below is unchanged); decrements follow
// serial(), which follows release, which is in seq order. If s were not yet
// released when t stores into the ring, then no job in s..t-1 has released
// its in-flight slot before the last of the cap + 1 reservations of s..t in
// in_flight_'s modification order (otherwise, through the acq_rel chains on
// in_flight_ and next_seq_ (S1), s's release would happen before t's store),
// so that reservation saw cap >= max_in_flight jobs in flight and failed.
// The check in complete_unguarded() turns any violation (e.g. a job
// submitted again while still in flight) into an abort with a message
// rather than silent corruption.
//
// Why the claim word decides completion (invariant 7). ring_slot::claimed
// holds the sequence number last completed at its index. By the argument
// above, job t - cap was released (so its claim happened) before t was even
// numbered, and t + cap cannot be numbered before t is released; so while t
// is unclaimed the word holds exactly t - cap, and afterwards t or a later
// lap. claim(t) is the compare-exchange t - cap -> t: of t's first done()
// and the executor's completion after a throw, exactly one succeeds.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/cpu_set.hpp"
#include "rcukit/detail/executor_queue.hpp"
#include "rcukit/detail/fatal.hpp"
#include "rcukit/ordered_job.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit {
namespace detail {

using executor_rcu = rcu::memb;

// One entry of the reorder ring (invariants 1 and 7).
struct ring_slot {
  std::atomic<ordered_job*> job{nullptr};  // a completed job waiting for release (R1/R2)
  std::atomic<std::uint64_t> claimed{0};   // the sequence number last completed here (C3)
};

struct executor_worker {
  executor_core* core = nullptr;
  int cpu = -1;
  std::thread thread;
  mpsc_list<ordered_job> par_q;  // many producers (submit), this worker consumes
  mpsc_list<ordered_job> ser_q;  // producer: the drainer role (one at a time)

  alignas(64) std::atomic<int> sleeping{0};  // 1 while the worker is about to sleep or asleep
  std::atomic<bool> quit{false};
  std::mutex mu;  // guards the sleep hand-shake and the pin result
  std::condition_variable cv;
  int pin_rc = -1;      // guarded by mu: result of pin_this_thread()
  bool pinned = false;  // guarded by mu

  // Parallel backlog estimate for submit_batch's dealing (a heuristic: any
  // value is safe). par_pushed: added to by batching submitters; par_run:
  // written by this worker only, once per parallel() it ran.
  alignas(64) std::atomic<std::uint64_t> par_pushed{0};
  alignas(64) std::atomic<std::uint64_t> par_run{0};
  std::atomic<std::uint64_t> par_ns{0};  // recent time per step of this worker (ns); written by it only

  alignas(64) std::atomic<std::uint64_t> ser_pushed{0};  // written by the drainer only
  alignas(64) std::atomic<std::uint64_t> ser_done{0};    // written by this worker only
};

// Immutable snapshot of the CPU set, published by set_cpus() and read by
// submit() under an RCU read side; old snapshots are retired.
struct exec_config : rcu::retirable {
  std::vector<int> cpus;                  // sorted
  std::vector<executor_worker*> workers;  // workers[i] is pinned to cpus[i]
  executor_worker* find(int cpu) const {
    auto it = std::lower_bound(cpus.begin(), cpus.end(), cpu);
    if (it == cpus.end() || *it != cpu) return nullptr;
    return workers[static_cast<std::size_t>(it - cpus.begin())];
  }
};

inline thread_local executor_worker* tls_worker = nullptr;  // the worker this thread is, if any

class executor_core {
 public:
  // Parallel halves go to the workers round-robin in runs of kRun consecutive
  // sequence numbers (padata deals them one by one): a run keeps a worker's
  // queue, the ring slots and the callback lists warm on one CPU, which is
  // what tiny jobs pay for; big jobs are still spread evenly.
  static constexpr std::uint64_t kRun = 8;

  // What a worker thread runs once pinned: run_worker
  // (detail/executor_worker.hpp), handed over by the facade so that the
  // loop is compiled with the caller's code, not in src/.
  using worker_loop = void (*)(executor_worker&);

  // Compiled (src/executor_core.cpp): construction and teardown are cold.
  executor_core(const executor_options& o, worker_loop loop);
  // The owner drained before. Invariant 5.
  ~executor_core();

  bool running() const { return running_.load(std::memory_order_relaxed); }
  void set_running(bool on) {
    // seq_cst: a submitter blocked in wait_until() re-reads it (pairs with the
    // seq_cst load in its predicate through notify_if()).
    running_.store(on, std::memory_order_seq_cst);
    notify_if(submit_waiters_);
  }

  // Applies edit(current set) -> new set atomically with respect to other
  // set_cpus/add_cpu/remove_cpu calls.
  template <class Edit>
  absl::Status update_cpus(Edit edit) {
    std::lock_guard<std::mutex> g(cfg_mu_);
    absl::StatusOr<cpu_set> s = edit(cpus_);
    if (!s.ok()) return s.status();
    return set_cpus_locked(*s);
  }

 private:
  // Validates s, creates and pins the workers it lacks, publishes the new
  // snapshot (C2). Under cfg_mu_. Compiled (src/executor_core.cpp).
  absl::Status set_cpus_locked(const cpu_set& s);

 public:
  cpu_set cpus() const;  // compiled (src/executor_core.cpp)

  bool on_own_thread() const { return tls_worker != nullptr && tls_worker->core == this; }

  absl::Status submit(ordered_job& j, int cb_cpu) {
    // (J2) acquire: pairs with J3, the release store before the previous
    // submission's serial() started, so the executor's last reads of the job
    // (its list link, its callback worker) happen before the writes below.
    // Of two submits of one job exactly one reads false (one modification
    // order); the loser has touched nothing.
    if (j.in_flight_.exchange(true, std::memory_order_acquire)) {
      return absl::FailedPreconditionError(
          "ordered_executor: job submitted again while in flight (its serial() has not started)");
    }
    absl::Status st = submit_marked(j, cb_cpu);
    // relaxed: nothing was queued, the job stays the caller's; this thread
    // set the flag and nobody else reads the job.
    if (!st.ok()) j.in_flight_.store(false, std::memory_order_relaxed);
    return st;
  }

 private:
  // submit() once the job is marked in flight.
  absl::Status submit_marked(ordered_job& j, int cb_cpu) {
    for (;;) {
      // relaxed: start/stop only gate new submissions; no data is published by it.
      if (!running_.load(std::memory_order_relaxed)) {
        return absl::FailedPreconditionError("ordered_executor: stopped");
      }
      {
        rcu::read_guard<executor_rcu> guard;  // keeps the snapshot alive
        // (C1) acquire: pairs with C2, the snapshot's contents are visible.
        const exec_config* c = config_.load(std::memory_order_acquire);
        executor_worker* cb = c->find(cb_cpu);
        if (cb == nullptr) {
          return absl::InvalidArgumentError("ordered_executor: callback CPU " + std::to_string(cb_cpu) +
                                            " is not in the CPU set");
        }
        if (try_reserve_up_to(1) == 1) {
          // (S1) acq_rel: chains submitters so that the ring-overflow argument
          // at the top of this file holds; the value is the job's sequence.
          const std::uint64_t seq = next_seq_.fetch_add(1, std::memory_order_acq_rel);
          j.core_ = this;
          j.cb_worker_ = cb;
          j.seq_ = seq;
          j.error_ = nullptr;
          // (J0) relaxed: a new submission; published with the fields above by Q1.
          j.done_called_.store(false, std::memory_order_relaxed);
          executor_worker* pw = dealt(*c, seq, kRun);
          pw->par_pushed.fetch_add(1, std::memory_order_relaxed);  // relaxed: heuristic (pick_worker)
          pw->par_q.push(&j);  // (Q1) publishes the fields above to the worker
          wake(*pw);
          return absl::OkStatus();
        }
      }
      if (on_full_ == when_full::fail || on_own_thread()) {
        return absl::ResourceExhaustedError("ordered_executor: max_in_flight jobs in flight");
      }
      // Hysteresis: resume only once a quarter of the bound has drained, so a
      // saturated submitter sleeps once per max/4 jobs instead of once per job.
      wait_until(submit_waiters_, [&] {
        // seq_cst: Dekker with the decrement (D1) / stop (set_running) and the
        // submit_waiters_ load in notify_if().
        return in_flight_.load(std::memory_order_seq_cst) <= resume_at_ ||
               !running_.load(std::memory_order_seq_cst);
      });
    }
  }


 public:
  // The front ends' batched submit: queues a prefix of js[0..n) (all with
  // callback CPU cb_cpu, in this order, with consecutive sequence numbers)
  // and returns its length. It reserves in-flight slots with one CAS for the
  // whole prefix, takes the sequence numbers with one fetch_add, and pushes
  // the batch onto parallel lists in chains (one CAS and one wake check per
  // chain): tiny jobs as one chain (pick_worker), long ones in chunks of
  // about kChunkNs each to the least-loaded worker. A batch of tiny jobs thus pays the
  // shared-line traffic of one submit() instead of one per job.
  // Never blocks: a shorter prefix (possibly empty) means "full, stopped or
  // cb_cpu not in the set"; the caller then uses submit() for the rest,
  // which reports which. Lock-free (CAS loops; a short mutex hand-off to wake
  // a sleeping worker).
  std::size_t submit_batch(ordered_job* const* js, std::size_t n, int cb_cpu) {
    if (n == 0) return 0;
    // relaxed: start/stop only gate new submissions, as in submit().
    if (!running_.load(std::memory_order_relaxed)) return 0;
    rcu::read_guard<executor_rcu> guard;  // keeps the snapshot alive
    // (C1) acquire: pairs with C2.
    const exec_config* c = config_.load(std::memory_order_acquire);
    executor_worker* cb = c->find(cb_cpu);
    if (cb == nullptr) return 0;
    const std::size_t k = try_reserve_up_to(n);
    if (k == 0) return 0;
    // (S1) acq_rel: as in submit(); every job of the batch reserved its slot
    // (in the one CAS above) before it gets its sequence number here.
    const std::uint64_t seq0 = next_seq_.fetch_add(k, std::memory_order_acq_rel);
    // Deal the batch in chunks of about kChunkNs of work each (by the callback
    // worker's recent time per step): tiny jobs go as one chain, long ones
    // spread over the workers instead of queueing 16 deep behind one.
    // relaxed: heuristic, single writer (the worker).
    const std::uint64_t per = std::max<std::uint64_t>(cb->par_ns.load(std::memory_order_relaxed), 1);
    const std::size_t chunk = static_cast<std::size_t>(std::clamp<std::uint64_t>(kChunkNs / per, 1, k));
    for (std::size_t i0 = 0; i0 < k; i0 += chunk) {
      const std::size_t i1 = std::min(k, i0 + chunk);
      // Jobs long enough to be split go chunk by chunk to the worker with the
      // fewest jobs waiting (round-robin by sequence number on ties, as
      // submit() deals its runs): a worker whose CPU is shared with another
      // process falls behind and gets fewer chunks instead of holding up
      // the serial order with a full share. (Not pick_worker: its backlog
      // counts the callback worker's serial steps as steps and would load
      // it with more than its share.)
      executor_worker* pw = chunk < k ? least_waiting(*c, seq0 + i0, chunk) : pick_worker(*c, cb);
      // relaxed: a heuristic counter (see executor_worker).
      pw->par_pushed.fetch_add(i1 - i0, std::memory_order_relaxed);
      ordered_job* last = nullptr;
      for (std::size_t i = i0; i < i1; ++i) {
        ordered_job* j = js[i];
        j->core_ = this;
        j->cb_worker_ = cb;
        j->seq_ = seq0 + i;
        j->error_ = nullptr;
        j->done_called_.store(false, std::memory_order_relaxed);  // (J0) as in submit()
        // relaxed: the front ends' own jobs, never submitted twice; set so
        // that J3's clear means the same for every job. Published by Q1.
        j->in_flight_.store(true, std::memory_order_relaxed);
        if (last != nullptr) j->next_ = last;                     // reverse push order (push_chain)
        last = j;
      }
      // (Q1) publishes the fields above to the worker. From here on the
      // chunk's jobs may run and finish: they are not touched again.
      pw->par_q.push_chain(js[i0], last);
      wake(*pw);
    }
    return k;
  }

  // ordered_job::done(). Invariants 1, 2, 5, 7.
  void done(ordered_job* j, const call_site& where) {
    // A foreign thread needs a read side: the destructor waits for it (after
    // drain) before it frees the ring. One of our own workers does not: the
    // destructor joins every worker before it frees anything, so the thread
    // is its own guard, and the two out-of-line liburcu calls per job are
    // saved on the common path (parallel() calling done() on its worker).
    if (on_own_thread()) {
      done_unguarded(j, where);
    } else {
      rcu::read_guard<executor_rcu> guard;
      done_unguarded(j, where);
    }
  }

 private:
  // done() minus the lifetime guard (the caller provides it).
  void done_unguarded(ordered_job* j, const call_site& where) {
    // (J1) relaxed: of two done() calls on one submission exactly one reads
    // false (read-modify-writes of one object are totally ordered); nothing
    // is published through the flag. Reset by J0 for each submission.
    if (j->done_called_.exchange(true, std::memory_order_relaxed)) {
      duplicate_done(where);
      return;
    }
    // Lost: parallel() threw before this call and run_parallel() completed
    // the job (invariant 7); this late done() is absorbed.
    if (!claim(j->seq_)) return;
    complete_unguarded(j);
  }

  // A second done() for one submission: the caller's bug, never the
  // executor's state.
  void duplicate_done(const call_site& where) {
#ifndef NDEBUG
    fatal("ordered_executor", "done() called twice for one submission of a job", where);
#else
    (void)where;
    duplicate_dones_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
#endif
  }

  // Claims the completion of job `seq`; true for exactly one caller per
  // submission (invariant 7, and the file header for why the word holds
  // seq - capacity until then).
  bool claim(std::uint64_t seq) {
    std::uint64_t expected = seq - (mask_ + 1);
    // (C3) relaxed: the compare-exchange alone picks one winner (it reads the
    // latest value of the word, and the previous lap's claim happens before
    // this one by the ring argument); nothing is published through it: the
    // winner publishes the job by R1 and the loser does not touch the job.
    return ring_[seq & mask_].claimed.compare_exchange_strong(expected, seq, std::memory_order_relaxed,
                                                              std::memory_order_relaxed);
  }

  // Stores a claimed job into the ring and maybe drains. Invariants 1, 2.
  void complete_unguarded(ordered_job* j) {
    std::atomic<ordered_job*>& slot = ring_[j->seq_ & mask_].job;
    // relaxed: a sanity check of invariant 1; the slot was cleared by a drainer
    // whose clear happens before this job's reservation (see the file header).
    if (slot.load(std::memory_order_relaxed) != nullptr) {
      fatal("ordered_executor",
            "reorder slot busy: a job completed twice, or submitted again while in flight");
    }
    // (R1) release: publishes the job (and what parallel() wrote) to the
    // drainer's acquire load (R2). From here on j may be released, run and
    // freed by other threads: do not touch it again.
    slot.store(j, std::memory_order_release);
    // (P1) acq_rel: election. Returns nonzero iff a drainer is active; that
    // drainer's P2 will read this increment (single modification order) and
    // then drain again, seeing R1 through this release.
    if (pending_.fetch_add(1, std::memory_order_acq_rel) != 0) return;
    std::uint64_t todo = 1;
    for (;;) {
      release_ready();
      // (P2) acq_rel: acquire makes every counted done()'s R1 visible to the
      // next release_ready(); release hands next_release_ to the next drainer
      // (whose P1 reads this value or a later one in the chain).
      const std::uint64_t prev = pending_.fetch_sub(todo, std::memory_order_acq_rel);
      if (prev == todo) return;
      todo = prev - todo;
    }
  }

 public:
  // Blocks until every job submitted before the call has finished serial()
  // (the facade's drain()). Called on one of this executor's threads it
  // aborts naming `where` (the caller). Compiled (src/executor_core.cpp).
  void drain(const call_site& where);

  // A worker thread's loop (detail/executor_worker.hpp): runs w's serial
  // list, then its parallel list, and sleeps when both stay empty (W1/W2).
  void run(executor_worker& w);

  std::size_t in_flight() const {
    return static_cast<std::size_t>(in_flight_.load(std::memory_order_relaxed));  // relaxed: diagnostic
  }
  std::size_t max_in_flight() const { return max_; }
  std::uint64_t parallel_errors() const { return parallel_errors_.load(std::memory_order_relaxed); }
  std::uint64_t serial_errors() const { return serial_errors_.load(std::memory_order_relaxed); }
  std::uint64_t duplicate_dones() const { return duplicate_dones_.load(std::memory_order_relaxed); }

 private:
  // Round-robin dealing by sequence number, `run` consecutive numbers per
  // worker (no shared counter: the sequence number is the cursor).
  static executor_worker* dealt(const exec_config& c, std::uint64_t seq, std::uint64_t run) {
    return c.workers[static_cast<std::size_t>((seq / run) % c.workers.size())];
  }

  // Jobs dealt to w whose parallel() has not run yet (a heuristic: the two
  // counters may be seen out of step, any answer is safe).
  static std::int64_t waiting(const executor_worker& w) {
    // relaxed: heuristic counters (see executor_worker).
    return static_cast<std::int64_t>(w.par_pushed.load(std::memory_order_relaxed) -
                                     w.par_run.load(std::memory_order_relaxed));
  }
  // The worker of c with the smallest cost(w); `start` unless one is smaller.
  template <class Cost>
  static executor_worker* least(const exec_config& c, executor_worker* start, Cost cost) {
    executor_worker* out = start;
    std::int64_t best = cost(*out);
    for (executor_worker* w : c.workers) {
      const std::int64_t v = cost(*w);
      if (v < best) {
        best = v;
        out = w;
      }
    }
    return out;
  }
  // The worker with the fewest jobs waiting; the round-robin choice for
  // (seq, run) when it is among the fewest.
  static executor_worker* least_waiting(const exec_config& c, std::uint64_t seq, std::uint64_t run) {
    return least(c, dealt(c, seq, run), waiting);
  }

  // Where a batch's parallel halves go. The callback worker, as long as its
  // backlog (jobs dealt to it whose parallel() has not run, times its recent
  // cost per job) is below kSpillNs: tiny jobs then never cross threads
  // except at submit, and their reorder and serial steps stay on one CPU,
  // which is cheaper than any hand-off. Past it, the worker with the
  // smallest backlog: jobs that take long pile up and spread over the set.
  static constexpr std::int64_t kSpillNs = 50'000;
  static constexpr std::uint64_t kChunkNs = 20'000;  // submit_batch: work per dealt chain
  static std::int64_t backlog(const executor_worker& w) {
    const std::int64_t jobs = waiting(w);
    // relaxed: heuristic, single writer (the worker).
    const auto per = static_cast<std::int64_t>(w.par_ns.load(std::memory_order_relaxed));
    return jobs <= 0 ? 0 : jobs * std::max<std::int64_t>(per, 1);
  }
  static executor_worker* pick_worker(const exec_config& c, executor_worker* cb) {
    if (backlog(*cb) < kSpillNs) return cb;
    return least(c, cb, backlog);
  }

  // Reserves between 1 and n slots if any is free; returns how many.
  std::size_t try_reserve_up_to(std::size_t n) {
    std::uint64_t cur = in_flight_.load(std::memory_order_relaxed);  // relaxed: a guess for the CAS
    while (cur < max_) {
      const std::uint64_t k = std::min<std::uint64_t>(n, max_ - cur);
      // acq_rel: part of the in_flight_ chain used by the ring-overflow argument.
      if (in_flight_.compare_exchange_weak(cur, cur + k, std::memory_order_acq_rel,
                                           std::memory_order_relaxed)) {
        return static_cast<std::size_t>(k);
      }
    }
    return 0;
  }

  // Moves every consecutive ready job, from next_release_ on, to its callback
  // worker's serial list. Drainer only (P1 election). Consecutive jobs with
  // the same callback worker are pushed as one chain (one CAS and one wake
  // check per chain instead of per job).
  void release_ready() {
    const std::uint64_t from = next_release_;
    std::uint64_t s = from;
    executor_worker* cw = nullptr;  // callback worker of the chain being built
    ordered_job* first = nullptr;
    ordered_job* last = nullptr;
    std::uint64_t n = 0;
    for (;;) {
      std::atomic<ordered_job*>& slot = ring_[s & mask_].job;
      ordered_job* j = slot.load(std::memory_order_acquire);  // (R2) pairs with R1
      if (j == nullptr) break;
      // relaxed: the next store into this slot (by job s + capacity) happens
      // after this job's serial() (invariant 1), which follows our push (Q1).
      slot.store(nullptr, std::memory_order_relaxed);
      ++s;
      if (j->cb_worker_ != cw) {
        push_serials(cw, first, last, n);
        cw = j->cb_worker_;
        first = j;
        n = 0;
      } else {
        j->next_ = last;  // reverse push order (push_chain); the job is ours until pushed
      }
      last = j;
      ++n;
    }
    push_serials(cw, first, last, n);
    if (s != from) {
      next_release_ = s;
      // (R3) seq_cst: read by drain(); Dekker with drain_waiters_ in notify_if().
      release_seq_.store(s, std::memory_order_seq_cst);
      notify_if(drain_waiters_);
    }
  }

  void push_serials(executor_worker* w, ordered_job* first, ordered_job* last, std::uint64_t n) {
    if (w == nullptr) return;
    // relaxed: single writer (the drainer role, handed over through P1/P2);
    // readers in drain() order it through R3.
    w->ser_pushed.store(w->ser_pushed.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    w->ser_q.push_chain(first, last);  // (Q1) after this, the jobs belong to w (invariant 4)
    // A worker pushing onto its own serial list is awake: it runs that list
    // before it next looks at sleeping (run(): serials first, and W2).
    if (w != tls_worker) wake(*w);
  }

  // Runs the serial list taken in one exchange. In-flight slots and the
  // ser_done count are given back once per kGiveBack serial steps and at the
  // end of the list, not per job: the in_flight_ line then moves between the
  // submitter and this worker once per batch instead of once per job. A slot
  // is still given back only after its serial() returned (the ring argument
  // needs no more), and a returned serial() is never touched again
  // (invariant 4); the cost is that the bound is released up to kGiveBack - 1
  // jobs late while a list is still running.
  static constexpr std::uint64_t kGiveBack = 32;

  // Runs the serial list taken in one exchange; returns how many serial
  // steps ran. Worker w only (detail/executor_worker.hpp, as the two below).
  std::uint64_t run_serials(executor_worker& w);
  // Publishes that n more serial steps of w returned (D0, D1).
  void give_back(executor_worker& w, std::uint64_t n);
  // Runs j's parallel(); completes j itself if parallel() throws and no
  // done() claimed it first (invariant 7). Workers only.
  void run_parallel(ordered_job* j);

  // Wakes w if it announced sleep. Called after a push (Q1).
  static void wake(executor_worker& w) {
    // (W3) seq_cst: pairs with W1 (the push's Q1 precedes this load).
    if (w.sleeping.load(std::memory_order_seq_cst) != 0) rouse(w);
  }
  // Ends w's sleep, or its announcement of one, whatever it is doing.
  static void rouse(executor_worker& w) {
    {
      std::lock_guard<std::mutex> g(w.mu);
      w.sleeping.store(0, std::memory_order_relaxed);  // relaxed: under mu, read under mu
    }
    w.cv.notify_one();
  }

  template <class Pred>
  void wait_until(std::atomic<int>& waiters, Pred pred) {
    if (pred()) return;
    waiters.fetch_add(1, std::memory_order_seq_cst);  // (V1) pairs with V2
    {
      std::unique_lock<std::mutex> l(wait_mu_);
      wait_cv_.wait(l, pred);
    }
    waiters.fetch_sub(1, std::memory_order_relaxed);  // relaxed: only suppresses future notifications
  }

  void notify_if(std::atomic<int>& waiters) {
    // (V2) seq_cst: after the progress store (D0/D1/R3/running_); pairs with V1.
    if (waiters.load(std::memory_order_seq_cst) != 0) {
      { std::lock_guard<std::mutex> g(wait_mu_); }  // a waiter is either before its check or waiting
      wait_cv_.notify_all();
    }
  }

  // Creates the worker thread for `cpu`, waits until it is pinned there,
  // then lets it run loop_ (src/executor_threads.cpp). InvalidArgument if it cannot be pinned,
  // Internal if no thread can be created; nothing is left behind either way.
  absl::StatusOr<std::unique_ptr<executor_worker>> make_worker(int cpu);
  // Makes w's thread leave its loop once its lists are empty, and joins it.
  static void stop_worker(executor_worker& w);

  const worker_loop loop_;
  const std::size_t max_;
  const std::uint64_t resume_at_;  // a blocked submit resumes when in_flight <= this
  const when_full on_full_;
  std::size_t mask_ = 0;
  std::unique_ptr<ring_slot[]> ring_;  // reorder ring, capacity mask_ + 1

  alignas(64) std::atomic<std::uint64_t> in_flight_{0};
  alignas(64) std::atomic<std::uint64_t> next_seq_;
  alignas(64) std::atomic<std::uint64_t> pending_{0};
  std::uint64_t next_release_ = 0;  // drainer only (handed over through P1/P2)
  alignas(64) std::atomic<std::uint64_t> release_seq_;
  alignas(64) std::atomic<int> submit_waiters_{0};  // submitters blocked at the bound
  std::atomic<int> drain_waiters_{0};               // threads in drain()
  std::atomic<bool> running_{true};
  std::atomic<std::uint64_t> parallel_errors_{0};
  std::atomic<std::uint64_t> serial_errors_{0};
  std::atomic<std::uint64_t> duplicate_dones_{0};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;

  alignas(64) std::atomic<exec_config*> config_{nullptr};
  mutable std::mutex cfg_mu_;  // serializes set_cpus; guards the fields below
  cpu_set cpus_;
  std::vector<executor_worker*> by_cpu_;               // CPU id -> its worker, if ever created
  std::vector<std::unique_ptr<executor_worker>> all_;  // every worker, never shrinks
};

}  // namespace detail
}  // namespace rcukit
