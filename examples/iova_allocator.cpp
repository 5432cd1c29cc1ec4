// SPDX-License-Identifier: MIT
// iova_allocator: I/O virtual addresses for a device behind an IOMMU, as
// Linux's drivers/iommu/iova.c hands them out (docs/iova.md).
//
//  1. An iova_domain over 4 KiB pages with reserved ranges (an MMIO window
//     the device must never be given), size-aligned top-down allocations
//     limited to the 32-bit window, wide allocations above 4 GiB, find and
//     free.
//  2. An iova_magazine_cache in front of it: four threads map and unmap
//     small buffers (1-32 pages) through per-thread magazines; no range is
//     ever handed out twice, and after flush() everything is back in the
//     domain.
//  3. A full domain: the cache flushes its magazines and retries before it
//     reports ResourceExhausted.
// Every result is checked; a wrong one exits with status 1.
#include <bit>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "example_check.hpp"
#include "rcukit/iova.hpp"

using Domain = rcukit::iova_domain<>;  // over the extent skiplist (the default index)

constexpr uint64_t kPage = 4096;
constexpr uint64_t kDma32Last = (uint64_t{1} << 32) / kPage - 1;  // last pfn below 4 GiB (inclusive limit)
constexpr uint64_t kEnd = (uint64_t{1} << 48) / kPage;            // a 48-bit address space
constexpr uint64_t kWideLast = kEnd - 1;

// The live ranges of one test, to prove no page is handed out twice.
class live_set {
 public:
  void add(uint64_t pfn, uint64_t n) {
    std::lock_guard g(mu_);
    auto it = live_.upper_bound(pfn);
    CHECK(it == live_.begin() || std::prev(it)->second <= pfn, "range handed out twice");
    CHECK(it == live_.end() || it->first >= pfn + n, "range handed out twice");
    live_.emplace(pfn, pfn + n);
  }
  void remove(uint64_t pfn) {
    std::lock_guard g(mu_);
    CHECK(live_.erase(pfn) == 1, "freeing a range that is not live");
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, uint64_t> live_;
};

void domain_basics() {
  Domain dom(kPage, 1, kEnd);  // pfn 0 is never handed out (IOVA_START_PFN = 1)
  // The device must never be given the IOAPIC window or a 256 MiB MMIO
  // window right below 4 GiB: reserve them (inclusive pfn ranges).
  CHECK_OK(dom.reserve(0xfee00, 0xfeeff));
  CHECK_OK(dom.reserve(0xf0000, 0xfffff));  // covers the IOAPIC window: parts already reserved are kept
  CHECK(dom.find(0xf8000).has_value(), "a reserved page is found");
  CHECK(dom.free(0xf0000).code() == absl::StatusCode::kNotFound, "reservations are never freed");

  // 32-bit requests: top-down below the reservation, each aligned to its size
  // rounded up to a power of two. On an empty domain they descend.
  auto a = dom.alloc(16, kDma32Last, true);
  CHECK_OK(a);
  CHECK(*a == 0xf0000 - 16, "the first 32-bit range sits right below the reserved window");
  auto b = dom.alloc(3, kDma32Last, true);  // 3 pages, aligned to 4
  CHECK_OK(b);
  CHECK(*b == *a - 4 && *b % 4 == 0, "the next one descends");
  // A wide request (a 64-bit capable device) is placed above 4 GiB, so it
  // does not use up the scarce 32-bit space.
  auto w = dom.alloc(256, kWideLast, true);
  CHECK_OK(w);
  CHECK(*w > kDma32Last && *w + 256 <= kEnd && *w % 256 == 0, "wide range above 4 GiB");

  // find() returns the allocation containing any of its pages.
  auto f = dom.find(*a + 7);
  CHECK(f && f->start == *a && f->size == 16, "find inside an allocation");
  CHECK_OK(dom.free(*a));
  CHECK(!dom.find(*a + 7), "freed");
  CHECK(dom.free(*a).code() == absl::StatusCode::kNotFound, "double free is reported");
  CHECK_OK(dom.free(*b));
  CHECK_OK(dom.free(*w));

  // Bad input changes nothing and says so.
  CHECK(dom.alloc(0, kDma32Last, true).status().code() == absl::StatusCode::kInvalidArgument, "npages 0");
  CHECK(dom.reserve(10, 5).code() == absl::StatusCode::kInvalidArgument, "pfn_hi < pfn_lo");
  std::printf("iova_domain: reserve, 32-bit and wide size-aligned allocations, find, free: ok\n");
}

void magazines() {
  Domain dom(kPage, 1, kEnd);
  CHECK_OK(dom.reserve(0xf0000, 0xfffff));
  rcukit::iova_magazine_cache<Domain> cache(dom);
  live_set live;
  constexpr int kThreads = 4, kOps = 20000;
  std::vector<std::vector<uint64_t>> ever(kThreads);
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(42 + t);
      std::vector<std::pair<uint64_t, uint64_t>> mine;  // (pfn, npages) this thread holds
      for (int i = 0; i < kOps; ++i) {
        if (mine.size() < 64 && (mine.empty() || rng() % 2 == 0)) {
          const uint64_t n = 1 + rng() % 32;  // the sizes the magazines cache
          auto pfn = cache.alloc(n, kDma32Last);
          CHECK_OK(pfn);
          const uint64_t span = std::bit_ceil(n);  // the cache rounds up to a power of two
          CHECK(*pfn % span == 0 && *pfn + span - 1 <= kDma32Last, "alignment or limit violated");
          CHECK(*pfn + span <= 0xf0000 || *pfn > 0xfffff, "a reserved page was handed out");
          live.add(*pfn, span);
          mine.emplace_back(*pfn, n);
          ever[t].push_back(*pfn);
        } else {
          const size_t k = rng() % mine.size();
          live.remove(mine[k].first);  // before the range can be handed out again
          CHECK(cache.free(mine[k].first, mine[k].second).ok(), "a live range is freed");
          mine[k] = mine.back();
          mine.pop_back();
        }
      }
      for (auto [pfn, n] : mine) {
        live.remove(pfn);
        CHECK(cache.free(pfn, n).ok(), "a live range is freed");
      }
    });
  }
  for (auto& th : pool) th.join();
  cache.flush();  // every cached range goes back to the domain
  uint64_t n = 0;
  for (auto& v : ever) {
    for (uint64_t pfn : v) {
      CHECK(!dom.find(pfn).has_value(), "a range is still held after flush()");
      ++n;
    }
  }
  CHECK(dom.find(0xf8000).has_value(), "the reservation survives");
  std::printf(
      "iova_magazine_cache: %d threads, %llu allocations of 1-32 pages, none handed out twice, "
      "all back after flush(): ok\n",
      kThreads, static_cast<unsigned long long>(n));
}

void full_domain() {
  Domain small(kPage, 1, 65);  // 64 pages: [1, 65)
  rcukit::iova_magazine_cache<Domain> cache(small);
  std::vector<uint64_t> singles;
  for (int i = 0; i < 64; ++i) {
    auto p = cache.alloc(1, 64);
    CHECK_OK(p);
    singles.push_back(*p);
  }
  CHECK(cache.alloc(1, 64).status().code() == absl::StatusCode::kResourceExhausted, "the domain is full");
  for (uint64_t p : singles) CHECK(cache.free(p, 1).ok());  // they stay in this thread's magazines
  // 32 pages: no room in the domain while the magazines hold every page, so
  // the cache flushes them and asks again.
  auto big = cache.alloc(32, 64);
  CHECK_OK(big);
  CHECK(*big % 32 == 0, "size-aligned");
  CHECK(cache.free(*big, 32).ok());
  CHECK(cache.free(*big, 32).code() == absl::StatusCode::kNotFound, "a second free is refused");
  cache.flush();
  std::printf("full domain: the cache flushed its magazines and retried before failing: ok\n");
}

int main() {
  domain_basics();
  magazines();
  full_domain();
  rcukit::rcu::barrier();
  std::printf("iova_allocator: all checks passed\n");
  return 0;
}
