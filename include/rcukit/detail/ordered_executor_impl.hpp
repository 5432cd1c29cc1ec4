// SPDX-License-Identifier: MIT
// rcukit/detail/ordered_executor_impl.hpp -- the member definitions of
// ordered_executor and ordered_job::done(), over the engine
// (detail/executor_core.hpp) and its workers' loop
// (detail/executor_worker.hpp). Inline, so that submit() and done(), which
// every job pays for, compile into the caller's code (docs/DESIGN.md).
//
// An implementation file: <rcukit/ordered_executor.hpp> includes it after
// the class declarations it defines; it is not a header of its own.
#ifndef RCUKIT_ORDERED_EXECUTOR_IMPL
#error "impl file: include <rcukit/ordered_executor.hpp>, not rcukit/detail/ordered_executor_impl.hpp"
#endif
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/executor_core.hpp"
#include "rcukit/detail/executor_worker.hpp"
#include "rcukit/detail/fatal.hpp"

namespace rcukit {

inline void ordered_job::done(detail::call_site where) {
  if (core_ == nullptr) {
    detail::fatal("ordered_executor", "done() called on a job that was never submitted", where);
  }
  core_->done(this, where);
}

inline ordered_executor::ordered_executor(cpu_set cpus)
    : ordered_executor(std::move(cpus), executor_options{}) {}

inline ordered_executor::ordered_executor(cpu_set cpus, executor_options opts) {
  if (opts.max_in_flight < 1 || opts.max_in_flight > (std::size_t{1} << 20)) {
    init_status_ = absl::InvalidArgumentError("ordered_executor: max_in_flight must be in 1 .. 2^20");
    opts.max_in_flight = executor_options{}.max_in_flight;
  }
  core_ = std::make_unique<detail::executor_core>(opts, &detail::run_worker);
  if (init_status_.ok()) {
    init_status_ = core_->update_cpus([&](const cpu_set&) -> absl::StatusOr<cpu_set> { return cpus; });
  }
}

inline absl::StatusOr<std::unique_ptr<ordered_executor>> ordered_executor::create(cpu_set cpus,
                                                                                  executor_options opts) {
  auto ex = std::make_unique<ordered_executor>(std::move(cpus), opts);
  if (!ex->status().ok()) return ex->status();
  return ex;
}

// A destructor takes no arguments, so its misuse aborts naming the executor
// and the rule (and this line), not the caller (API.md).
inline ordered_executor::~ordered_executor() {
  if (core_->on_own_thread()) {
    detail::fatal("ordered_executor",
                  "destroyed from inside one of its own jobs (on one of its own threads); it would wait for "
                  "itself");
  }
  if (rcu::detail::in_read_side<detail::executor_rcu>()) {
    detail::fatal("ordered_executor",
                  "destroyed inside an rcu::memb read side; it waits for a grace period, which would never end");
  }
  core_->drain(detail::call_site::current());
  core_.reset();
}

inline void ordered_executor::start() { core_->set_running(true); }
inline void ordered_executor::stop() { core_->set_running(false); }
inline absl::Status ordered_executor::set_cpus(cpu_set cpus) {
  return core_->update_cpus([&](const cpu_set&) -> absl::StatusOr<cpu_set> { return cpus; });
}

inline absl::Status ordered_executor::add_cpu(int cpu) {
  return core_->update_cpus([&](cpu_set s) -> absl::StatusOr<cpu_set> {
    s.insert(cpu);
    return s;
  });
}

inline absl::Status ordered_executor::remove_cpu(int cpu) {
  return core_->update_cpus([&](cpu_set s) -> absl::StatusOr<cpu_set> {
    if (!s.erase(cpu)) {
      return absl::InvalidArgumentError("ordered_executor: CPU " + std::to_string(cpu) +
                                        " is not in the set");
    }
    return s;
  });
}

inline std::size_t detail::submit_batch(ordered_executor& ex, ordered_job* const* js, std::size_t n,
                                        int cb_cpu) {
  return ex.core_->submit_batch(js, n, cb_cpu);
}

inline cpu_set ordered_executor::cpus() const { return core_->cpus(); }
inline absl::Status ordered_executor::submit(ordered_job& j, int cb_cpu) { return core_->submit(j, cb_cpu); }
inline void ordered_executor::drain(detail::call_site where) { core_->drain(where); }
inline std::size_t ordered_executor::in_flight() const { return core_->in_flight(); }
inline std::size_t ordered_executor::max_in_flight() const { return core_->max_in_flight(); }
inline std::uint64_t ordered_executor::parallel_errors() const { return core_->parallel_errors(); }
inline std::uint64_t ordered_executor::serial_errors() const { return core_->serial_errors(); }
inline std::uint64_t ordered_executor::duplicate_dones() const { return core_->duplicate_dones(); }
inline bool ordered_executor::on_worker_thread() const { return core_->on_own_thread(); }

}  // namespace rcukit
