// SPDX-License-Identifier: MIT
// libFuzzer target: iova_domain (over the skiplist and the augmented rbtree)
// against a naive interval set. Checked: every allocation lies inside the
// domain and under limit_pfn, is size-aligned when asked, overlaps no live
// allocation or reservation; ResourceExhausted only when the naive search
// finds no fitting range either; a wide request (window reaching above
// 4 GiB) lands below 4 GiB only when nothing fits above; free/find/reserve
// agree with the naive set. The granule puts 4 GiB in the middle of the
// domain, so 32-bit and wide requests (separate hints) mix.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <map>

#include "fuzz_input.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/iova.hpp"
#include "rcukit/rbtree.hpp"

namespace {

struct naive {
  std::map<uint64_t, std::pair<uint64_t, bool>> ranges;  // lo -> (exclusive end, is allocation)
  bool overlaps(uint64_t lo, uint64_t end) const {
    auto it = ranges.upper_bound(lo);
    if (it != ranges.begin() && std::prev(it)->second.first > lo) return true;
    return it != ranges.end() && it->first < end;
  }
  const std::pair<const uint64_t, std::pair<uint64_t, bool>>* containing(uint64_t pfn) const {
    auto it = ranges.upper_bound(pfn);
    if (it == ranges.begin()) return nullptr;
    --it;
    return it->second.first > pfn ? &*it : nullptr;
  }
  // Is there any aligned [s, s+n) free inside [lo, hi)?
  bool fits(uint64_t lo, uint64_t hi, uint64_t n, uint64_t align) const {
    uint64_t cursor = lo;
    auto try_gap = [&](uint64_t a, uint64_t b) {
      if (b <= a) return false;
      const uint64_t s = (a + align - 1) & ~(align - 1);
      return s >= a && s < b && b - s >= n;
    };
    for (const auto& [start, v] : ranges) {
      if (v.first <= cursor) continue;
      if (start >= hi) break;
      if (try_gap(cursor, std::min(start, hi))) return true;
      cursor = std::max(cursor, v.first);
    }
    return try_gap(cursor, hi);
  }
};

template <class Index>
void run(rcukit::fuzz::input& in) {
  constexpr uint64_t kStart = 1, kEnd = 1 << 12;
  constexpr uint64_t kGranule = uint64_t{1} << 21;
  constexpr uint64_t k4G = (uint64_t{1} << 32) / kGranule;  // first pfn above 4 GiB: 2048
  rcukit::iova_domain<Index> d(kGranule, kStart, kEnd);
  naive ref;
  for (int steps = 0; !in.empty() && steps < 2000; ++steps) {
    const uint8_t op = in.byte() % 5;
    switch (op) {
      case 0:
      case 1: {
        const uint64_t n = in.byte() % 70;
        const uint64_t limit = in.u64(2) % (kEnd + 64);
        const bool aligned = in.byte() & 1;
        auto r = d.alloc(n, limit, aligned);
        if (n == 0 || limit < kStart) {
          RCUKIT_FUZZ_CHECK(absl::IsInvalidArgument(r.status()));
          break;
        }
        const uint64_t hi = std::min(limit, kEnd - 1) + 1;
        const uint64_t align = aligned ? std::bit_ceil(n) : 1;
        if (!r.ok()) {
          RCUKIT_FUZZ_CHECK(absl::IsResourceExhausted(r.status()));
          RCUKIT_FUZZ_CHECK(!ref.fits(kStart, hi, n, align));  // never fail when a range fits
          break;
        }
        RCUKIT_FUZZ_CHECK(*r >= kStart && *r + n <= hi && *r % align == 0);
        RCUKIT_FUZZ_CHECK(!ref.overlaps(*r, *r + n));
        if (hi > k4G && *r < k4G) RCUKIT_FUZZ_CHECK(!ref.fits(k4G, hi, n, align));
        ref.ranges.emplace(*r, std::make_pair(*r + n, true));
        break;
      }
      case 2: {  // free an existing allocation or a random pfn
        uint64_t pfn = in.u64(2) % kEnd;
        if ((in.byte() & 1) && !ref.ranges.empty()) {
          auto it = ref.ranges.lower_bound(pfn);
          if (it == ref.ranges.end()) it = ref.ranges.begin();
          pfn = it->first;
        }
        auto it = ref.ranges.find(pfn);
        const bool is_alloc = it != ref.ranges.end() && it->second.second;
        const absl::Status s = d.free(pfn);
        RCUKIT_FUZZ_CHECK(s.ok() == is_alloc);
        if (is_alloc) ref.ranges.erase(it);
        break;
      }
      case 3: {
        const uint64_t pfn = in.u64(2) % (kEnd + 8);
        auto got = d.find(pfn);
        auto want = ref.containing(pfn);
        RCUKIT_FUZZ_CHECK(got.has_value() == (want != nullptr));
        // A reservation may be stored as several pieces; allocations are whole.
        if (want && want->second.second) {
          RCUKIT_FUZZ_CHECK(got->start == want->first && got->end() == want->second.first);
        }
        break;
      }
      case 4: {
        const uint64_t lo = in.u64(2) % kEnd, len = in.byte() % 40;
        const uint64_t hi = lo + len;  // inclusive
        bool overlaps_alloc = false;
        for (const auto& [s, v] : ref.ranges) {
          if (v.second && s <= hi && v.first > lo) overlaps_alloc = true;
        }
        const absl::Status st = d.reserve(lo, hi);
        RCUKIT_FUZZ_CHECK(st.ok() == !overlaps_alloc);
        if (st.ok()) {
          // Record the reserved pfns not already covered, as reservations.
          for (uint64_t p = lo; p <= hi; ++p) {
            if (!ref.containing(p)) ref.ranges.emplace(p, std::make_pair(p + 1, false));
          }
        }
        break;
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rcukit::fuzz::input in(data, size);
  if (in.byte() & 1) {
    run<rcukit::extent_skiplist<uint64_t>>(in);
  } else {
    run<rcukit::rbtree_extent_map_augmented<uint64_t>>(in);
  }
  rcukit::fuzz::periodic_barrier([] {});
  return 0;
}
