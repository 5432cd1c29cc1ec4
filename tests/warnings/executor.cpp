// SPDX-License-Identifier: MIT
// Every public member of <rcukit/ordered_executor.hpp> (cpu_set, the
// executor, ordered_job, the front ends), used as a producer/consumer
// pipeline would: two threads submit jobs whose serial() steps must come
// out in submission order per producer, while the CPU set changes; then the
// bad input API.md names (a bad CPU set, bad options, a callback CPU not in
// the set, a stopped executor, a job submitted again while in flight).
#include <rcukit/ordered_executor.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "check.hpp"

namespace {

struct order_job final : rcukit::ordered_job {
  std::uint64_t index = 0;
  std::uint64_t* next_expected = nullptr;  // written only by serial(), which runs on one callback CPU
  std::atomic<int>* out_of_order = nullptr;
  std::uint64_t square = 0;
  void parallel() override {
    square = index * index;
    done();
  }
  void serial() override {
    if (square != index * index || *next_expected != index) {
      out_of_order->fetch_add(1, std::memory_order_relaxed);  // relaxed: read after drain()
    }
    ++*next_expected;
  }
};

// parallel() waits until released, so the job stays in flight.
struct held_job final : rcukit::ordered_job {
  std::mutex m;
  std::condition_variable cv;
  bool go = false;
  int serials = 0;  // serial() only; read after drain()
  void release() {
    {
      std::lock_guard<std::mutex> g(m);
      go = true;
    }
    cv.notify_all();
  }
  void parallel() override {
    {
      std::unique_lock<std::mutex> l(m);
      cv.wait(l, [&] { return go; });
    }
    done();
  }
  void serial() override { ++serials; }
};

}  // namespace

int main() {
  rcukit::cpu_set all = rcukit::cpu_set::all();
  WARN_CHECK(!all.empty() && all.size() == all.ids().size());
  rcukit::cpu_set two;
  for (int c : all) {
    if (two.size() < 2) two.insert(c);
  }
  const int first = *two.begin();
  WARN_CHECK(two.contains(first) && !two.contains(-1));
  rcukit::cpu_set copy = two;
  WARN_CHECK(copy == two && copy.erase(first) && !copy.erase(first));

  rcukit::executor_options opts;
  opts.max_in_flight = 64;
  opts.on_full = rcukit::when_full::block;
  opts.first_seq = UINT64_MAX - 100;  // the sequence crosses 2^64 below
  auto made = rcukit::ordered_executor::create(two, opts);
  WARN_CHECK(made.ok());
  rcukit::ordered_executor& ex = **made;
  WARN_CHECK(ex.status().ok() && ex.cpus() == two && ex.max_in_flight() == 64);
  WARN_CHECK(!ex.on_worker_thread());

  // Two producers, each with its own callback CPU and its own order check.
  constexpr std::uint64_t kJobs = 3000;
  std::atomic<int> out_of_order{0};
  std::vector<std::uint64_t> next(2, 0);
  std::vector<std::vector<order_job>> jobs(2, std::vector<order_job>(kJobs));
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      const int cb = p == 0 ? first : *two.ids().rbegin();
      for (std::uint64_t i = 0; i < kJobs; ++i) {
        order_job& j = jobs[static_cast<std::size_t>(p)][i];
        j.index = i;
        j.next_expected = &next[static_cast<std::size_t>(p)];
        j.out_of_order = &out_of_order;
        WARN_CHECK(ex.submit(j, cb).ok());
      }
    });
  }
  // Meanwhile the CPU set changes (callback CPUs stay in it).
  for (int r = 0; r < 5; ++r) {
    WARN_CHECK(ex.set_cpus(two).ok());
    WARN_CHECK(ex.add_cpu(first).ok());
  }
  for (auto& t : producers) t.join();
  ex.drain();
  WARN_CHECK(out_of_order.load(std::memory_order_relaxed) == 0);  // relaxed: after drain()
  WARN_CHECK(next[0] == kJobs && next[1] == kJobs);
  WARN_CHECK(ex.in_flight() == 0 && ex.parallel_errors() == 0 && ex.serial_errors() == 0);
  WARN_CHECK(ex.duplicate_dones() == 0);
  WARN_CHECK(jobs[0][0].parallel_error() == nullptr);
  (void)jobs[0][0].sequence();

  // The front ends.
  std::vector<int> in(500);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i);
  std::vector<long> out;
  rcukit::ordered_transform(
      ex, in.begin(), in.end(), [](int v) { return static_cast<long>(v) * 3; },
      [&](long v) { out.push_back(v); });
  WARN_CHECK(out.size() == in.size() && out[499] == 499 * 3);
  std::atomic<std::uint64_t> covered{0};
  rcukit::parallel_chunks(ex, 0, 100000, 1000, [&](std::uint64_t lo, std::uint64_t hi) {
    covered.fetch_add(hi - lo, std::memory_order_relaxed);  // relaxed: read after the call returns
  });
  WARN_CHECK(covered.load(std::memory_order_relaxed) == 100000);  // relaxed: as above

  // Bad input.
  WARN_CHECK(rcukit::ordered_executor::create(rcukit::cpu_set{}).status().code() ==
             absl::StatusCode::kInvalidArgument);
  rcukit::executor_options bad;
  bad.max_in_flight = 0;
  WARN_CHECK(rcukit::ordered_executor::create(two, bad).status().code() == absl::StatusCode::kInvalidArgument);
  rcukit::ordered_executor cpu_less(rcukit::cpu_set{-5});
  WARN_CHECK(cpu_less.status().code() == absl::StatusCode::kInvalidArgument);
  WARN_CHECK(ex.set_cpus(rcukit::cpu_set{}).code() == absl::StatusCode::kInvalidArgument);
  WARN_CHECK(ex.remove_cpu(-3).code() == absl::StatusCode::kInvalidArgument);
  held_job h;
  WARN_CHECK(ex.submit(h, -1).code() == absl::StatusCode::kInvalidArgument);
  ex.stop();
  WARN_CHECK(ex.submit(h, first).code() == absl::StatusCode::kFailedPrecondition);
  ex.start();
  WARN_CHECK(ex.submit(h, first).ok());
  WARN_CHECK(ex.submit(h, first).code() == absl::StatusCode::kFailedPrecondition);  // in flight
  h.release();
  ex.drain();
  WARN_CHECK(h.serials == 1);
  WARN_CHECK(ex.submit(h, first).ok());  // its serial() ran: allowed again
  ex.drain();
  WARN_CHECK(h.serials == 2);
  if (two.size() > 1) WARN_CHECK(ex.remove_cpu(*two.ids().rbegin()).ok());
  return 0;
}
