// SPDX-License-Identifier: MIT
// ordered_executor: run the expensive half of each item in parallel and the
// cheap half in submission order, as the kernel's padata does for IPsec
// packets (docs/ordered-executor.md).
//
//  1. ordered_transform: a pipeline; par() runs on any worker, ser() sees
//     the results one at a time, in input order.
//  2. A padata-style job (ordered_job): parallel() does the work and calls
//     done(), serial() runs on the job's callback CPU in submission order.
//     While jobs are in flight another thread changes the CPU set with
//     set_cpus(); submit() refuses a callback CPU that is no longer in the
//     set, and the submitter picks one that is.
//  3. parallel_chunks (padata_do_multithreaded): a loop split over the
//     workers and the calling thread.
// Every result is checked; a wrong one exits with status 1.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "example_check.hpp"
#include "rcukit/ordered_executor.hpp"

// Some CPU work whose length varies with the input, so parallel halves
// finish out of order.
uint64_t work(uint64_t x) {
  uint64_t h = x * 0x9e3779b97f4a7c15ULL;
  for (uint64_t i = 0; i < 200 + (x % 7) * 300; ++i) h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL;
  return h;
}

void pipeline(rcukit::ordered_executor& ex) {
  std::vector<uint64_t> input(20000);
  for (uint64_t i = 0; i < input.size(); ++i) input[i] = i;
  std::vector<uint64_t> output;  // only ser() touches it: one call at a time
  rcukit::ordered_transform(
      ex, input.begin(), input.end(), [](uint64_t x) { return std::pair<uint64_t, uint64_t>(x, work(x)); },
      [&](std::pair<uint64_t, uint64_t> r) {
        CHECK(r.first == output.size(), "ser() must see the results in input order");
        output.push_back(r.second);
      });
  CHECK(output.size() == input.size(), "every item reaches ser()");
  for (uint64_t i = 0; i < output.size(); ++i) CHECK(output[i] == work(i), "par() computed the wrong value");
  std::printf("ordered_transform: %zu items, results in input order: ok\n", output.size());
}

// A padata-style job: one network packet to encrypt, say.
struct packet_job final : rcukit::ordered_job {
  uint64_t id = 0;
  int cb_cpu = 0;
  uint64_t result = 0;
  std::vector<std::vector<uint64_t>>* serial_log = nullptr;  // per callback CPU
  void parallel() override {
    result = work(id);
    done();  // padata_do_serial: may also be called later, from another thread
  }
  void serial() override {
    CHECK(result == work(id), "serial() sees what parallel() computed");
    (*serial_log)[cb_cpu].push_back(id);  // serial() calls of one callback CPU run one at a time
  }
};

void padata_style(rcukit::ordered_executor& ex, const rcukit::cpu_set& all) {
  const std::vector<int>& ids = all.ids();
  const int first = ids.front();
  constexpr int kJobs = 20000;
  std::vector<packet_job> jobs(kJobs);  // a job must stay alive until its serial() has started
  std::vector<std::vector<uint64_t>> serial_log(ids.back() + 1);

  // Meanwhile: shrink the set to one CPU and grow it back, over and over.
  std::atomic<bool> stop{false};  // relaxed: only ends the loop below
  std::atomic<int> changes{0};    // relaxed: a statistic
  std::thread changer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      CHECK_OK(ex.set_cpus(rcukit::cpu_set{first}));
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      CHECK_OK(ex.set_cpus(all));
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      changes.fetch_add(1, std::memory_order_relaxed);
    }
  });

  int refused = 0;
  for (int i = 0; i < kJobs; ++i) {
    packet_job& j = jobs[i];
    j.id = static_cast<uint64_t>(i);
    j.serial_log = &serial_log;
    j.cb_cpu = ids[i % ids.size()];  // spread the serial halves over the CPUs
    absl::Status s = ex.submit(j, j.cb_cpu);
    if (s.code() == absl::StatusCode::kInvalidArgument) {
      // That CPU was just removed from the set: use one that stays in it.
      ++refused;
      j.cb_cpu = first;
      s = ex.submit(j, j.cb_cpu);
    }
    CHECK_OK(s);
  }
  ex.drain();  // every serial() has run
  stop.store(true, std::memory_order_relaxed);
  changer.join();

  size_t total = 0;
  for (const auto& log : serial_log) {
    for (size_t k = 1; k < log.size(); ++k) CHECK(log[k - 1] < log[k], "serial() out of submission order");
    total += log.size();
  }
  CHECK(total == kJobs, "every job reached serial() once");
  std::printf(
      "ordered_job: %d jobs on %zu callback CPUs, serial order kept through %d set_cpus cycles "
      "(%d submits refused and redirected): ok\n",
      kJobs, ids.size(), changes.load(std::memory_order_relaxed), refused);
}

void chunks(rcukit::ordered_executor& ex) {
  constexpr uint64_t kN = 3000000;
  std::atomic<uint64_t> sum{0};  // relaxed: the total is read after parallel_chunks() returns
  rcukit::parallel_chunks(ex, 0, kN, 10000, [&](uint64_t b, uint64_t e) {
    uint64_t s = 0;
    for (uint64_t i = b; i < e; ++i) s += i;
    sum.fetch_add(s, std::memory_order_relaxed);
  });
  CHECK(sum.load(std::memory_order_relaxed) == kN * (kN - 1) / 2, "every chunk ran exactly once");
  std::printf("parallel_chunks: %llu elements: ok\n", static_cast<unsigned long long>(kN));
}

int main() {
  const rcukit::cpu_set all = rcukit::cpu_set::all();  // the CPUs this process may use
  CHECK(!all.empty(), "no usable CPU");
  {
    rcukit::ordered_executor ex(all);  // one worker thread pinned to each CPU
    CHECK_OK(ex.status());
    pipeline(ex);
    padata_style(ex, all);
    chunks(ex);
    ex.stop();  // padata_stop: submit() now refuses
    packet_job late;
    CHECK(ex.submit(late, all.ids().front()).code() == absl::StatusCode::kFailedPrecondition,
          "a stopped executor refuses work");
  }  // the destructor drains and joins
  std::printf("ordered_executor: all checks passed\n");
  return 0;
}
