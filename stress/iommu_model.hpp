// SPDX-License-Identifier: MIT
// stress/iommu_model.hpp -- the pieces of rcukit-iommu-sim's model: the
// allocators under test behind one interface, the overlap checker, and the
// shared device. The runs that drive them are in iommu_sim.cpp; what each
// model choice stands for is in stress/README.md.
#pragma once

#include <time.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/iova.hpp"
#include "rcukit/rbtree.hpp"
#ifdef RCUKIT_WITH_MAPLE
#include "maple_extent_map.hpp"  // bench/peers/maple/: GPL-2.0 binaries only
#endif

namespace rcukit::iommu_sim {

using clock_type = std::chrono::steady_clock;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kStartPfn = 1;                                     // IOVA_START_PFN in the kernel
constexpr uint64_t kEndPfn = (uint64_t{1} << 48) / kPage;             // 48-bit IOVA space
constexpr uint64_t kDma32LimitPfn = (uint64_t{1} << 32) / kPage - 1;  // DMA_BIT_MASK(32), inclusive
constexpr uint64_t kFullLimitPfn = kEndPfn - 1;
// The IOAPIC's interrupt window 0xfee00000-0xfeefffff, which intel-iommu
// reserved in every domain (IOAPIC_RANGE_START..END).
constexpr uint64_t kIoapicFirstPfn = 0xfee00000 / kPage;
constexpr uint64_t kIoapicLastPfn = 0xfeefffff / kPage;

// CPU time consumed by the calling thread, in ns (CLOCK_THREAD_CPUTIME_ID:
// time spent spinning on a lock counts, time asleep does not).
inline uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// --- allocators ------------------------------------------------------------
// The 2013 intel-iommu policy (intel_alloc_iova): one size-aligned
// allocation per request, tried with the 32-bit limit first and, only if
// that fails, with the device's full limit. The domain keeps separate hints
// for the two (cached32_node / cached_node, include/rcukit/iova.hpp).
struct allocator {
  virtual ~allocator() = default;
  virtual absl::StatusOr<uint64_t> alloc(uint64_t npages) = 0;
  virtual void free(uint64_t pfn, uint64_t npages) = 0;
  virtual void flush() {}
  // True if the domain holds no allocation at all (call when quiescent).
  virtual bool empty() const = 0;
  // Whether alloc() returns real IOVAs (false for `off`).
  virtual bool tracks() const { return true; }
  // Reserves the inclusive pfn range (never handed out).
  virtual absl::Status reserve(uint64_t, uint64_t) { return absl::OkStatus(); }
};

// True if the domain holds no allocation (reservations aside). Quiescent.
template <class Domain>
bool no_allocations(const Domain& d) {
  bool none = true;
  d.index().for_each(0, UINT64_MAX, [&](const auto& e) {
    if (static_cast<uint64_t>(e.value) == Domain::kAllocated) none = false;
  });
  return none;
}

// IOMMU off: addresses are the physical pages themselves; nothing to track.
struct off_allocator final : allocator {
  absl::StatusOr<uint64_t> alloc(uint64_t) override { return 0; }
  void free(uint64_t, uint64_t) override {}
  bool empty() const override { return true; }
  bool tracks() const override { return false; }
};

template <class Index>
struct domain_allocator final : allocator {
  iova_domain<Index> domain{kPage, kStartPfn, kEndPfn};
  absl::StatusOr<uint64_t> alloc(uint64_t npages) override {
    auto r = domain.alloc(npages, kDma32LimitPfn, true);
    if (r.ok() || !absl::IsResourceExhausted(r.status())) return r;
    return domain.alloc(npages, kFullLimitPfn, true);
  }
  void free(uint64_t pfn, uint64_t) override {
    if (auto s = domain.free(pfn); !s.ok()) {
      std::cerr << "error: free(" << pfn << "): " << s << "\n";
      std::exit(1);
    }
  }
  bool empty() const override { return no_allocations(domain); }
  absl::Status reserve(uint64_t lo, uint64_t hi) override { return domain.reserve(lo, hi); }
};

template <class Index>
struct magazine_allocator final : allocator {
  iova_domain<Index> domain{kPage, kStartPfn, kEndPfn};
  iova_magazine_cache<iova_domain<Index>> cache{domain};
  absl::StatusOr<uint64_t> alloc(uint64_t npages) override {
    auto r = cache.alloc(npages, kDma32LimitPfn);
    if (r.ok() || !absl::IsResourceExhausted(r.status())) return r;
    return cache.alloc(npages, kFullLimitPfn);
  }
  void free(uint64_t pfn, uint64_t npages) override {
    // The cache's free is checked (issue 23): a refused free is a harness bug.
    if (auto s = cache.free(pfn, npages); !s.ok()) {
      std::cerr << "error: magazine free(" << pfn << ", " << npages << "): " << s << "\n";
      std::exit(1);
    }
  }
  void flush() override { cache.flush(); }
  bool empty() const override { return no_allocations(domain); }
  absl::Status reserve(uint64_t lo, uint64_t hi) override { return domain.reserve(lo, hi); }
};

#ifdef RCUKIT_WITH_MAPLE
// The kernel's maple tree as the IOVA index (the 2026 patches): top-down
// allocation with mas_empty_area_rev under the tree's lock, the same
// 32-bit-first policy as the others.
template <class Node>
struct maple_allocator final : allocator {
  maple::iova_tree<Node> tree{kStartPfn, kEndPfn};
  absl::StatusOr<uint64_t> alloc(uint64_t npages) override {
    auto r = tree.alloc(npages, kDma32LimitPfn);
    if (r.ok() || !absl::IsResourceExhausted(r.status())) return r;
    return tree.alloc(npages, kFullLimitPfn);
  }
  void free(uint64_t pfn, uint64_t) override {
    if (auto s = tree.free(pfn); !s.ok()) {
      std::cerr << "error: free(" << pfn << "): " << s << "\n";
      std::exit(1);
    }
  }
  bool empty() const override { return tree.no_allocations(); }
  absl::Status reserve(uint64_t lo, uint64_t hi) override { return tree.reserve(lo, hi); }
};
#endif

inline std::unique_ptr<allocator> make_allocator(const std::string& name) {
  if (name == "off") return std::make_unique<off_allocator>();
  if (name == "rbtree") return std::make_unique<domain_allocator<rbtree_extent_map<uint64_t>>>();
  if (name == "rbtree-augmented") {
    return std::make_unique<domain_allocator<rbtree_extent_map_augmented<uint64_t>>>();
  }
  if (name == "skiplist") return std::make_unique<domain_allocator<extent_skiplist<uint64_t>>>();
  if (name == "magazine+rbtree") return std::make_unique<magazine_allocator<rbtree_extent_map<uint64_t>>>();
  if (name == "magazine+rbtree-augmented") {
    return std::make_unique<magazine_allocator<rbtree_extent_map_augmented<uint64_t>>>();
  }
  if (name == "magazine+skiplist") return std::make_unique<magazine_allocator<extent_skiplist<uint64_t>>>();
#ifdef RCUKIT_WITH_MAPLE
  if (name == "maple") return std::make_unique<maple_allocator<maple::slab_emulation>>();
  if (name == "maple-node-cache") return std::make_unique<maple_allocator<maple::node_cache>>();
#endif
  return nullptr;
}

// A fresh allocator with the reservations intel-iommu made in every domain
// (domain_reserve_special_ranges): the IOAPIC window and, if asked, an MMIO
// hole of hole_mb MiB right below 4 GiB.
inline absl::StatusOr<std::unique_ptr<allocator>> make_domain(const std::string& name, uint64_t hole_mb) {
  auto a = make_allocator(name);
  if (!a) return absl::InvalidArgumentError(absl::StrCat("unknown allocator ", name));
  if (auto s = a->reserve(kIoapicFirstPfn, kIoapicLastPfn); !s.ok()) return s;
  if (hole_mb > 0) {
    const uint64_t pages = hole_mb * (1024 * 1024 / kPage);
    if (pages >= kDma32LimitPfn) return absl::InvalidArgumentError("--mmio-hole-mb must be below 4096");
    if (auto s = a->reserve(kDma32LimitPfn + 1 - pages, kDma32LimitPfn); !s.ok()) return s;
  }
  return a;
}

inline const std::vector<std::string> kAllocators = {
    "off",
    "rbtree",
    "rbtree-augmented",
    "skiplist",
    "magazine+rbtree",
    "magazine+rbtree-augmented",
    "magazine+skiplist",
#ifdef RCUKIT_WITH_MAPLE
    "maple",
    "maple-node-cache",
#endif
};

// Bounds and alignment of one allocation (invariant (1) of iova.hpp, with
// the window this model asks for); empty if it holds.
inline std::string check_range(uint64_t pfn, uint64_t npages) {
  if (pfn < kStartPfn || pfn + npages > kEndPfn) {
    return absl::StrCat("allocation [", pfn, ", +", npages, ") outside the domain");
  }
  if (pfn % std::bit_ceil(npages) != 0) {
    return absl::StrCat("allocation [", pfn, ", +", npages, ") not size-aligned");
  }
  return "";
}

// --- overlap checker: every live IOVA range, checked on each allocation -----
// Ranges below 4 GiB (nearly all) are bits of an atomic bitmap, one per
// page, so a check is one fetch_or per 64 pages and takes no lock (small
// requests come by the hundred thousand per second); the others are kept in
// a locked map.
class overlap_checker {
 public:
  overlap_checker() : bits_(new std::atomic<uint64_t>[kWords]) {
    for (size_t i = 0; i < kWords; ++i) bits_[i].store(0, std::memory_order_relaxed);  // before any thread
  }
  // Marks [pfn, pfn + n) live; false if any page of it already was.
  bool add(uint64_t pfn, uint64_t n) {
    if (pfn + n > kPages) {
      std::lock_guard g(mu_);
      auto it = live_.upper_bound(pfn);
      if (it != live_.begin() && std::prev(it)->second > pfn) return false;
      if (it != live_.end() && it->first < pfn + n) return false;
      live_.emplace(pfn, pfn + n);
      return true;
    }
    bool ok = true;
    for_words(pfn, n, [&](std::atomic<uint64_t>& w, uint64_t mask) {
      // relaxed: the allocator orders the previous owner's free, which comes
      // after its remove() below, before it hands the range out again;
      // coherence then makes this read-modify-write see the cleared bits.
      if ((w.fetch_or(mask, std::memory_order_relaxed) & mask) != 0) ok = false;
    });
    return ok;
  }
  // Marks [pfn, pfn + n) free (before the range goes back to the
  // allocator); false if it was not all live.
  bool remove(uint64_t pfn, uint64_t n) {
    if (pfn + n > kPages) {
      std::lock_guard g(mu_);
      auto it = live_.find(pfn);
      if (it == live_.end() || it->second != pfn + n) return false;
      live_.erase(it);
      return true;
    }
    bool ok = true;
    for_words(pfn, n, [&](std::atomic<uint64_t>& w, uint64_t mask) {
      // relaxed: as in add(); the allocator's free orders it before the next add().
      if ((w.fetch_and(~mask, std::memory_order_relaxed) & mask) != mask) ok = false;
    });
    return ok;
  }
  // Live pages below 4 GiB plus live ranges above. Call when quiescent.
  uint64_t live() const {
    uint64_t n = 0;
    for (size_t i = 0; i < kWords; ++i) n += std::popcount(bits_[i].load(std::memory_order_relaxed));
    std::lock_guard g(mu_);
    return n + live_.size();
  }

 private:
  static constexpr uint64_t kPages = kDma32LimitPfn + 1;
  static constexpr size_t kWords = kPages / 64;
  template <class F>
  void for_words(uint64_t pfn, uint64_t n, F f) {
    for (uint64_t p = pfn; p < pfn + n;) {
      const uint64_t bit = p % 64, take = std::min<uint64_t>(64 - bit, pfn + n - p);
      const uint64_t mask = take == 64 ? ~uint64_t{0} : ((uint64_t{1} << take) - 1) << bit;
      f(bits_[p / 64], mask);
      p += take;
    }
  }
  std::unique_ptr<std::atomic<uint64_t>[]> bits_;
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> live_;  // above 4 GiB: start -> end
};

// --- the shared device -------------------------------------------------------
struct io {
  std::vector<std::pair<uint64_t, uint64_t>> segments;  // (pfn, npages)
  uint64_t bytes = 0;
  std::atomic<bool> complete{false};  // release by the device, acquire by the owner
};

// One device shared by every submitter, moving bytes at a fixed rate, one
// queued IO at a time (stream: in submission order; random: a random queued
// IO next). Its clock is the wall clock and its progress is computed, not
// waited for: every call first advances it to now, completing each transfer
// whose end has passed and starting the next one back to back from that
// end. So what it moves over a window depends only on whether IOs were
// queued, never on how often (or whether) a submitter got a CPU to poll it;
// an allocator that cannot keep IOs queued shows as time the queue was
// empty. bytes_moved() counts the elapsed part of the current transfer too,
// so a window's throughput has no one-IO granularity.
class device {
 public:
  device(double mbps, bool random, uint64_t seed) : bytes_per_s_(mbps * 1e6), random_(random), rng_(seed) {}

  void submit(io* x) {
    std::lock_guard g(mu_);
    const auto now = clock_type::now();
    advance_locked(now);
    queue_.push_back(x);
    if (!busy_) start_next(now);
  }
  // Completes every transfer whose end has passed; returns when the current
  // transfer will end (or a short idle poll interval).
  clock_type::time_point poll() {
    std::lock_guard g(mu_);
    const auto now = clock_type::now();
    advance_locked(now);
    return busy_ ? end_ : now + std::chrono::microseconds(50);
  }
  // After the measurement: every queued IO and the one under way complete
  // at once, and so does anything submitted later (the drain then takes no
  // device time).
  void finish() {
    std::lock_guard g(mu_);
    finishing_ = true;
    advance_locked(clock_type::now());
  }
  // Bytes moved up to now: completed transfers, plus the elapsed share of
  // the current one.
  double bytes_moved() {
    std::lock_guard g(mu_);
    const auto now = clock_type::now();
    advance_locked(now);
    double b = static_cast<double>(done_bytes_);
    if (busy_) b += std::chrono::duration<double>(now - start_).count() * bytes_per_s_;
    return b;
  }

 private:
  void advance_locked(clock_type::time_point now) {
    if (finishing_ && busy_) end_ = std::min(end_, now);
    while (busy_ && now >= end_) {
      done_bytes_ += current_->bytes;  // before the store below: the owner may free the IO after it
      current_->complete.store(true, std::memory_order_release);  // pairs with the owner's acquire
      current_ = nullptr;
      busy_ = false;
      start_next(end_);  // back to back from the previous end when work is queued
    }
  }
  void start_next(clock_type::time_point at) {
    if (queue_.empty()) return;
    const size_t pick = random_ ? std::uniform_int_distribution<size_t>(0, queue_.size() - 1)(rng_) : 0;
    current_ = queue_[pick];
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(pick));
    start_ = at;
    end_ = finishing_ ? at
                      : at + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(
                                 static_cast<double>(current_->bytes) / bytes_per_s_));
    busy_ = true;
  }

  std::mutex mu_;
  const double bytes_per_s_;
  const bool random_;
  std::mt19937_64 rng_;
  std::deque<io*> queue_;
  io* current_ = nullptr;
  bool busy_ = false;
  bool finishing_ = false;
  clock_type::time_point start_{}, end_{};
  uint64_t done_bytes_ = 0;
};

// --- what one run shares with its workers -----------------------------------
struct segment_dist {
  uint64_t lo_pages, hi_pages;
  uint64_t draw(std::mt19937_64& rng) const {
    return std::uniform_int_distribution<uint64_t>(lo_pages, hi_pages)(rng);
  }
};

inline absl::StatusOr<uint64_t> parse_size(std::string s) {
  uint64_t mult = 1;
  if (!s.empty() && (s.back() == 'K' || s.back() == 'k'))
    mult = 1024, s.pop_back();
  else if (!s.empty() && (s.back() == 'M' || s.back() == 'm'))
    mult = 1024 * 1024, s.pop_back();
  else if (!s.empty() && (s.back() == 'G' || s.back() == 'g'))
    mult = 1024ull * 1024 * 1024, s.pop_back();
  uint64_t v = 0;
  if (!absl::SimpleAtoi(s, &v) || v == 0)
    return absl::InvalidArgumentError(absl::StrCat("bad size '", s, "'"));
  return v * mult;
}

inline absl::StatusOr<segment_dist> parse_segments(const std::string& s) {
  std::vector<std::string> parts = absl::StrSplit(s, '-');
  uint64_t lo = 0, hi = 0;
  if (parts.size() == 1 && absl::SimpleAtoi(parts[0], &lo))
    hi = lo;
  else if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &lo) || !absl::SimpleAtoi(parts[1], &hi)) {
    return absl::InvalidArgumentError("--segment-kb must be N or LO-HI");
  }
  if (lo < 4 || hi < lo) return absl::InvalidArgumentError("--segment-kb: need 4 <= LO <= HI");
  return segment_dist{lo / 4, hi / 4};
}

struct workload {
  int submitters;        // fio jobs (--threads)
  int workers;           // OS threads they are multiplexed onto (--workers)
  std::vector<int> pin;  // worker k runs on CPU pin[k]; empty: wherever the OS puts it
  int iodepth;
  uint64_t io_bytes;
  segment_dist seg;
  bool random;
  uint64_t seed;
};

}  // namespace rcukit::iommu_sim
