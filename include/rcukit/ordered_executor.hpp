// rcukit/ordered_executor.hpp -- order-preserving parallel executor (padata).
//
// The idea (Steffen Klassert's padata, kernel/padata.c, LWN 2010-04-06): jobs
// are numbered in submission order, their parallel() halves run on any
// worker CPU, may finish in any order, and are then re-serialized: each job's
// serial() runs on the thread pinned to the callback CPU named at
// submission, in sequence order, one at a time per callback CPU.
//
// The engine (detail/executor_core.hpp):
//   submit -> reserve an in-flight slot -> take seq -> push onto a worker's
//   parallel list -> parallel() ... done() -> store the job in
//   ring[seq mod capacity] -> the one "reorderer" moves every consecutive
//   ready job, in seq order, to its callback worker's serial list -> that
//   worker runs serial() -> the in-flight slot is given back.
// Per-job cost is what tiny jobs pay, so every hand-off is batched where the
// semantics allow: the front ends submit up to 16 jobs with one reservation,
// one sequence fetch_add and one list push; the reorderer pushes each run of
// consecutive jobs with the same callback CPU as one chain; a worker takes
// its whole list with one exchange and gives in-flight slots back once per
// 32 serial steps. Dealing: submit() deals runs of 8 consecutive sequence
// numbers round-robin (padata deals one by one); a front-end batch of tiny
// jobs goes to the callback CPU's worker while its parallel backlog (jobs
// queued times its measured time per job) is under 50 us (tiny jobs then stay
// on one CPU, where the reorder and serial steps run too), else to the
// least-backlogged worker; a batch of long jobs is split into chunks of about
// 20 us of work, each dealt to the worker with the fewest jobs waiting
// (round-robin on ties), so a worker whose CPU another process shares gets
// fewer chunks instead of holding up the serial order.
//
// How each historical padata bug is made impossible by construction:
//  * Orphaned jobs from a missing barrier (2019) and the lost wake-up the
//    1-second timer papered over (removed 2019). padata elected the reorderer
//    with a trylock and relied on a full barrier between "unlock" and
//    "look at the next slot again"; when the barrier was missing nobody
//    looked. Here election is a counter: done() stores its job, then
//    increments `pending`; only the caller that moves it from 0 drains, and
//    the drainer leaves only when its fetch_sub brings `pending` back to 0
//    exactly, otherwise it drains again. Every done() either becomes the
//    drainer or its increment is observed by the current drainer's final
//    read-modify-write, which (being acq_rel on one atomic) also makes its
//    ring store visible. No fence, no timer, no window.
//  * Sequence wraparound deadlock (2024). Sequence numbers are 64-bit and
//    are only ever compared for equality and through unsigned differences,
//    never with `<`; ring indices are seq mod a power of two that divides
//    2^64. A settable first sequence (executor_options::first_seq) lets the
//    tests cross 2^64 - 1 -> 0.
//  * Use-after-free of the reorder state at teardown (2025). A thread in
//    done() may still be inside the reorder code after the last serial() it
//    released has run. done() from a foreign thread therefore runs entirely
//    inside an RCU read-side critical section (rcu::read_guard<rcu::memb>),
//    and the destructor, after drain(), waits for a grace period before it
//    frees anything. done() on one of the workers skips the read side (two
//    out-of-line liburcu calls per job): workers are joined before anything
//    they can reach (ring, queues) is freed.
//  * Completing a job twice (found in rcukit, issue 16; padata has no
//    exceptions). parallel() may hand its job to another thread, whose
//    done() can come before, during or after a throw from parallel(); a
//    per-thread note of "done() ran here" cannot see the other thread, and
//    a second completion put the job into a released ring slot and twice on
//    a serial list, which became a cycle. Instead each sequence number has a
//    claim word next to its ring slot: the first done() and the executor's
//    completion after a throw race for it with one compare-exchange, and
//    the loser returns without touching the job (invariant 7). A second
//    done() by the user is caught earlier, by the job's own done flag.
//  * CPU-set changes while jobs are in flight. The CPU list used by submit()
//    is an immutable snapshot published through an atomic pointer and
//    reclaimed with rcu::retire, as padata swaps its parallel data under
//    RCU. Worker threads are never destroyed while the executor lives: a
//    removed CPU's worker stops receiving new work but still runs what is
//    already queued to it (parallel halves and serial halves of jobs that
//    named it as callback CPU), so nothing is lost and no callback CPU ever
//    has two threads (serial() stays one-at-a-time and in order). Adding the
//    CPU back reuses the same thread.
//
// Numbered invariants (referred to in detail/executor_core.hpp):
//  (1) in_flight <= max_in_flight <= ring capacity; a job's ring slot is empty
//      when its done() stores into it (checked, always on: a violation aborts).
//  (2) Jobs leave the ring strictly in sequence order, one drainer at a time.
//  (3) A callback worker's serial list is FIFO and it runs one serial() at a
//      time, so per callback CPU serial() order is sequence order.
//  (4) After serial() returns (and after parallel() returns) the executor never
//      touches the job again: the user may free or resubmit it.
//  (5) No executor memory is freed while a thread can still reach it: done()
//      from a foreign thread is inside an RCU read side, done() on one of the
//      executor's workers is covered by the join; the destructor drains,
//      synchronizes, joins.
//  (6) Every park has a named wake path (no timed waits anywhere): a worker
//      sleeps only after announcing it and re-checking both its lists (W1/W2),
//      and every push onto another worker's list is followed by a check of
//      that announcement (Q1/W3); a worker's pushes onto its own serial list
//      need none because it re-runs its lists before it parks. Blocked
//      submitters and drain() pair V1/V2 with every progress store; a front
//      end waiting for its items pairs T1/T2 with K1/K2 (completion_counter).
//  (7) Each submission is completed (stored into the ring) exactly once. Its
//      first done() call and the executor's own completion after parallel()
//      threw race for the claim word of its sequence number (C3); the winner
//      completes it, the loser does not touch the job again (the winner may
//      already have let it reach serial(), and the user may have freed it).
//      A second done() call on one submission is found by the job's done
//      flag (J1) before any claim: fatal in debug builds (with the caller's
//      file and line), counted and ignored in release builds.
//
// Not supported: separate parallel and serial CPU masks, padata_shell
// (several independent sequences per executor: create several executors),
// calling drain(), the destructor or the front ends from inside a job of the
// same executor, more than 1024 CPUs (CPU_SETSIZE).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
#include <version>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/backoff.hpp"
#include "rcukit/detail/fatal.hpp"

namespace rcukit {

namespace detail {
class executor_core;
struct executor_worker;
template <class Node>
class mpsc_list;

}  // namespace detail

// A set of CPU ids. Any int may be stored; whether the process may use a CPU
// is checked where the set is used (ordered_executor). Value type.
class cpu_set {
 public:
  cpu_set() = default;
  cpu_set(std::initializer_list<int> cpus) {
    for (int c : cpus) insert(c);
  }
  // The CPUs this process may run on (the union of the calling thread's and
  // the main thread's affinity masks). Never empty on a working system.
  static cpu_set all();

  void insert(int cpu) {
    auto it = std::lower_bound(cpus_.begin(), cpus_.end(), cpu);
    if (it == cpus_.end() || *it != cpu) cpus_.insert(it, cpu);
  }
  bool erase(int cpu) {
    auto it = std::lower_bound(cpus_.begin(), cpus_.end(), cpu);
    if (it == cpus_.end() || *it != cpu) return false;
    cpus_.erase(it);
    return true;
  }
  bool contains(int cpu) const { return std::binary_search(cpus_.begin(), cpus_.end(), cpu); }
  std::size_t size() const { return cpus_.size(); }
  bool empty() const { return cpus_.empty(); }
  // Sorted ascending, no duplicates.
  const std::vector<int>& ids() const { return cpus_; }
  auto begin() const { return cpus_.begin(); }
  auto end() const { return cpus_.end(); }
  friend bool operator==(const cpu_set&, const cpu_set&) = default;

 private:
  std::vector<int> cpus_;
};

// A unit of work; embed it (by inheritance) in your own struct, as the kernel
// embeds padata_priv. The executor keeps its bookkeeping inside the job, so
// submitting never allocates. A job may be submitted again once its serial()
// has started (the executor no longer touches it, invariant 4).
struct ordered_job {
  // Runs once on some worker thread. Must end in exactly one done() call,
  // now or later, from any thread. If it throws before done() has been
  // called, the executor records the exception (see parallel_error()) and
  // completes the job itself; the job still reaches serial() in order. The
  // job is completed exactly once whatever the thread and the order of
  // done() and the throw (invariant 7): a done() that comes first wins and
  // the exception is only counted (parallel_errors()); a done() that comes
  // after the executor completed the job (parallel() handed the job to
  // another thread, then threw) is absorbed. Such a late done() must still
  // return before the job is freed or submitted again, and before the
  // executor is destroyed.
  virtual void parallel() = 0;
  // Runs on the thread pinned to the job's callback CPU, in sequence order
  // among jobs with that callback CPU, one at a time. Should not throw; if it
  // does, the exception is counted (ordered_executor::serial_errors()) and
  // dropped, and later jobs run as usual.
  virtual void serial() = 0;

  // padata_do_serial: the parallel half is finished. Never waits for other
  // jobs: it takes no lock except a short mutex hand-off when it wakes a
  // sleeping worker. The caller may become the reorderer and move ready jobs
  // to their callback workers; it keeps doing so while other done() calls
  // arrive meanwhile (bounded in practice by max_in_flight, since no job is
  // admitted until a serial step ends). From a foreign thread it runs inside
  // an rcu::memb read side (on one of the executor's workers it needs none);
  // callable from any thread, including inside other read sides. After
  // done() the job belongs to the executor until its serial() starts.
  // A second done() for one submission is a bug in the caller: debug builds
  // (NDEBUG not defined) abort with the file and line of that second call
  // (`where`, filled in by the compiler); release builds count it
  // (ordered_executor::duplicate_dones()) and ignore it. Neither corrupts
  // the executor. Calling done() on a job never submitted aborts.
  void done(detail::call_site where = detail::call_site::current());

  // The exception thrown by parallel(), or null. Valid inside serial().
  std::exception_ptr parallel_error() const noexcept { return error_; }
  // The job's 64-bit sequence number (valid from submit() until serial() ends).
  std::uint64_t sequence() const noexcept { return seq_; }

  ordered_job() = default;
  // Copies carry no executor state: a copy is a fresh, unsubmitted job.
  ordered_job(const ordered_job&) noexcept {}
  ordered_job& operator=(const ordered_job&) noexcept { return *this; }
  virtual ~ordered_job() = default;

 private:
  friend class detail::executor_core;
  template <class>
  friend class detail::mpsc_list;

  ordered_job* next_ = nullptr;  // intrusive link of the executor's lists
  detail::executor_core* core_ = nullptr;
  detail::executor_worker* cb_worker_ = nullptr;
  std::uint64_t seq_ = 0;
  std::exception_ptr error_;
  std::atomic<bool> done_called_{false};  // this submission's done() has been called (J0, J1)
};

// What submit() does when max_in_flight jobs are already in flight.
enum class when_full {
  block,  // (default) sleep until the jobs in flight have fallen to
          // max_in_flight - 1 - max_in_flight / 4 (hysteresis: a saturated
          // submitter wakes once per quarter of the bound, not once per job),
          // or until stop(). Called from one of the executor's own threads,
          // submit() returns ResourceExhausted instead, since waiting there
          // could wait for itself.
  fail,   // return ResourceExhausted at once (padata's -EBUSY)
};

struct executor_options {
  // Bound on jobs submitted whose serial() has not finished (padata: 1000).
  // 1 .. 2^20.
  std::size_t max_in_flight = 1000;
  // Sequence number of the first job; tests use it to cross 2^64.
  std::uint64_t first_seq = 0;
  when_full on_full = when_full::block;
};

// padata_instance. All public functions may be called from any thread except
// where noted. The executor is started when constructed.
class ordered_executor;
namespace detail {
// Batched submit for the front ends (see executor_core::submit_batch).
std::size_t submit_batch(ordered_executor& ex, ordered_job* const* js, std::size_t n, int cb_cpu);
}  // namespace detail

class ordered_executor {
 public:
  // Creates one worker thread per CPU of `cpus`, each pinned to its CPU.
  // If `cpus` is empty, names a CPU the process may not use, or `opts` is out
  // of range, the executor has no CPUs, status() is InvalidArgument, and
  // every submit() fails with InvalidArgument until set_cpus() succeeds.
  explicit ordered_executor(cpu_set cpus);
  ordered_executor(cpu_set cpus, executor_options opts);
  // Same, but reports bad input as an error instead of a CPU-less executor.
  static absl::StatusOr<std::unique_ptr<ordered_executor>> create(cpu_set cpus, executor_options opts = {});
  // Drains (waits for every submitted job's serial()), waits for an RCU grace
  // period so no done() caller is still inside the executor, then stops and
  // joins the threads. Blocking. Must not run on one of its own threads or
  // inside an rcu::memb read side.
  ~ordered_executor();
  ordered_executor(const ordered_executor&) = delete;
  ordered_executor& operator=(const ordered_executor&) = delete;

  // Construction result (OK or InvalidArgument).
  absl::Status status() const { return init_status_; }

  // start/stop only gate submit() (padata_start/padata_stop): jobs already
  // submitted run to completion either way. Wait-free.
  void start();
  void stop();

  // Replace / extend / shrink the CPU set while jobs are in flight. Blocking
  // (serialized with each other; may create and pin threads), never waits
  // for jobs. Failure (InvalidArgument: empty result, CPU not usable by the
  // process, remove_cpu of a CPU not in the set; Internal: a thread could not
  // be created or pinned) changes nothing. Jobs already submitted keep their
  // callback CPU even if it is removed (its worker still runs them).
  absl::Status set_cpus(cpu_set cpus);
  absl::Status add_cpu(int cpu);
  absl::Status remove_cpu(int cpu);
  cpu_set cpus() const;

  // Queues j; j.parallel() will run on a worker, j.serial() on cb_cpu's
  // worker in sequence order. Non-blocking (a CAS loop and a short mutex
  // hand-off to wake a sleeping worker), except that past max_in_flight it
  // blocks or fails according to executor_options::on_full. Errors (nothing
  // queued): FailedPrecondition (stopped), InvalidArgument (cb_cpu not in the
  // current set), ResourceExhausted (full and on_full == fail, or full and
  // called from one of this executor's threads). j must stay alive until its
  // serial() has started.
  absl::Status submit(ordered_job& j, int cb_cpu);

  // Blocks until the serial() of every job submitted before the call has
  // returned. A job that never calls done() holds back every later job and
  // makes drain() wait forever: that is the contract. Must not be called
  // from one of this executor's threads (it would wait for itself; aborts).
  void drain();

  // Diagnostics (relaxed snapshots).
  std::size_t in_flight() const;
  std::size_t max_in_flight() const;
  std::uint64_t parallel_errors() const;  // parallel() calls that threw
  std::uint64_t serial_errors() const;    // serial() calls that threw
  // done() calls beyond the first for one submission, which were ignored
  // (release builds; debug builds abort on the first one instead).
  std::uint64_t duplicate_dones() const;
  // True on one of this executor's worker threads.
  bool on_worker_thread() const;

 private:
  friend std::size_t detail::submit_batch(ordered_executor&, ordered_job* const*, std::size_t, int);
  absl::Status init_status_;
  std::unique_ptr<detail::executor_core> core_;
};

// ---------------------------------------------------------------------------
// Front ends on the same engine.
// ---------------------------------------------------------------------------
namespace detail {

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

}  // namespace detail

// ser(par(*it)) for every it in [first, last): par runs in parallel on the
// executor's workers, ser runs one call at a time, in input order, on one
// callback CPU's thread. At most min(max_in_flight, max(1024, 256 x workers), input size)
// items are in flight; the calling thread only submits and waits. If par
// throws for an item, ser is skipped for that item; if ser throws, later ser
// calls are skipped; in both cases every item is still accounted for and the
// first exception (by input position) is rethrown here after all items
// finished. If the executor refuses work (stopped, CPU set emptied, or the
// call comes from one of its own threads), the remaining items run inline on
// the calling thread, in order. Blocking.
template <class It, class Par, class Ser>
void ordered_transform(ordered_executor& ex, It first, It last, Par par, Ser ser) {
  using ref = decltype(*first);
  using result = std::invoke_result_t<Par&, ref>;
  static_assert(!std::is_void_v<result>, "ordered_transform: par must return the value ser consumes");
  static_assert(std::forward_iterator<It>,
                "ordered_transform: workers dereference copies of the iterator later");

  struct state {
    Par* par;
    Ser* ser;
    detail::completion_counter finished;
    detail::first_error err;
    bool ser_failed = false;  // touched only by ser's serial() calls (one at a time, hb via the executor)
  };
  struct job final : ordered_job {
    state* st = nullptr;
    std::optional<It> it;
    std::uint64_t index = 0;
    std::optional<result> value;
    void parallel() override {
      try {
        value.emplace((*st->par)(**it));
      } catch (...) {
        st->err.record(index, std::current_exception());
      }
      done();
    }
    void serial() override {
      if (value.has_value() && !st->ser_failed) {
        try {
          (*st->ser)(std::move(*value));
        } catch (...) {
          st->ser_failed = true;
          st->err.record(index, std::current_exception());
        }
      }
      value.reset();
      st->finished.add_one();  // last touch of *st by this job (see completion_counter)
    }
  };

  state st{&par, &ser, {}, {}, false};
  auto run_inline = [&](It it, std::uint64_t index) {
    std::optional<result> v;
    try {
      v.emplace(par(*it));
    } catch (...) {
      st.err.record(index, std::current_exception());
    }
    if (v.has_value() && !st.ser_failed) {
      try {
        ser(std::move(*v));
      } catch (...) {
        st.ser_failed = true;
        st.err.record(index, std::current_exception());
      }
    }
  };
  auto pick_cb = [&]() -> int {  // -1: run inline
    cpu_set s = ex.cpus();
    return s.empty() ? -1 : *s.begin();
  };

  int cb = ex.on_worker_thread() ? -1 : pick_cb();
  const std::size_t workers = std::max<std::size_t>(1, ex.cpus().size());
  // Jobs in flight per call; when the window is full the submitter sleeps
  // until half of it has drained (one wake-up per window / 2 items).
  std::size_t window = std::max<std::size_t>(
      1, std::min<std::size_t>(ex.max_in_flight(), std::max<std::size_t>(1024, 256 * workers)));
  if constexpr (std::random_access_iterator<It>) {  // no bigger than the input
    window = std::max<std::size_t>(1, std::min<std::size_t>(window, static_cast<std::size_t>(last - first)));
  }
  std::vector<job> jobs(window);
  for (auto& j : jobs) j.st = &st;

  // Items are handed over in batches of up to kBatch (one submit_batch:
  // one reservation, one sequence fetch_add, one list push). A slot is
  // refilled only once its previous item is known finished; the count of
  // finished items is re-read only when the window looks full, not per item
  // (the serial thread writes it), and the batch is flushed before any wait
  // (we never wait for items we still hold).
  constexpr std::size_t kBatch = 16;
  ordered_job* batch[kBatch];
  std::size_t nbatch = 0;
  std::uint64_t submitted = 0;   // items handed to the executor
  std::uint64_t known_done = 0;  // a past value of st.finished.count
  auto flush = [&] {
    std::size_t i = 0;
    while (i < nbatch) {
      const std::size_t k = detail::submit_batch(ex, batch + i, nbatch - i, cb);
      submitted += k;
      i += k;
      if (i == nbatch) break;
      // Refused: submit() blocks if the executor is full (default policy) or
      // says why not. Our callback CPU went away, the executor stopped, or it
      // is full for us: let our own items finish, then retry once on the
      // current set; failing that, the rest runs inline, in order.
      job& j = static_cast<job&>(*batch[i]);
      absl::Status s = ex.submit(j, cb);
      if (!s.ok()) {
        st.finished.wait_for(submitted);
        cb = pick_cb();
        if (cb >= 0) s = ex.submit(j, cb);
      }
      if (s.ok()) {
        ++submitted;
        ++i;
        continue;
      }
      cb = -1;
      for (; i < nbatch; ++i) {
        job& r = static_cast<job&>(*batch[i]);
        run_inline(*r.it, r.index);
      }
    }
    nbatch = 0;
  };
  std::uint64_t index = 0;
  for (; first != last; ++first, ++index) {
    if (cb >= 0) {
      const std::uint64_t q = submitted + nbatch;  // this item's slot number
      if (q >= window && known_done < q - window + 1) {
        known_done = st.finished.count.load(std::memory_order_acquire);  // acquire: pairs with K1
        if (known_done < q - window + 1) {
          flush();  // never wait for items we still hold
          if (cb >= 0 && submitted >= window) {
            st.finished.wait_for(submitted - window / 2);  // the slot's previous job, and half the window
            known_done = st.finished.count.load(std::memory_order_acquire);  // acquire: pairs with K1
          }
        }
      }
    }
    if (cb < 0) {
      st.finished.wait_for(submitted);  // earlier items' ser calls come first
      run_inline(first, index);
      continue;
    }
    job& j = jobs[(submitted + nbatch) % window];
    j.it.emplace(first);
    j.index = index;
    batch[nbatch++] = &j;
    if (nbatch == kBatch) flush();
  }
  flush();
  st.finished.wait_all(submitted);
  st.err.rethrow_if_any();
}

// padata_do_multithreaded: calls fn(chunk_begin, chunk_end) over [begin, end)
// in chunks of max(ceil(size / (workers x 4)), min_chunk) elements, on the
// executor's workers and on the calling thread, which works too. Chunks run
// in no particular order. If fn throws, no new chunks start and the first
// exception is rethrown here once every running chunk has finished. Returns
// when every chunk has run; helper jobs clean themselves up in their serial
// step, so an unrelated stuck job delays only that clean-up. Blocking.
template <class Fn>
void parallel_chunks(ordered_executor& ex, std::uint64_t begin, std::uint64_t end, std::uint64_t min_chunk,
                     Fn fn) {
  if (end <= begin) return;
  const std::uint64_t size = end - begin;
  const cpu_set cpus = ex.on_worker_thread() ? cpu_set{} : ex.cpus();
  const std::uint64_t workers = cpus.size();
  std::uint64_t chunk = workers == 0 ? size : (size + workers * 4 - 1) / (workers * 4);
  chunk = std::max<std::uint64_t>(chunk, std::max<std::uint64_t>(min_chunk, 1));
  const std::uint64_t nchunks = (size + chunk - 1) / chunk;

  struct state {
    Fn* fn;
    std::uint64_t begin, end, chunk, nchunks;
    std::atomic<std::uint64_t> next{0};  // relaxed: a ticket counter; chunks are independent
    detail::first_error err;
    detail::completion_counter helpers_finished;
    void work() {
      for (;;) {
        const std::uint64_t c = next.fetch_add(1, std::memory_order_relaxed);
        if (c >= nchunks) return;
        const std::uint64_t b = begin + c * chunk;
        const std::uint64_t e = std::min(end, b + chunk);
        try {
          (*fn)(b, e);
        } catch (...) {
          err.record(c, std::current_exception());
          next.store(nchunks, std::memory_order_relaxed);  // relaxed: only stops further tickets early
        }
      }
    }
  };
  auto st = std::make_shared<state>();
  st->fn = &fn;
  st->begin = begin;
  st->end = end;
  st->chunk = chunk;
  st->nchunks = nchunks;

  struct helper final : ordered_job {
    std::shared_ptr<state> st;
    void parallel() override {
      st->work();
      st->helpers_finished.add_one();  // after this the caller may return; st stays alive through our pointer
      done();
    }
    void serial() override { delete this; }
  };

  std::uint64_t helpers = 0;
  const std::uint64_t want = std::min<std::uint64_t>(workers, nchunks > 0 ? nchunks - 1 : 0);
  for (std::uint64_t i = 0; i < want; ++i) {
    auto* h = new helper;
    h->st = st;
    const int cb = cpus.ids()[i % cpus.size()];
    if (!ex.submit(*h, cb).ok()) {
      delete h;
      break;
    }
    ++helpers;
  }
  st->work();
  st->helpers_finished.wait_all(helpers);
  st->err.rethrow_if_any();
}

}  // namespace rcukit

// The engine (definitions of the members declared above).
#include "rcukit/detail/executor_core.hpp"  // IWYU pragma: export
