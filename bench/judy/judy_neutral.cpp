// SPDX-License-Identifier: MIT
// A plain-loop harness for rcukit::judy_array against libJudy JudyL, one
// structure per process, to take judy_bench's framework out of the figures
// and to test, one factor at a time, why its lookup-hit ratio (issue 17:
// 0.64x) and another harness's (issue 26: 1.0x) differ.
//
//   judy_neutral <rcukit|judyl> <seq|rand|randNN> <shuffled|insertion|sorted> <indep|dep> [passes]
//
// Builds 10^6 keys (judy_bench's key sets: seq 0..10^6-1, rand = mt19937_64(43)
// draws | 1), then times `passes` passes of lookups over every key in the
// given probe order and prints the median pass. indep: each lookup's key is
// read from the probe array only, so the CPU may overlap the cache misses of
// consecutive lookups (judy_bench's find_hit loop). dep: each lookup's key is
// made data-dependent on the previous lookup's value, so lookups run one
// after the other (pure latency). Also prints the insert time per key and
// the allocator's bytes per key (mallinfo2 after minus before, after
// rcu::barrier()).
#include <Judy.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "rcukit/judy_array.hpp"
#include "rcukit/rcu.hpp"

namespace {

constexpr std::size_t kN = 1'000'000;
constexpr std::uint64_t kXor = 0x5555;

double heap_bytes() {
  const struct mallinfo2 mi = mallinfo2();
  return static_cast<double>(mi.uordblks + mi.hblkhd);
}

struct rcukit_side {
  rcukit::judy_array<std::uint64_t> a;
  void insert(std::uint64_t k) { (void)a.insert(k, k ^ kXor); }
  std::uint64_t get(std::uint64_t k) const { return *a.find(k); }
};
struct judyl_side {
  Pvoid_t arr = nullptr;
  ~judyl_side() { JudyLFreeArray(&arr, PJE0); }
  void insert(std::uint64_t k) {
    *reinterpret_cast<PWord_t>(JudyLIns(&arr, static_cast<Word_t>(k), PJE0)) = k ^ kXor;
  }
  std::uint64_t get(std::uint64_t k) const {
    return *reinterpret_cast<PWord_t>(JudyLGet(arr, static_cast<Word_t>(k), PJE0));
  }
};

template <class S>
int run(int bits, const char* order, bool dep, int passes) {
  const bool rand = bits != 0;
  std::vector<std::uint64_t> keys;
  std::mt19937_64 rng(42 + (rand ? 1 : 0));
  if (!rand) {
    for (std::uint64_t i = 0; i < kN; ++i) keys.push_back(i);
  } else {
    // Distinct random keys of `bits` bits (64: judy_bench's rand set).
    std::vector<std::uint64_t> seen;
    while (keys.size() < kN) {
      const std::uint64_t k = (bits == 64 ? rng() : rng() >> (64 - bits)) | 1;
      keys.push_back(k);
      if (keys.size() == kN) {
        seen = keys;
        std::sort(seen.begin(), seen.end());
        seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
        if (seen.size() < kN) {  // duplicates (small key spaces): draw again
          keys.clear();
          std::shuffle(seen.begin(), seen.end(), rng);
          keys = seen;
        }
      }
    }
  }
  std::vector<std::uint64_t> q = keys;
  if (std::strcmp(order, "shuffled") == 0) {
    std::shuffle(q.begin(), q.end(), rng);
  } else if (std::strcmp(order, "sorted") == 0) {
    std::sort(q.begin(), q.end());
  }  // "insertion": the order the keys were inserted in

  rcukit::rcu::barrier<rcukit::rcu::memb>();
  const double before = heap_bytes();
  auto s = std::make_unique<S>();
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t k : keys) s->insert(k);
  const auto t1 = std::chrono::steady_clock::now();
  rcukit::rcu::barrier<rcukit::rcu::memb>();
  const double bytes = heap_bytes() - before;

  std::vector<double> ns;
  std::uint64_t sink = 0;
  for (int p = 0; p < passes; ++p) {
    const auto a = std::chrono::steady_clock::now();
    if (dep) {
      std::uint64_t prev = kXor;  // value of "key 0 ^ kXor": makes the first key q[0]
      std::uint64_t prev_key = 0;
      for (std::uint64_t k : q) {
        // (prev ^ kXor ^ prev_key) is 0 when the previous lookup was right,
        // but the CPU only learns so once that lookup's value has arrived.
        const std::uint64_t key = k ^ (prev ^ kXor ^ prev_key);
        prev = s->get(key);
        prev_key = key;
      }
      sink += prev;
    } else {
      for (std::uint64_t k : q) sink += s->get(k);
    }
    const auto b = std::chrono::steady_clock::now();
    ns.push_back(std::chrono::duration<double, std::nano>(b - a).count() / static_cast<double>(q.size()));
  }
  std::sort(ns.begin(), ns.end());
  // Transparent huge pages backing this process's anonymous memory (kB).
  long thp_kb = -1;
  if (FILE* f = std::fopen("/proc/self/smaps_rollup", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr)
      if (std::sscanf(line, "AnonHugePages: %ld kB", &thp_kb) == 1) break;
    std::fclose(f);
  }
  std::printf("thp_kB %ld  ", thp_kb);
  std::printf("insert_ns %.1f  lookup_ns %.1f (min %.1f max %.1f)  heap_B/key %.2f  sink %llu\n",
              std::chrono::duration<double, std::nano>(t1 - t0).count() / kN, ns[ns.size() / 2], ns.front(),
              ns.back(), bytes / kN, static_cast<unsigned long long>(sink & 1));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s <rcukit|judyl> <seq|rand|randNN> <shuffled|insertion|sorted> <indep|dep> [passes]\n",
                 argv[0]);
    return 2;
  }
  // seq, rand (64-bit keys) or randNN (NN-bit keys, e.g. rand32)
  const int bits = std::strncmp(argv[2], "rand", 4) != 0 ? 0 : argv[2][4] != 0 ? std::atoi(argv[2] + 4) : 64;
  const bool dep = std::strcmp(argv[4], "dep") == 0;
  const int passes = argc > 5 ? std::atoi(argv[5]) : 5;
  if (std::strcmp(argv[1], "rcukit") == 0) return run<rcukit_side>(bits, argv[3], dep, passes);
  return run<judyl_side>(bits, argv[3], dep, passes);
}
