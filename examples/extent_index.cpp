// SPDX-License-Identifier: MIT
// extent_index: an index of byte ranges ("extents"), as a file system keeps
// its extent map or an allocator its used ranges (docs/extent-index.md).
//
//  1. The same code over any extent index (the rcukit::extent_index concept):
//     insert, lookup of any address inside an extent, overlap refused,
//     erase, ordered for_each.
//  2. insert_hole: find a free aligned range and take it in one atomic step,
//     searching up from a hint or down from a limit, above a floor.
//  3. Leaf iteration on the skiplist: whole leaves at a time inside one RCU
//     read side, forwards and backwards.
//  4. Concurrency: two threads take holes while a reader walks the leaves;
//     every range handed out is distinct and found again afterwards.
// Every result is checked; a wrong one exits with status 1.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "example_check.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/rbtree.hpp"

using rcukit::extent;
using rcukit::hole_request;

constexpr uint64_t kBlock = 4096;

// 1 + 2: identical results from every backend (API.md fixes insert_hole's
// answer when no other writer runs).
template <rcukit::extent_index Index>
void basics(Index& idx, const char* name) {
  // 1000 extents of one block with one-block gaps: [0, 4096), [8192, 12288), ...
  for (uint64_t i = 0; i < 1000; ++i) CHECK_OK(idx.insert(extent{i * 2 * kBlock, kBlock}, i));
  CHECK(idx.size() == 1000);

  // Any address inside an extent finds it; an address in a gap finds nothing.
  auto e = idx.lookup(5 * 2 * kBlock + 100);
  CHECK(e && e->range.start == 5 * 2 * kBlock && e->range.size == kBlock && e->value == 5, name);
  CHECK(!idx.lookup(5 * 2 * kBlock + kBlock), name);
  // lookup(key, size) is an overlap query: the lowest extent touching the range.
  e = idx.lookup(5 * 2 * kBlock + kBlock, 3 * kBlock);
  CHECK(e && e->value == 6, name);

  // Overlapping inserts are refused and change nothing.
  CHECK(idx.insert(extent{5 * 2 * kBlock + 4000, 200}, 0).code() == absl::StatusCode::kAlreadyExists, name);
  CHECK(idx.size() == 1000, name);

  // insert_hole, upward: the lowest free aligned range at or above the hint.
  hole_request up;
  up.hint = 500 * 2 * kBlock;
  up.size = kBlock;
  up.align = kBlock;
  auto h = idx.insert_hole(up, 5000);
  CHECK_OK(h);
  CHECK(*h == 500 * 2 * kBlock + kBlock, name);  // the gap right after extent 500
  // Downward (the IOMMU's direction): the highest fitting range below the
  // limit. Two blocks aligned to two fit only above the last extent.
  hole_request down;
  down.dir = hole_request::direction::down;
  down.size = 2 * kBlock;
  down.align = 2 * kBlock;
  down.limit = uint64_t{1} << 30;
  h = idx.insert_hole(down, 5001);
  CHECK_OK(h);
  CHECK(*h == (uint64_t{1} << 30) - 2 * kBlock, name);
  // With a floor and a limit that leave no room: ResourceExhausted, nothing changed.
  down.floor = 0;
  down.limit = 1000 * 2 * kBlock;
  h = idx.insert_hole(down, 5002);
  CHECK(!h.ok() && h.status().code() == absl::StatusCode::kResourceExhausted, name);
  CHECK(idx.size() == 1002, name);

  // erase returns what it removed.
  auto gone = idx.erase(5 * 2 * kBlock);
  CHECK(gone && gone->value == 5 && !idx.lookup(5 * 2 * kBlock), name);

  // for_each visits every extent overlapping [lo, hi), ascending.
  uint64_t n = 0, last_end = 0;
  idx.for_each(0, UINT64_MAX, [&](const typename Index::entry& x) {
    CHECK(x.range.start >= last_end, name);
    last_end = x.range.end();
    ++n;
  });
  CHECK(n == 1001 && n == idx.size(), name);
  std::printf("%-26s 1000 inserts, overlap refused, holes up %s and down, ordered walk of %llu extents: ok\n",
              name, "(next-fit)", static_cast<unsigned long long>(n));
}

// 3: leaf iteration. A leaf view is a consistent copy of one leaf's extents;
// stepping to the next or previous leaf is valid inside the read side that
// produced the view.
void leaves(rcukit::extent_skiplist<uint64_t>& sl) {
  rcukit::rcu::read_guard<> g;
  uint64_t n = 0, nleaves = 0, last_end = 0;
  for (auto v = sl.first_leaf(g); v; v = sl.next_leaf(g, v)) {
    ++nleaves;
    for (size_t i = 0; i < v.size(); ++i) {
      const auto e = v.at(i);
      CHECK(e.range.start >= last_end, "leaf walk out of order");
      last_end = e.range.end();
      ++n;
    }
  }
  CHECK(n == sl.size(), "forward leaf walk missed extents");
  uint64_t back = 0, next_start = UINT64_MAX;
  for (auto v = sl.last_leaf(g); v; v = sl.prev_leaf(g, v)) {
    for (size_t i = v.size(); i-- > 0;) {
      const auto e = v.at(i);
      CHECK(e.range.end() <= next_start, "backward leaf walk out of order");
      next_start = e.range.start;
      ++back;
    }
  }
  CHECK(back == n, "backward leaf walk missed extents");
  std::printf("%-26s leaf walk: %llu extents in %llu leaves, both directions: ok\n", "extent_skiplist",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(nleaves));
}

// 4: two threads allocate 4 KiB holes in [1 GiB, 2 GiB) while a reader walks.
void concurrent(rcukit::extent_skiplist<uint64_t>& sl) {
  constexpr uint64_t kFloor = uint64_t{1} << 30, kLimit = uint64_t{2} << 30;
  constexpr int kPerThread = 2000;
  std::vector<uint64_t> got[2];
  std::atomic<bool> writers_done{false};  // relaxed: only ends the reader's loop
  std::atomic<uint64_t> walks{0};         // relaxed: a statistic
  std::thread reader([&] {
    while (!writers_done.load(std::memory_order_relaxed)) {
      rcukit::rcu::read_guard<> g;
      uint64_t last_end = 0;
      for (auto v = sl.first_leaf(g); v; v = sl.next_leaf(g, v)) {
        for (size_t i = 0; i < v.size(); ++i) {
          CHECK(v.at(i).range.start >= last_end, "concurrent leaf walk out of order");
          last_end = v.at(i).range.end();
        }
      }
      walks.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      hole_request r;
      r.floor = kFloor;
      r.hint = kFloor;
      r.limit = kLimit;
      r.size = kBlock;
      r.align = kBlock;
      for (int i = 0; i < kPerThread; ++i) {
        auto h = sl.insert_hole(r, 100000 + t);
        CHECK_OK(h);
        CHECK(*h >= kFloor && *h + kBlock <= kLimit && *h % kBlock == 0, "hole outside the request");
        got[t].push_back(*h);
      }
    });
  }
  for (auto& w : writers) w.join();
  writers_done.store(true, std::memory_order_relaxed);
  reader.join();
  std::vector<uint64_t> all(got[0]);
  all.insert(all.end(), got[1].begin(), got[1].end());
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end(), "one range handed out twice");
  for (int t = 0; t < 2; ++t) {
    for (uint64_t s : got[t]) {
      auto e = sl.lookup(s);
      CHECK(e && e->range.start == s && e->value == static_cast<uint64_t>(100000 + t), "a hole was lost");
    }
  }
  std::printf("%-26s 2 threads took %d distinct holes while a reader made %llu leaf walks: ok\n",
              "extent_skiplist", 2 * kPerThread,
              static_cast<unsigned long long>(walks.load(std::memory_order_relaxed)));
}

int main() {
  {
    rcukit::extent_skiplist<uint64_t> sl;
    basics(sl, "extent_skiplist");
    leaves(sl);
    concurrent(sl);
  }
  {
    rcukit::rbtree_extent_map<uint64_t> rb;  // the 2013 baseline: one lock, linear hole search
    basics(rb, "rbtree_extent_map");
  }
  {
    rcukit::rbtree_extent_map_augmented<uint64_t> ab;  // one lock, O(log n) hole search
    basics(ab, "rbtree_extent_map_augmented");
  }
  rcukit::rcu::barrier();  // every retired leaf is freed before exit
  std::printf("extent_index: all checks passed\n");
  return 0;
}
