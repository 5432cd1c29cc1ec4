// SPDX-License-Identifier: MIT
// rcukit-skiplist-test -- a user-space replica of the kernel's skiplist_test
// module (Chris Mason, v2, June 2013; LWN "Skiplists II"), so the
// skiplist-versus-rbtree comparison can be re-run on any machine.
//
// Phases, as in the module, for each (structure, thread count):
//   fill    one thread inserts every item in order: key i*4096, size 4096
//   rounds  each thread runs --rounds rounds of
//             lookup      one random item
//             delete_many delete up to 128 adjacent items from a random one,
//                         then reinsert the ones this thread removed
//             delete_one  delete one random item, reinsert it
//   check   walk everything in order and verify the sequence
//   delete  remove every item
// Reported: fill ms, check ms, delete ms, and the mean over threads of each
// thread's round-loop time in seconds ("avg thread time"). With --repeat N
// every (structure, thread count) runs N times, interleaved (a repeat runs
// every structure in turn, the first one rotating); each cell is the median
// and <column>_runs lists the N values in repeat order, so a comparison
// can pair the structures repeat by repeat.
//
// Verification is part of every phase: a lookup that returns the wrong
// extent, a reinsert that fails, a walk out of sequence or a missing item is
// an error exit (status 1), never a number.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "harness/paired.hpp"
#include "harness/peers.hpp"
#include "harness/report.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/rbtree.hpp"
#ifdef RCUKIT_WITH_MAPLE
#include "maple_extent_map.hpp"
#endif

ABSL_FLAG(uint64_t, items, 100000, "items inserted by the fill phase (key i*4096, size 4096)");
ABSL_FLAG(uint64_t, rounds, 100000, "rounds per thread (lookup + delete_many + delete_one)");
ABSL_FLAG(std::string, threads, "1,2,4", "comma-separated thread counts");
ABSL_FLAG(std::string, structure, "skiplist,rbtree,rbtree-augmented,std-map-spinlock,btree-mutex",
          "comma-separated structures: skiplist, rbtree (the 2013 baseline), rbtree-augmented, "
          "std-map-spinlock, btree-mutex");
ABSL_FLAG(std::string, format, "table", "output format: table, tsv or json");
ABSL_FLAG(uint64_t, seed, 1, "random seed (thread t uses seed + t)");
ABSL_FLAG(int, repeat, 1, "runs per structure and thread count, interleaved across structures");

namespace {

using namespace rcukit;
using harness::fixed;

constexpr uint64_t kItemSize = 4096;
constexpr uint64_t kDeleteMany = 128;

struct run_result {
  double fill_ms = 0, check_ms = 0, delete_ms = 0, avg_thread_s = 0;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Runs the module's phases on a fresh Index; returns an error message on any
// verification failure.
template <class Index>
absl::StatusOr<run_result> run_one(uint64_t items, uint64_t rounds, int threads, uint64_t seed,
                                   harness::progress& prog) {
  auto index = std::make_unique<Index>();
  run_result res;

  // fill
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < items; ++i) {
    if (auto s = index->insert(extent{i * kItemSize, kItemSize}, i); !s.ok()) {
      return absl::InternalError(absl::StrCat("fill: insert of item ", i, " failed: ", s.ToString()));
    }
  }
  res.fill_ms = ms_since(t0);
  if (index->size() != items) {
    return absl::InternalError(absl::StrCat("fill: size ", index->size(), " != ", items));
  }
  prog.update("fill done");

  // rounds
  std::atomic<bool> failed{false};  // relaxed: read after join()
  std::vector<std::string> errors(threads);
  std::vector<double> thread_s(threads);
  std::barrier start(threads);
  auto worker = [&](int t) {
    std::mt19937_64 rng(seed + t);
    std::vector<uint64_t> removed;
    removed.reserve(kDeleteMany);
    start.arrive_and_wait();
    const auto w0 = std::chrono::steady_clock::now();
    auto err = [&](std::string msg) {
      errors[t] = std::move(msg);
      failed.store(true, std::memory_order_relaxed);
    };
    for (uint64_t r = 0; r < rounds && !failed.load(std::memory_order_relaxed); ++r) {
      // lookup: another thread may hold the item out right now; if found it
      // must be the right one.
      const uint64_t k = rng() % items;
      const uint64_t probe = k * kItemSize + rng() % kItemSize;
      if (auto e = index->lookup(probe); e && (e->range.start != k * kItemSize || e->value != k)) {
        return err(absl::StrCat("lookup(", probe, ") returned [", e->range.start, ", +", e->range.size,
                                ") value ", e->value));
      }
      // delete_many
      const uint64_t first = rng() % items;
      const uint64_t last = std::min(items, first + 1 + rng() % kDeleteMany);
      removed.clear();
      for (uint64_t j = first; j < last; ++j) {
        if (auto e = index->erase(j * kItemSize)) {
          if (e->range.start != j * kItemSize || e->value != j) {
            return err(absl::StrCat("erase(", j * kItemSize, ") removed the wrong extent"));
          }
          removed.push_back(j);
        }
      }
      for (uint64_t j : removed) {
        if (auto s = index->insert(extent{j * kItemSize, kItemSize}, j); !s.ok()) {
          return err(absl::StrCat("reinsert of item ", j, " failed: ", s.ToString()));
        }
      }
      // delete_one
      const uint64_t one = rng() % items;
      if (auto e = index->erase(one * kItemSize)) {
        if (e->value != one)
          return err(absl::StrCat("erase(", one * kItemSize, ") removed the wrong extent"));
        if (auto s = index->insert(extent{one * kItemSize, kItemSize}, one); !s.ok()) {
          return err(absl::StrCat("reinsert of item ", one, " failed: ", s.ToString()));
        }
      }
    }
    thread_s[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  for (auto& th : pool) th.join();
  if (failed.load(std::memory_order_relaxed)) {
    for (auto& e : errors) {
      if (!e.empty()) return absl::InternalError(absl::StrCat("rounds: ", e));
    }
  }
  double sum = 0;
  for (double s : thread_s) sum += s;
  res.avg_thread_s = sum / threads;
  prog.update("rounds done");

  // check
  t0 = std::chrono::steady_clock::now();
  uint64_t expect = 0;
  bool in_order = true;
  index->for_each(0, UINT64_MAX, [&](const auto& e) {
    if (e.range.start != expect * kItemSize || e.range.size != kItemSize || e.value != expect)
      in_order = false;
    ++expect;
  });
  res.check_ms = ms_since(t0);
  if (!in_order || expect != items) {
    return absl::InternalError(absl::StrCat("check: walk saw ", expect, " items (expected ", items, ")",
                                            in_order ? "" : ", out of sequence"));
  }

  // delete
  t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < items; ++i) {
    auto e = index->erase(i * kItemSize);
    if (!e || e->value != i) return absl::InternalError(absl::StrCat("delete: item ", i, " missing"));
  }
  res.delete_ms = ms_since(t0);
  if (index->size() != 0) return absl::InternalError("delete: structure not empty afterwards");
  index.reset();
  rcu::barrier();  // the skiplist's retired leaves are freed before the next run
  return res;
}

using runner = absl::StatusOr<run_result> (*)(uint64_t, uint64_t, int, uint64_t, harness::progress&);

struct structure {
  const char* name;
  runner run;
};

const structure kStructures[] = {
    {"skiplist", &run_one<extent_skiplist<uint64_t>>},
    {"rbtree", &run_one<rbtree_extent_map<uint64_t>>},
    {"rbtree-augmented", &run_one<rbtree_extent_map_augmented<uint64_t>>},
    {"std-map-spinlock", &run_one<harness::std_map_spinlock<uint64_t>>},
    {"btree-mutex", &run_one<harness::btree_mutex<uint64_t>>},
#ifdef RCUKIT_WITH_MAPLE
    // The kernel's maple tree (bench/peers/maple/: GPL-2.0 binaries only),
    // with the kernel test harness's slab emulation as shipped, and with a
    // plain per-thread node cache.
    {"maple", &run_one<maple::extent_map<maple::slab_emulation>>},
    {"maple-node-cache", &run_one<maple::extent_map<maple::node_cache>>},
#endif
};

// One (structure, thread count)'s repeats, in repeat order.
struct repeats {
  std::vector<double> fill_ms, check_ms, delete_ms, avg_thread_s;
};

std::string median_cell(const std::vector<double>& v, int precision) {
  return fixed(harness::median(v), precision);
}
std::string runs_cell(const std::vector<double>& v, int precision) {
  return absl::StrJoin(v, " ", [&](std::string* out, double x) { out->append(fixed(x, precision)); });
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Replica of the kernel's skiplist_test module (2013): fill, per-thread rounds, check, delete.\n"
      "Example: rcukit-skiplist-test --items 100000 --rounds 100000 --threads 1,2,4 --format tsv");
  harness::normalize_flag_names(argc, argv);
  absl::ParseCommandLine(argc, argv);

  std::vector<std::string> names;
  for (const auto& s : kStructures) names.emplace_back(s.name);
  auto fmt = harness::parse_format(absl::GetFlag(FLAGS_format));
  if (!fmt.ok()) return harness::fail(fmt.status().message());
  auto threads = harness::parse_int_list(absl::GetFlag(FLAGS_threads), 1, 4096);
  if (!threads.ok()) return harness::fail(absl::StrCat("--threads: ", threads.status().message()));
  auto chosen = harness::parse_name_list(absl::GetFlag(FLAGS_structure), names);
  if (!chosen.ok()) return harness::fail(absl::StrCat("--structure: ", chosen.status().message()));
  const uint64_t items = absl::GetFlag(FLAGS_items);
  const uint64_t rounds = absl::GetFlag(FLAGS_rounds);
  if (items == 0 || items > UINT64_MAX / kItemSize) return harness::fail("--items must be in [1, 2^52)");

  const int repeat = absl::GetFlag(FLAGS_repeat);
  if (repeat < 1) return harness::fail("--repeat must be at least 1");

  harness::table out(absl::StrCat("skiplist_test: ", items, " items, ", rounds, " rounds per thread, ",
                                  repeat, repeat == 1 ? " run" : " interleaved runs (medians)"),
                     {{"structure", "ADT", false},
                      {"threads", "Threads"},
                      {"items", "Items"},
                      {"rounds", "Rounds"},
                      {"runs", "Runs"},
                      {"fill_ms", "Fill (ms)"},
                      {"check_ms", "Check (ms)"},
                      {"delete_ms", "Delete (ms)"},
                      {"avg_thread_s", "Avg thread time (s)"},
                      {"fill_ms_runs", "Fill per run", false},
                      {"check_ms_runs", "Check per run", false},
                      {"delete_ms_runs", "Delete per run", false},
                      {"avg_thread_s_runs", "Avg thread time per run", false}});
  harness::progress prog("skiplist_test");
  std::vector<std::vector<repeats>> res(chosen->size(), std::vector<repeats>(threads->size()));
  for (int r = 0; r < repeat; ++r) {
    for (size_t i = 0; i < chosen->size(); ++i) {
      const size_t si = (i + static_cast<size_t>(r)) % chosen->size();  // rotates the first structure
      const std::string& name = (*chosen)[si];
      const structure& st = *std::find_if(std::begin(kStructures), std::end(kStructures),
                                          [&](const structure& s) { return name == s.name; });
      for (size_t ti = 0; ti < threads->size(); ++ti) {
        const int64_t t = (*threads)[ti];
        prog.update(absl::StrCat(name, " threads=", t, " run ", r + 1, "/", repeat));
        auto x = st.run(items, rounds, static_cast<int>(t), absl::GetFlag(FLAGS_seed), prog);
        if (!x.ok()) return harness::fail(absl::StrCat(name, " threads=", t, ": ", x.status().message()));
        repeats& rep = res[si][ti];
        rep.fill_ms.push_back(x->fill_ms);
        rep.check_ms.push_back(x->check_ms);
        rep.delete_ms.push_back(x->delete_ms);
        rep.avg_thread_s.push_back(x->avg_thread_s);
      }
    }
  }
  for (size_t si = 0; si < chosen->size(); ++si) {
    for (size_t ti = 0; ti < threads->size(); ++ti) {
      const repeats& rep = res[si][ti];
      out.add_row({(*chosen)[si], std::to_string((*threads)[ti]), std::to_string(items),
                   std::to_string(rounds), std::to_string(repeat), median_cell(rep.fill_ms, 2),
                   median_cell(rep.check_ms, 2), median_cell(rep.delete_ms, 2),
                   median_cell(rep.avg_thread_s, 4), runs_cell(rep.fill_ms, 2), runs_cell(rep.check_ms, 2),
                   runs_cell(rep.delete_ms, 2), runs_cell(rep.avg_thread_s, 4)});
    }
  }
  prog.done("all runs verified");
  out.print(*fmt, std::cout);
  return 0;
}
