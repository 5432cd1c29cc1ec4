// SPDX-License-Identifier: MIT
// libFuzzer target: the ordered executor against a sequential run. The input
// chooses how many jobs, which cb_cpu each uses, how each completes, and the
// order in which parked jobs get their done() (from this thread). Per job
// (the top two bits of its cb_cpu byte): parked by parallel() for a done()
// from here (two of four cases); parked, then parallel() throws, so this
// thread's done() races with the executor's own completion; or parallel()
// throws without parking. serial() must run each cb_cpu's jobs in
// submission order, exactly once each, on its CPU, and parallel_error() must
// be set on every job that threw before anyone called done().
#include <sched.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "fuzz_input.hpp"
#include "rcukit/ordered_executor.hpp"

namespace {

struct fuzz_job final : rcukit::ordered_job {
  enum mode_t { kPark, kParkThenThrow, kThrow };
  int index = 0;
  int cb_cpu = 0;
  mode_t mode = kPark;
  std::mutex* mu = nullptr;
  std::vector<fuzz_job*>* parked = nullptr;
  std::vector<std::vector<int>>* serial_log = nullptr;
  bool on_cpu = true;
  bool error_ok = true;
  void parallel() override {
    const mode_t m = mode;  // once parked, the job may be completed and freed
    if (m != kThrow) {
      std::lock_guard g(*mu);
      parked->push_back(this);
    }
    if (m != kPark) throw std::runtime_error("fuzz: parallel() throws");
  }
  void serial() override {
    on_cpu = sched_getcpu() == cb_cpu;
    error_ok = mode != kThrow || parallel_error() != nullptr;  // kParkThenThrow: either side may win
    std::lock_guard g(*mu);
    (*serial_log)[static_cast<size_t>(cb_cpu)].push_back(index);
  }
};

rcukit::ordered_executor& executor() {
  static rcukit::ordered_executor ex(rcukit::cpu_set::all());  // one per process: threads are costly
  return ex;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rcukit::fuzz::input in(data, size);
  auto& ex = executor();
  const std::vector<int> cpus = rcukit::cpu_set::all().ids();
  const int n = in.byte() % 40;
  std::mutex mu;
  std::vector<fuzz_job*> parked;
  std::vector<std::vector<int>> log(static_cast<size_t>(cpus.back()) + 1);
  std::vector<std::unique_ptr<fuzz_job>> jobs;
  int to_park = 0;
  const uint64_t errors_before = ex.parallel_errors();
  uint64_t throwing = 0;
  for (int i = 0; i < n; ++i) {
    auto j = std::make_unique<fuzz_job>();
    j->index = i;
    const uint8_t b = in.byte();
    j->cb_cpu = cpus[b % cpus.size()];
    j->mode = (b >> 6) == 2 ? fuzz_job::kParkThenThrow : (b >> 6) == 3 ? fuzz_job::kThrow : fuzz_job::kPark;
    to_park += j->mode != fuzz_job::kThrow;
    throwing += j->mode != fuzz_job::kPark;
    j->mu = &mu;
    j->parked = &parked;
    j->serial_log = &log;
    RCUKIT_FUZZ_CHECK(ex.submit(*j, j->cb_cpu).ok());
    jobs.push_back(std::move(j));
  }
  // Complete in the order the input picks, as jobs become parked.
  for (int done = 0; done < to_park;) {
    fuzz_job* j = nullptr;
    {
      std::lock_guard g(mu);
      if (!parked.empty()) {
        const size_t k = in.byte() % parked.size();
        j = parked[k];
        parked.erase(parked.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
    if (j) {
      j->done();
      ++done;
    } else {
      sched_yield();
    }
  }
  ex.drain();
  // Sequential reference: each cb_cpu sees its jobs in submission order.
  std::vector<std::vector<int>> want(log.size());
  for (const auto& j : jobs) want[static_cast<size_t>(j->cb_cpu)].push_back(j->index);
  RCUKIT_FUZZ_CHECK(log == want);
  for (const auto& j : jobs) RCUKIT_FUZZ_CHECK(j->on_cpu);
  for (const auto& j : jobs) RCUKIT_FUZZ_CHECK(j->error_ok);
  // A worker counts a throw after the job may already have been serialized
  // on another worker (drain() does not wait for it); wait for the count,
  // with a liveness bound, so none is left over for the next input.
  const auto counted_by = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (ex.parallel_errors() - errors_before < throwing && std::chrono::steady_clock::now() < counted_by) {
    sched_yield();
  }
  RCUKIT_FUZZ_CHECK(ex.parallel_errors() - errors_before == throwing);
  RCUKIT_FUZZ_CHECK(ex.duplicate_dones() == 0);
  return 0;
}
