// SPDX-License-Identifier: MIT
// Ordered executor throughput vs oneTBB.
//
// Items per second for a tiny (~0 ns), 1 us and 10 us item at 1 and 2
// workers, three ways:
//   ordered_transform  rcukit's padata engine via its ordered front end: par
//                      in parallel, ser one at a time in input order;
//   engine_submit      the same engine driven directly with submit()/done()
//                      on preallocated jobs (no front end);
//   tbb_pipeline       oneTBB parallel_pipeline: serial_in_order source,
//                      parallel middle, serial_in_order sink, tokens = 4 x
//                      threads, in a task_arena of `threads`;
//   tbb_parallel_for   unordered tbb::parallel_for over the same items (the
//                      ceiling: no ordering at all).
// The sink checks the order (aborts on a violation) and folds the results so
// nothing is optimized away. "Work" is a busy loop on steady_clock.
// Note: rcukit's submitting thread is in addition to its workers (it mostly
// waits); oneTBB's calling thread is one of the arena's threads.
#include <benchmark/benchmark.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ranges>
#include <vector>

#include "rcukit/ordered_executor.hpp"

namespace {

inline std::uint64_t work(std::uint64_t i, std::int64_t ns) {
  if (ns > 0) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
    while (std::chrono::steady_clock::now() < end) {
    }
  }
  return i * 0x9E3779B97F4A7C15ull;
}

std::uint64_t items_for(std::int64_t ns) { return ns == 0 ? 200'000 : ns <= 1000 ? 20'000 : 4'000; }

rcukit::cpu_set first_cpus(int n) {
  rcukit::cpu_set out;
  for (int c : rcukit::cpu_set::all()) {
    if (static_cast<int>(out.size()) == n) break;
    out.insert(c);
  }
  return out;
}

struct order_sink {
  std::uint64_t expect = 0;
  std::uint64_t fold = 0;
  void operator()(std::uint64_t i, std::uint64_t v) {
    if (i != expect) {
      std::fprintf(stderr, "order violated: %llu != %llu\n", static_cast<unsigned long long>(i),
                   static_cast<unsigned long long>(expect));
      std::abort();
    }
    ++expect;
    fold ^= v;
  }
};

void BM_ordered_transform(benchmark::State& state) {
  const std::int64_t ns = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const std::uint64_t n = items_for(ns);
  rcukit::ordered_executor ex(first_cpus(threads));
  if (!ex.status().ok()) {
    state.SkipWithError("not enough CPUs");
    return;
  }
  for (auto _ : state) {
    order_sink sink;
    auto r = std::views::iota(std::uint64_t{0}, n);
    rcukit::ordered_transform(
        ex, r.begin(), r.end(),
        [ns](std::uint64_t i) {
          return std::pair{i, work(i, ns)};
        },
        [&](std::pair<std::uint64_t, std::uint64_t> p) { sink(p.first, p.second); });
    benchmark::DoNotOptimize(sink.fold);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// The engine without the front end: the caller submits preallocated jobs
// directly (one callback CPU) and lets submit() block at max_in_flight (1000);
// with one callback CPU serial steps end in order, so an admitted job i
// proves job i - 1000 finished and a ring of 1024 jobs can be reused safely.
struct engine_job final : rcukit::ordered_job {
  std::uint64_t i = 0;
  std::int64_t ns = 0;
  std::uint64_t value = 0;
  order_sink* sink = nullptr;
  void parallel() override {
    value = work(i, ns);
    done();
  }
  void serial() override { (*sink)(i, value); }
};

void BM_engine_submit(benchmark::State& state) {
  const std::int64_t ns = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const std::uint64_t n = items_for(ns);
  const rcukit::cpu_set cpus = first_cpus(threads);
  rcukit::ordered_executor ex(cpus);
  if (!ex.status().ok()) {
    state.SkipWithError("not enough CPUs");
    return;
  }
  std::vector<engine_job> jobs(1024);
  for (auto _ : state) {
    order_sink sink;
    for (std::uint64_t i = 0; i < n; ++i) {
      engine_job& j = jobs[i % jobs.size()];
      j.i = i;
      j.ns = ns;
      j.sink = &sink;
      if (!ex.submit(j, *cpus.begin()).ok()) std::abort();
    }
    ex.drain();
    benchmark::DoNotOptimize(sink.fold);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void BM_tbb_pipeline(benchmark::State& state) {
  const std::int64_t ns = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const std::uint64_t n = items_for(ns);
  tbb::task_arena arena(threads);
  for (auto _ : state) {
    order_sink sink;
    arena.execute([&] {
      std::uint64_t next = 0;
      tbb::parallel_pipeline(
          static_cast<std::size_t>(4 * threads),
          tbb::make_filter<void, std::uint64_t>(tbb::filter_mode::serial_in_order,
                                                [&](tbb::flow_control& fc) -> std::uint64_t {
                                                  if (next >= n) {
                                                    fc.stop();
                                                    return 0;
                                                  }
                                                  return next++;
                                                }) &
              tbb::make_filter<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>>(
                  tbb::filter_mode::parallel,
                  [ns](std::uint64_t i) {
                    return std::pair{i, work(i, ns)};
                  }) &
              tbb::make_filter<std::pair<std::uint64_t, std::uint64_t>, void>(
                  tbb::filter_mode::serial_in_order,
                  [&](std::pair<std::uint64_t, std::uint64_t> p) { sink(p.first, p.second); }));
    });
    benchmark::DoNotOptimize(sink.fold);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void BM_tbb_parallel_for(benchmark::State& state) {
  const std::int64_t ns = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const std::uint64_t n = items_for(ns);
  tbb::task_arena arena(threads);
  for (auto _ : state) {
    std::atomic<std::uint64_t> fold{0};
    arena.execute([&] {
      tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, n),
                        [&](const tbb::blocked_range<std::uint64_t>& r) {
                          std::uint64_t f = 0;
                          for (std::uint64_t i = r.begin(); i != r.end(); ++i) f ^= work(i, ns);
                          fold.fetch_xor(f, std::memory_order_relaxed);
                        });
    });
    benchmark::DoNotOptimize(fold.load());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void args(benchmark::internal::Benchmark* b) {
  for (std::int64_t ns : {0, 1000, 10000}) {
    for (std::int64_t t : {1, 2}) b->Args({ns, t});
  }
  b->ArgNames({"item_ns", "workers"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_ordered_transform)->Apply(args);
BENCHMARK(BM_engine_submit)->Apply(args);
BENCHMARK(BM_tbb_pipeline)->Apply(args);
BENCHMARK(BM_tbb_parallel_for)->Apply(args);

}  // namespace
