// libFuzzer target: the ordered executor against a sequential run. The input
// chooses how many jobs, which cb_cpu each uses, and the order in which the
// jobs call done() (from this thread, after parallel() parked them); serial()
// must run each cb_cpu's jobs in submission order, once each, on its CPU.
#include <sched.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "fuzz_input.hpp"
#include "rcukit/ordered_executor.hpp"

namespace {

struct fuzz_job final : rcukit::ordered_job {
  int index = 0;
  int cb_cpu = 0;
  std::mutex* mu = nullptr;
  std::vector<fuzz_job*>* parked = nullptr;
  std::vector<std::vector<int>>* serial_log = nullptr;
  bool on_cpu = true;
  void parallel() override {
    std::lock_guard g(*mu);
    parked->push_back(this);
  }
  void serial() override {
    on_cpu = sched_getcpu() == cb_cpu;
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
  for (int i = 0; i < n; ++i) {
    auto j = std::make_unique<fuzz_job>();
    j->index = i;
    j->cb_cpu = cpus[in.byte() % cpus.size()];
    j->mu = &mu;
    j->parked = &parked;
    j->serial_log = &log;
    RCUKIT_FUZZ_CHECK(ex.submit(*j, j->cb_cpu).ok());
    jobs.push_back(std::move(j));
  }
  // Complete in the order the input picks, as jobs become parked.
  for (int done = 0; done < n;) {
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
  return 0;
}
