// SPDX-License-Identifier: MIT
// judy_array: an ordered map from 64-bit keys to small values, read without
// locks while writers change it (docs/judy-array.md).
//
//  1. insert / find / insert_or_assign / erase over the whole key range
//     (0 and UINT64_MAX included), sparse and dense keys.
//  2. Ordered walks: for_each over an inclusive range, a cursor walk with
//     upper_equal (next key >= k) and a backward one with lower_equal.
//  3. Readers walk a stable range while a writer inserts and erases keys
//     around it: every walk sees exactly the stable keys, in order.
// Every result is checked; a wrong one exits with status 1.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "example_check.hpp"
#include "rcukit/judy_array.hpp"

struct record {  // values must be trivially copyable: they are copied out under RCU
  uint32_t owner;
  uint32_t version;
};

void basics() {
  rcukit::judy_array<record> ja;
  std::map<uint64_t, record> model;  // what the array must contain
  std::mt19937_64 rng(7);
  // Sparse random keys, a dense run, and both ends of the key space.
  std::vector<uint64_t> keys = {0, 1, UINT64_MAX, UINT64_MAX - 1};
  for (int i = 0; i < 20000; ++i) keys.push_back(rng());
  for (uint64_t k = 1 << 20; k < (1 << 20) + 5000; ++k) keys.push_back(k);
  for (uint64_t k : keys) {
    const record r{static_cast<uint32_t>(k % 1000), 1};
    const absl::Status s = ja.insert(k, r);
    if (model.emplace(k, r).second) {
      CHECK_OK(s);
    } else {
      CHECK(s.code() == absl::StatusCode::kAlreadyExists, "a duplicate insert must be refused");
    }
  }
  CHECK(ja.size() == model.size(), "size");
  for (const auto& [k, r] : model) {
    auto v = ja.find(k);
    CHECK(v && v->owner == r.owner && v->version == 1, "find");
  }
  CHECK(!ja.find(2).has_value(), "absent key");

  // insert_or_assign replaces; erase returns the old value.
  CHECK(!ja.insert_or_assign(UINT64_MAX, record{9, 2}), "UINT64_MAX was present: assigned, not inserted");
  CHECK(ja.find(UINT64_MAX)->version == 2, "assigned");
  model[UINT64_MAX] = record{9, 2};
  auto old = ja.erase(1 << 20);
  CHECK(old && old->version == 1, "erase returns the value");
  model.erase(1 << 20);
  CHECK(!ja.erase(1 << 20).has_value(), "erasing twice finds nothing");
  CHECK(ja.size() == model.size(), "size after erase");

  // Ordered walk of an inclusive range, compared with the model.
  const uint64_t lo = 1 << 20, hi = (1 << 20) + 4999;
  auto it = model.lower_bound(lo);
  uint64_t n = 0;
  ja.for_each(lo, hi, [&](uint64_t k, const record& r) {
    CHECK(it != model.end() && it->first == k && it->second.owner == r.owner, "for_each order or contents");
    ++it;
    ++n;
  });
  CHECK(n == 4999, "for_each count");  // the dense run minus the erased key

  // A cursor walk over the whole array with upper_equal (least key >= k).
  n = 0;
  it = model.begin();
  for (auto e = ja.upper_equal(0); e;
       e = e->first == UINT64_MAX ? std::nullopt : ja.upper_equal(e->first + 1)) {
    CHECK(it != model.end() && it->first == e->first, "upper_equal walk");
    ++it;
    ++n;
  }
  CHECK(n == model.size(), "upper_equal walk count");
  // And backwards with lower_equal (greatest key <= k).
  n = 0;
  auto rit = model.rbegin();
  for (auto e = ja.lower_equal(UINT64_MAX); e;
       e = e->first == 0 ? std::nullopt : ja.lower_equal(e->first - 1)) {
    CHECK(rit != model.rend() && rit->first == e->first, "lower_equal walk");
    ++rit;
    ++n;
  }
  CHECK(n == model.size(), "lower_equal walk count");
  std::printf(
      "judy_array: %zu keys (sparse, dense, 0 and UINT64_MAX), for_each and cursor walks both ways, "
      "%zu bytes held: ok\n",
      ja.size(), ja.memory_bytes());
}

void concurrent_walks() {
  rcukit::judy_array<uint64_t> ja;
  // Stable keys: multiples of 1000 in [0, 10^6). The writer only touches
  // keys that are not multiples of 1000.
  for (uint64_t k = 0; k < 1000000; k += 1000) CHECK_OK(ja.insert(k, k * 3));
  std::atomic<bool> stop{false};   // relaxed: only ends the readers' loops
  std::atomic<uint64_t> walks{0};  // relaxed: a statistic
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        uint64_t expect = 0, last = 0;
        bool first = true;
        ja.for_each(0, 999999, [&](uint64_t k, uint64_t v) {
          CHECK(first || k > last, "keys must come strictly ascending");
          first = false;
          last = k;
          if (k % 1000 == 0) {
            CHECK(k == expect && v == k * 3, "a stable key was missed or changed");
            expect += 1000;
          }
        });
        CHECK(expect == 1000000, "a walk must see every stable key");
        walks.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100000; ++i) {
    uint64_t k = rng() % 1000000;
    if (k % 1000 == 0) ++k;
    if (!ja.insert_or_assign(k, 1)) CHECK(ja.erase(k).has_value(), "the writer's own key vanished");
  }
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : readers) t.join();
  uint64_t stable = 0;
  ja.for_each(0, UINT64_MAX, [&](uint64_t k, uint64_t) { stable += k % 1000 == 0 ? 1 : 0; });
  CHECK(stable == 1000, "the stable keys are all there afterwards");
  std::printf("judy_array: 2 readers made %llu ordered walks while a writer made 100000 updates: ok\n",
              static_cast<unsigned long long>(walks.load(std::memory_order_relaxed)));
}

int main() {
  basics();
  concurrent_walks();
  rcukit::rcu::barrier();  // retired nodes are freed
  std::printf("judy_array: all checks passed\n");
  return 0;
}
