// SPDX-License-Identifier: MIT
// rcukit/ordered_executor.hpp -- order-preserving parallel executor (padata).
//
// The idea (Steffen Klassert's padata, kernel/padata.c, LWN 2010-04-06): jobs
// are numbered in submission order, their parallel() halves run on any
// worker CPU, may finish in any order, and are then re-serialized: each job's
// serial() runs on the thread pinned to the callback CPU named at
// submission, in sequence order, one at a time per callback CPU.
//
// Where the code is (docs/DESIGN.md says why):
//   cpu_set.hpp, ordered_job.hpp      the vocabulary (CPU sets, the job, the options)
//   executor_front_ends.hpp           ordered_transform, parallel_chunks
//   detail/executor_core.hpp          the engine: submit, done, the reorder step
//   detail/executor_worker.hpp        the loop each worker thread runs
//   detail/executor_queue.hpp         the lists between the threads
//   detail/ordered_executor_impl.hpp  this class's member definitions
//   src/executor_core.cpp             construction, CPU-set changes, drain, teardown
//   src/executor_threads.cpp          creating, pinning and stopping the worker threads
//   src/cpu_topology.cpp              cpu_set::all(), thread pinning
//
// The engine:
//   submit -> reserve an in-flight slot -> take seq -> push onto a worker's
//   parallel list -> parallel() ... done() -> store the job in
//   ring[seq mod capacity] -> the one "reorderer" moves every consecutive
//   ready job, in seq order, to its callback worker's serial list -> that
//   worker runs serial() -> the in-flight slot is given back.
// Every hand-off is batched where the order allows: the front ends submit up
// to 16 jobs with one reservation, one sequence fetch_add and one list push;
// the reorderer pushes each run of consecutive jobs with one callback CPU as
// one chain; a worker takes its whole list with one exchange and gives
// in-flight slots back once per 32 serial steps. Dealing: submit() deals
// runs of 8 consecutive sequence numbers round-robin; a front-end batch of
// tiny jobs goes to the callback CPU's worker while its parallel backlog
// (jobs queued times its measured time per job) is under 50 us, else to the
// least-backlogged worker; a batch of long jobs is split into chunks of
// about 20 us of work, each dealt to the worker with the fewest jobs waiting.
//
// The mechanisms behind the invariants below: the reorderer is elected by a
// counter (`pending`: only the done() that moves it from 0 drains, and the
// drainer leaves only when its fetch_sub brings it back to exactly 0);
// sequence numbers are 64-bit and compared only for equality and by unsigned
// difference (wraparound is harmless; executor_options::first_seq lets tests
// cross it); done() from a foreign thread runs inside an RCU read side and
// the destructor waits a grace period after drain(); each sequence number
// has a claim word beside its ring slot that exactly one completion wins;
// the CPU list is an immutable snapshot published through an atomic pointer
// and retired through RCU, and a removed CPU's worker finishes what is
// queued to it. docs/DESIGN.md tells which padata bug each one rules out,
// and why every hand-off is batched.
//
// Numbered invariants (referred to in detail/executor_core.hpp):
//  (1) in_flight <= max_in_flight <= ring capacity; a job's ring slot is empty
//      when its done() stores into it (checked, always on: a violation aborts).
//      A job is in flight from submit() until just before its serial() runs
//      (its flag, J2/J3): submit() of a job in flight returns
//      FailedPrecondition before it reserves anything, so one job never holds
//      two sequence numbers at once.
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

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/cpu_set.hpp"
#include "rcukit/ordered_job.hpp"

namespace rcukit {

class ordered_executor;
namespace detail {
// Batched submit for the front ends (see executor_core::submit_batch).
std::size_t submit_batch(ordered_executor& ex, ordered_job* const* js, std::size_t n, int cb_cpu);
}  // namespace detail

// padata_instance. All public functions may be called from any thread except
// where noted. The executor is started when constructed.
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
  // inside an rcu::memb read side: either aborts, with a message that names
  // the executor and the rule (a destructor has no caller location).
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
  // queued): FailedPrecondition (stopped, or j still in flight: submitted
  // and its serial() not started yet; J2/J3), InvalidArgument (cb_cpu not in
  // the current set), ResourceExhausted (full and on_full == fail, or full
  // and called from one of this executor's threads). j must stay alive until
  // its serial() has started; it may be submitted again from inside its own
  // serial() or after it.
  absl::Status submit(ordered_job& j, int cb_cpu);

  // Blocks until the serial() of every job submitted before the call has
  // returned. A job that never calls done() holds back every later job and
  // makes drain() wait forever: that is the contract. Must not be called
  // from one of this executor's threads (it would wait for itself): that
  // aborts naming the caller's file and line (`where`, filled in by default).
  void drain(detail::call_site where = detail::call_site::current());

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

}  // namespace rcukit

// The member definitions, and the front ends (ordered_transform,
// parallel_chunks), so that this one include gives the API of API.md.
#define RCUKIT_ORDERED_EXECUTOR_IMPL
#include "rcukit/detail/ordered_executor_impl.hpp"  // IWYU pragma: export
#undef RCUKIT_ORDERED_EXECUTOR_IMPL
#include "rcukit/executor_front_ends.hpp"  // IWYU pragma: export
