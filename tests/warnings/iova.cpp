// SPDX-License-Identifier: MIT
// Every public member of <rcukit/iova.hpp> (iova_domain over each index,
// iova_magazine_cache), used as a driver would: several threads map and
// unmap through the cache while the main thread reserves and looks up,
// then the bad input API.md names (empty range, npages == 0, a free of a
// range that is not a live allocation, a double free of a cached range).
#include <rcukit/iova.hpp>
#include <rcukit/rbtree.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "check.hpp"

namespace {

constexpr std::uint64_t kGranule = 4096;

template <class Index>
void exercise_domain() {
  using domain = rcukit::iova_domain<Index>;
  static_assert(std::is_same_v<typename domain::index_type, Index>);
  static_assert(domain::kAllocated != domain::kReserved);
  // 4 GiB sits at pfn 2^20; the domain reaches 64 pages above it.
  auto made = domain::create(kGranule, 1, (std::uint64_t{1} << 20) + 64);
  WARN_CHECK(made.ok());
  domain& d = **made;
  WARN_CHECK(d.status().ok());
  WARN_CHECK(d.granule() == kGranule && d.start_pfn() == 1);
  WARN_CHECK(d.end_pfn() == (std::uint64_t{1} << 20) + 64);
  WARN_CHECK(d.dma32_end_pfn() == (std::uint64_t{1} << 20));
  WARN_CHECK(d.reserve(100, 199).ok());
  WARN_CHECK(d.find(150)->start == 100);
  auto wide = d.alloc(8, UINT64_MAX, true);
  WARN_CHECK(wide.ok() && *wide >= d.dma32_end_pfn() && *wide % 8 == 0);
  auto low = d.alloc(3, d.dma32_end_pfn() - 1, false);
  WARN_CHECK(low.ok() && *low + 3 <= d.dma32_end_pfn());
  WARN_CHECK(d.reserve(*low, *low).code() == absl::StatusCode::kAlreadyExists);
  WARN_CHECK(d.find(*low + 2)->size == 3);
  WARN_CHECK(d.index().size() == 3);
  {
    rcukit::iova_magazine_cache<domain> cache(d);
    std::atomic<int> errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t) {
      ts.emplace_back([&, t] {
        std::vector<std::pair<std::uint64_t, std::uint64_t>> mine;
        for (int i = 0; i < 2000; ++i) {
          const std::uint64_t n = 1 + static_cast<std::uint64_t>((i * 7 + t) % 40);
          if (mine.size() < 16 && i % 3 != 2) {
            auto p = cache.alloc(n, d.dma32_end_pfn() - 1);
            if (!p.ok()) {
              errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join
              continue;
            }
            if (d.find(*p)->start != *p) errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
            mine.emplace_back(*p, n);
          } else if (!mine.empty()) {
            auto [p, m] = mine.back();
            mine.pop_back();
            if (!cache.free(p, m).ok()) errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
          }
        }
        for (auto [p, m] : mine) {
          if (!cache.free(p, m).ok()) errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
        }
      });
    }
    // Meanwhile: reservations and lookups from this thread.
    for (std::uint64_t r = 0; r < 50; ++r) {
      const absl::Status s = d.reserve(1000 + 2 * r, 1000 + 2 * r);
      WARN_CHECK(s.ok() || s.code() == absl::StatusCode::kAlreadyExists);
      WARN_CHECK(d.find(150).has_value());
    }
    for (auto& th : ts) th.join();
    WARN_CHECK(errors.load(std::memory_order_relaxed) == 0);  // relaxed: after join
    // Bad input through the cache.
    WARN_CHECK(cache.alloc(0, 1000).status().code() == absl::StatusCode::kInvalidArgument);
    WARN_CHECK(cache.free(150, 1).code() == absl::StatusCode::kNotFound);  // reserved
    WARN_CHECK(cache.free(5000, 1).code() == absl::StatusCode::kNotFound);  // never allocated
    auto p = cache.alloc(2, 10000);
    WARN_CHECK(p.ok());
    WARN_CHECK(cache.free(*p, 0).code() == absl::StatusCode::kInvalidArgument);
    WARN_CHECK(cache.free(*p, 2).ok());
    WARN_CHECK(cache.free(*p, 2).code() == absl::StatusCode::kNotFound);  // double free, now cached
    WARN_CHECK(d.free(*p).code() == absl::StatusCode::kNotFound);         // the domain refuses it too
    cache.flush();
    WARN_CHECK(!d.find(*p).has_value());
  }
  WARN_CHECK(d.free(*wide).ok());
  WARN_CHECK(d.free(*wide).code() == absl::StatusCode::kNotFound);
  WARN_CHECK(d.free(*low).ok());
  WARN_CHECK(d.free(150).code() == absl::StatusCode::kNotFound);  // reservations are never freed
  WARN_CHECK(d.alloc(0, 100, false).status().code() == absl::StatusCode::kInvalidArgument);
  WARN_CHECK(d.alloc(1, 0, false).status().code() == absl::StatusCode::kInvalidArgument);  // below start
  WARN_CHECK(d.reserve(9, 8).code() == absl::StatusCode::kInvalidArgument);
  // An empty range: refused by create(), reported by the constructed one.
  WARN_CHECK(domain::create(kGranule, 10, 10).status().code() == absl::StatusCode::kInvalidArgument);
  domain empty(kGranule, 10, 5);
  WARN_CHECK(empty.status().code() == absl::StatusCode::kInvalidArgument);
  WARN_CHECK(empty.alloc(1, 100, false).status().code() == absl::StatusCode::kInvalidArgument);
  WARN_CHECK(empty.free(7).code() == absl::StatusCode::kInvalidArgument);
  WARN_CHECK(empty.reserve(6, 7).code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace

int main() {
  exercise_domain<rcukit::extent_skiplist<std::uint64_t>>();
  exercise_domain<rcukit::rbtree_extent_map<std::uint64_t>>();
  exercise_domain<rcukit::rbtree_extent_map_augmented<std::uint64_t>>();
  rcukit::rcu::barrier();
  return 0;
}
