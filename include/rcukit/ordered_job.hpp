// SPDX-License-Identifier: MIT
// rcukit/ordered_job.hpp -- the vocabulary of the ordered executor: the job
// users derive from (ordered_job) and the executor's options.
//
// The contract of each member is here; what the executor does with a job is
// in <rcukit/ordered_executor.hpp> (the numbered invariants (1)-(7) are
// stated there), which is the header to include: it also defines done().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>

#include "rcukit/detail/fatal.hpp"

namespace rcukit {

namespace detail {
class executor_core;
struct executor_worker;
template <class Node>
class mpsc_list;
}  // namespace detail

// A unit of work; embed it (by inheritance) in your own struct, as the kernel
// embeds padata_priv. The executor keeps its bookkeeping inside the job, so
// submitting never allocates. A job may be submitted again once its serial()
// has started (the executor no longer touches it, invariant 4); submitting
// it while it is still in flight is refused (FailedPrecondition).
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
  // Submitted and its serial() not yet started (J2, J3): submit() refuses
  // the job meanwhile instead of corrupting the reorder ring.
  std::atomic<bool> in_flight_{false};
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

}  // namespace rcukit
