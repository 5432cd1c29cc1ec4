// SPDX-License-Identifier: MIT
// rcukit-iommu-sim -- a model of the 2013 IOMMU fio comparison (LWN
// "Skiplists II": 16 threads, iodepth 10, 20 MB IOs, two SSDs), so the IOVA
// allocators can be compared under the same load on any machine.
//
// The model (defaults and where they come from are in stress/README.md):
//  * --threads submitters each keep --iodepth IOs of --io-size in flight.
//  * An IO is split into DMA segments as the 2013 block layer and intel-iommu
//    did: the block layer cut an IO into requests of at most max_sectors_kb
//    (512 KiB by default), and intel_map_sg() mapped each request's
//    scatterlist with ONE size-aligned IOVA allocation covering all its
//    pages, tried below the 32-bit boundary first and then in the full
//    space. --segment-kb gives the distribution of that request size.
//  * Segments stay allocated while the IO is in flight and are freed when it
//    completes.
//  * One shared device moves bytes at --mbps (defaults: the article's
//    IOMMU-off figures, 2575 MB/s writes and 2861 MB/s reads). It transfers
//    one queued IO at a time; with --pattern stream it takes them in
//    submission order, with --pattern random it picks a random queued IO, so
//    completions (and frees) come back out of order and fragment the space.
//  * An allocator slower than the device leaves the device idle: throughput
//    is bytes completed per second of wall time.
//
// Two measurements per allocator and thread count (--measure):
//  * device: the model above. Columns mbps and pct_of_off (throughput, and
//    relative to the `off` row at the same thread count), and cpu_s_per_gb:
//    the CPU time the submitters spent inside the allocator (thread CPU
//    clock around each IO's allocations and around its frees, so time spun
//    on a lock counts), per GB of IO mapped plus per GB unmapped.
//    above_4g_pct: the share of allocations that did not fit below 4 GiB.
//  * capacity: the same threads, IO sizes, segments and completion order
//    (stream: each thread frees its oldest IO; random: a random one of its
//    own in flight) with no device: each thread maps and unmaps as fast as
//    the allocator lets it. Column capacity_mbps: MB of IO mapped and
//    unmapped per second of wall time. This is the figure that separates
//    the allocators when the device is the bottleneck.
//
// Verification: in the device run every allocation is checked against every
// live one (no overlap) outside the timed sections; in both runs every
// allocation is checked for bounds and size alignment, and at the end every
// IOVA must have been freed (the domain holds no allocation). A violation is
// an error exit, never a number.
#include <time.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "harness/report.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/iova.hpp"
#include "rcukit/rbtree.hpp"

ABSL_FLAG(std::string, threads, "16",
          "comma-separated submitting thread counts (fio numjobs), e.g. 1,2,4,8,16 for a scaling curve");
ABSL_FLAG(int, iodepth, 10, "IOs in flight per thread");
ABSL_FLAG(std::string, io_size, "20M", "IO size (K/M suffixes)");
ABSL_FLAG(std::string, segment_kb, "512",
          "DMA mapping size per request in KiB: N (fixed) or LO-HI (uniform, rounded to 4 KiB)");
ABSL_FLAG(std::string, pattern, "random", "completion order: stream (submission order) or random");
ABSL_FLAG(std::string, rw, "write", "write or read: selects the default device bandwidth");
ABSL_FLAG(double, mbps, 0, "device bandwidth in MB/s (0: 2575 for write, 2861 for read)");
ABSL_FLAG(std::string, allocator, "off,rbtree,rbtree-augmented,skiplist,magazine+rbtree",
          "comma-separated: off, rbtree, rbtree-augmented, skiplist, magazine+<index>");
ABSL_FLAG(std::string, measure, "device,capacity",
          "comma-separated: device (the device model: mbps, pct_of_off, cpu_s_per_gb), "
          "capacity (no device: capacity_mbps)");
ABSL_FLAG(double, seconds, 5, "measured seconds per allocator and thread count, device model");
ABSL_FLAG(double, capacity_seconds, 1, "measured seconds per allocator and thread count, capacity run");
ABSL_FLAG(double, warmup, 1,
          "seconds run before each measurement starts (device model; half of it for capacity)");
ABSL_FLAG(uint64_t, mmio_hole_mb, 0,
          "MiB just below 4 GiB reserved in every domain besides the IOAPIC window, as intel-iommu reserved "
          "the PCI BARs of the machine's MMIO hole (machine-specific; 0: the IOAPIC window only)");
ABSL_FLAG(std::string, format, "table", "output format: table, tsv or json");
ABSL_FLAG(uint64_t, seed, 1, "random seed");

namespace {

using namespace rcukit;
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
uint64_t thread_cpu_ns() {
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
  void free(uint64_t pfn, uint64_t npages) override { cache.free(pfn, npages); }
  void flush() override { cache.flush(); }
  bool empty() const override { return no_allocations(domain); }
  absl::Status reserve(uint64_t lo, uint64_t hi) override { return domain.reserve(lo, hi); }
};

std::unique_ptr<allocator> make_allocator(const std::string& name) {
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
  return nullptr;
}
// A fresh allocator with the reservations intel-iommu made in every domain
// (domain_reserve_special_ranges): the IOAPIC window and, if asked, an MMIO
// hole of hole_mb MiB right below 4 GiB.
absl::StatusOr<std::unique_ptr<allocator>> make_domain(const std::string& name, uint64_t hole_mb) {
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

const std::vector<std::string> kAllocators = {"off",
                                              "rbtree",
                                              "rbtree-augmented",
                                              "skiplist",
                                              "magazine+rbtree",
                                              "magazine+rbtree-augmented",
                                              "magazine+skiplist"};

// Bounds and alignment of one allocation (invariant (1) of iova.hpp, with
// the window this model asks for); empty if it holds.
std::string check_range(uint64_t pfn, uint64_t npages) {
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

class device {
 public:
  device(double mbps, bool random, uint64_t seed) : bytes_per_s_(mbps * 1e6), random_(random), rng_(seed) {}

  void submit(io* x) {
    std::lock_guard g(mu_);
    queue_.push_back(x);
    advance_locked(clock_type::now());
  }
  // Completes every transfer whose end time has passed; returns when the
  // current transfer will end (or a short idle poll interval).
  clock_type::time_point poll() {
    std::lock_guard g(mu_);
    advance_locked(clock_type::now());
    return busy_ ? end_ : clock_type::now() + std::chrono::microseconds(50);
  }
  uint64_t completed_bytes() const {
    std::lock_guard g(mu_);
    return done_bytes_;
  }

 private:
  void advance_locked(clock_type::time_point now) {
    for (;;) {
      if (busy_) {
        if (now < end_) return;
        done_bytes_ += current_->bytes;  // before the store below: the owner may free the IO after it
        current_->complete.store(true, std::memory_order_release);  // pairs with the owner's acquire
        current_ = nullptr;
        busy_ = false;
        start_next(end_);  // back to back when work is queued
      } else {
        if (queue_.empty()) return;
        start_next(now);
      }
    }
  }
  void start_next(clock_type::time_point at) {
    if (queue_.empty()) return;
    size_t pick = random_ ? std::uniform_int_distribution<size_t>(0, queue_.size() - 1)(rng_) : 0;
    current_ = queue_[pick];
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(pick));
    end_ = at + std::chrono::duration_cast<clock_type::duration>(
                    std::chrono::duration<double>(static_cast<double>(current_->bytes) / bytes_per_s_));
    busy_ = true;
  }

  mutable std::mutex mu_;
  double bytes_per_s_;
  bool random_;
  std::mt19937_64 rng_;
  std::deque<io*> queue_;
  io* current_ = nullptr;
  bool busy_ = false;
  clock_type::time_point end_{};
  uint64_t done_bytes_ = 0;
};

struct segment_dist {
  uint64_t lo_pages, hi_pages;
  uint64_t draw(std::mt19937_64& rng) const {
    return std::uniform_int_distribution<uint64_t>(lo_pages, hi_pages)(rng);
  }
};

absl::StatusOr<uint64_t> parse_size(std::string s) {
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

absl::StatusOr<segment_dist> parse_segments(const std::string& s) {
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

// What one run shares with every worker.
struct workload {
  int threads;
  int iodepth;
  uint64_t io_bytes;
  segment_dist seg;
  bool random;
  uint64_t seed;
};

// One thread's accounting; written by that thread only, read after join().
// A cache line each, so the threads' counters do not share one.
struct alignas(64) thread_account {
  uint64_t map_cpu_ns = 0, mapped_bytes = 0;      // allocations of IOs started in the window
  uint64_t unmap_cpu_ns = 0, unmapped_bytes = 0;  // frees of IOs completed in the window
  uint64_t allocs = 0, allocs_above_4g = 0;       // allocations in the window, and those above 4 GiB
  std::string error;
};

// Sleeps through the warm-up, calls on_open(), opens the measurement window
// for `seconds` (status(elapsed) every 100 ms), closes it; returns the
// window's length in seconds.
template <class Open, class Status>
double measure_window(double warmup, double seconds, std::atomic<bool>& measuring,
                      const std::atomic<bool>& failed, Open on_open, Status status) {
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  on_open();
  const auto t0 = clock_type::now();
  measuring.store(true, std::memory_order_relaxed);  // relaxed: a flag; the counts are read after join()
  const auto t_end =
      t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  while (clock_type::now() < t_end && !failed.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status(std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  measuring.store(false, std::memory_order_relaxed);  // relaxed: as above
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

struct device_result {
  double mbps;
  double cpu_s_per_gb;  // allocator CPU per GB mapped + per GB unmapped
  double above_4g_pct;  // allocations that did not fit below 4 GiB
};

// The device model: throughput and the allocator's CPU time per GB of IO.
absl::StatusOr<device_result> run_device(allocator& alloc, const workload& w, double mbps, double warmup,
                                         double seconds, harness::progress& prog, const std::string& label) {
  device dev(mbps, w.random, w.seed);
  overlap_checker checker;
  std::atomic<bool> stop{false};       // relaxed: a stop request, no data handed over
  std::atomic<bool> failed{false};     // relaxed: the details are read after join()
  std::atomic<bool> measuring{false};  // relaxed: which IOs are counted; counts are read after join()
  std::vector<thread_account> acct(w.threads);
  const bool track = alloc.tracks();

  auto worker = [&](int t) {
    thread_account& a = acct[t];
    std::mt19937_64 rng(w.seed * 7919 + t);
    std::vector<std::unique_ptr<io>> inflight;
    auto fail = [&](std::string msg) {
      a.error = std::move(msg);
      failed.store(true, std::memory_order_relaxed);
    };
    // Unmap: out of the checker first (another thread may be handed the
    // range as soon as it is freed), then the timed frees.
    auto release = [&](io& x) {
      const bool counted = measuring.load(std::memory_order_relaxed);
      if (track) {
        for (auto [pfn, n] : x.segments) {
          if (!checker.remove(pfn, n)) {
            a.error = absl::StrCat("freeing [", pfn, ", +", n, ") that the checker did not hold live");
            failed.store(true, std::memory_order_relaxed);
          }
        }
      }
      const uint64_t c0 = thread_cpu_ns();
      for (auto [pfn, n] : x.segments) alloc.free(pfn, n);
      const uint64_t c1 = thread_cpu_ns();
      if (counted) {
        a.unmap_cpu_ns += c1 - c0;
        a.unmapped_bytes += x.bytes;
      }
    };
    auto reap = [&] {
      for (size_t i = 0; i < inflight.size();) {
        if (inflight[i]->complete.load(std::memory_order_acquire)) {  // pairs with the device's release
          release(*inflight[i]);
          inflight.erase(inflight.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ++i;
        }
      }
    };
    while (!stop.load(std::memory_order_relaxed) && !failed.load(std::memory_order_relaxed)) {
      // Reap completions (and free their IOVAs) first, as the IRQ path would.
      reap();
      if (static_cast<int>(inflight.size()) < w.iodepth) {
        auto x = std::make_unique<io>();
        x->bytes = w.io_bytes;
        const bool counted = measuring.load(std::memory_order_relaxed);
        // Map: the timed allocations, then (untimed) the checks.
        const uint64_t c0 = thread_cpu_ns();
        for (uint64_t left = w.io_bytes / kPage; left > 0;) {
          const uint64_t n = std::min(left, w.seg.draw(rng));
          auto pfn = alloc.alloc(n);
          if (!pfn.ok()) {
            for (auto [p, m] : x->segments) alloc.free(p, m);
            return fail(absl::StrCat("alloc(", n, " pages): ", pfn.status().ToString()));
          }
          x->segments.emplace_back(*pfn, n);
          left -= n;
        }
        const uint64_t c1 = thread_cpu_ns();
        if (counted) {
          a.map_cpu_ns += c1 - c0;
          a.mapped_bytes += x->bytes;
          a.allocs += x->segments.size();
          for (auto [pfn, n] : x->segments) a.allocs_above_4g += pfn > kDma32LimitPfn ? 1 : 0;
        }
        if (track) {
          for (auto [pfn, n] : x->segments) {
            if (std::string e = check_range(pfn, n); !e.empty()) return fail(e);
            if (!checker.add(pfn, n)) {
              return fail(absl::StrCat("allocation [", pfn, ", +", n, ") overlaps a live one"));
            }
          }
        }
        dev.submit(x.get());
        inflight.push_back(std::move(x));
        continue;
      }
      std::this_thread::sleep_until(std::min(dev.poll(), clock_type::now() + std::chrono::microseconds(200)));
    }
    // Drain: wait for this thread's IOs to complete, then free them.
    while (!inflight.empty()) {
      dev.poll();
      reap();
      if (!inflight.empty()) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < w.threads; ++t) pool.emplace_back(worker, t);
  uint64_t b0 = 0;
  const double elapsed = measure_window(
      warmup, seconds, measuring, failed, [&] { b0 = dev.completed_bytes(); },
      [&](double el) {
        prog.update(absl::StrCat(
            label, " device: ", harness::fixed((dev.completed_bytes() - b0) / 1e6 / el, 0), " MB/s"));
      });
  const uint64_t b1 = dev.completed_bytes();
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
  for (auto& a : acct) {
    if (!a.error.empty()) return absl::InternalError(a.error);
  }
  alloc.flush();
  if (checker.live() != 0)
    return absl::InternalError(absl::StrCat(checker.live(), " pages or ranges still live after the drain"));
  if (!alloc.empty()) return absl::InternalError("the domain still holds allocations after the drain");
  thread_account sum;
  for (auto& a : acct) {
    sum.map_cpu_ns += a.map_cpu_ns;
    sum.mapped_bytes += a.mapped_bytes;
    sum.unmap_cpu_ns += a.unmap_cpu_ns;
    sum.unmapped_bytes += a.unmapped_bytes;
    sum.allocs += a.allocs;
    sum.allocs_above_4g += a.allocs_above_4g;
  }
  // ns per byte is s per GB.
  const double cpu = (sum.mapped_bytes ? static_cast<double>(sum.map_cpu_ns) / sum.mapped_bytes : 0) +
                     (sum.unmapped_bytes ? static_cast<double>(sum.unmap_cpu_ns) / sum.unmapped_bytes : 0);
  const double above = sum.allocs ? 100.0 * static_cast<double>(sum.allocs_above_4g) / sum.allocs : 0;
  return device_result{static_cast<double>(b1 - b0) / 1e6 / elapsed, cpu, above};
}

// The capacity run: no device. Each thread keeps iodepth IOs mapped and,
// once it has that many, unmaps one (its oldest for stream, a random one of
// its own for random) and maps the next. Returns MB of IO mapped and
// unmapped per second.
absl::StatusOr<double> run_capacity(allocator& alloc, const workload& w, double warmup, double seconds,
                                    harness::progress& prog, const std::string& label) {
  std::atomic<bool> stop{false};            // relaxed: a stop request, no data handed over
  std::atomic<bool> failed{false};          // relaxed: the details are read after join()
  std::atomic<bool> measuring{false};       // relaxed: which IOs are counted; counts are read after join()
  std::atomic<uint64_t> progress_bytes{0};  // relaxed: a statistic for the progress line only
  std::vector<thread_account> acct(w.threads);
  const bool track = alloc.tracks();

  auto worker = [&](int t) {
    thread_account& a = acct[t];
    std::mt19937_64 rng(w.seed * 7919 + t);
    std::deque<std::vector<std::pair<uint64_t, uint64_t>>> inflight;  // oldest first
    auto unmap = [&](size_t i) {
      const bool counted = measuring.load(std::memory_order_relaxed);
      for (auto [pfn, n] : inflight[i]) alloc.free(pfn, n);
      inflight.erase(inflight.begin() + static_cast<std::ptrdiff_t>(i));
      if (counted) a.unmapped_bytes += w.io_bytes;
    };
    while (!stop.load(std::memory_order_relaxed) && !failed.load(std::memory_order_relaxed)) {
      if (static_cast<int>(inflight.size()) >= w.iodepth) {
        const size_t i = w.random ? std::uniform_int_distribution<size_t>(0, inflight.size() - 1)(rng) : 0;
        unmap(i);
        progress_bytes.fetch_add(w.io_bytes, std::memory_order_relaxed);
        continue;
      }
      std::vector<std::pair<uint64_t, uint64_t>> segs;
      std::string err;
      for (uint64_t left = w.io_bytes / kPage; left > 0 && err.empty();) {
        const uint64_t n = std::min(left, w.seg.draw(rng));
        auto pfn = alloc.alloc(n);
        if (!pfn.ok()) {
          err = absl::StrCat("alloc(", n, " pages): ", pfn.status().ToString());
          break;
        }
        segs.emplace_back(*pfn, n);
        left -= n;
        if (track) err = check_range(*pfn, n);
      }
      inflight.push_back(std::move(segs));  // freed by the drain below if this IO failed
      if (!err.empty()) {
        a.error = std::move(err);
        failed.store(true, std::memory_order_relaxed);
      }
    }
    while (!inflight.empty()) unmap(0);
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < w.threads; ++t) pool.emplace_back(worker, t);
  uint64_t p0 = 0;
  const double elapsed = measure_window(
      warmup, seconds, measuring, failed, [&] { p0 = progress_bytes.load(std::memory_order_relaxed); },
      [&](double el) {
        const uint64_t p = progress_bytes.load(std::memory_order_relaxed);
        prog.update(absl::StrCat(label, " capacity: ", harness::fixed((p - p0) / 1e6 / el, 0), " MB/s"));
      });
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
  uint64_t bytes = 0;
  for (auto& a : acct) {
    if (!a.error.empty()) return absl::InternalError(a.error);
    bytes += a.unmapped_bytes;
  }
  alloc.flush();
  if (!alloc.empty()) return absl::InternalError("the domain still holds allocations after the drain");
  return static_cast<double>(bytes) / 1e6 / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Model of the 2013 IOMMU fio comparison: IOVA allocators under 16 threads x iodepth 10 x 20 MB IOs,\n"
      "with a device model (throughput, % of IOMMU off, allocator CPU per GB) and without one (capacity).\n"
      "Example: rcukit-iommu-sim --pattern random --rw write --allocator off,rbtree,skiplist --threads "
      "1,4,16");
  harness::normalize_flag_names(argc, argv);
  absl::ParseCommandLine(argc, argv);

  auto fmt = harness::parse_format(absl::GetFlag(FLAGS_format));
  if (!fmt.ok()) return harness::fail(fmt.status().message());
  auto names = harness::parse_name_list(absl::GetFlag(FLAGS_allocator), kAllocators);
  if (!names.ok()) return harness::fail(absl::StrCat("--allocator: ", names.status().message()));
  auto threads = harness::parse_int_list(absl::GetFlag(FLAGS_threads), 1, 4096);
  if (!threads.ok()) return harness::fail(absl::StrCat("--threads: ", threads.status().message()));
  auto measures = harness::parse_name_list(absl::GetFlag(FLAGS_measure), {"device", "capacity"});
  if (!measures.ok()) return harness::fail(absl::StrCat("--measure: ", measures.status().message()));
  const bool do_device = std::count(measures->begin(), measures->end(), "device") > 0;
  const bool do_capacity = std::count(measures->begin(), measures->end(), "capacity") > 0;
  auto io_bytes = parse_size(absl::GetFlag(FLAGS_io_size));
  if (!io_bytes.ok()) return harness::fail(absl::StrCat("--io-size: ", io_bytes.status().message()));
  if (*io_bytes % kPage != 0) return harness::fail("--io-size must be a multiple of 4 KiB");
  auto seg = parse_segments(absl::GetFlag(FLAGS_segment_kb));
  if (!seg.ok()) return harness::fail(seg.status().message());
  const std::string pattern = absl::GetFlag(FLAGS_pattern);
  if (pattern != "stream" && pattern != "random") return harness::fail("--pattern must be stream or random");
  const std::string rw = absl::GetFlag(FLAGS_rw);
  if (rw != "write" && rw != "read") return harness::fail("--rw must be write or read");
  double mbps = absl::GetFlag(FLAGS_mbps);
  if (mbps < 0) return harness::fail("--mbps must be positive");
  if (mbps == 0) mbps = rw == "write" ? 2575 : 2861;
  const int iodepth = absl::GetFlag(FLAGS_iodepth);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double cap_seconds = absl::GetFlag(FLAGS_capacity_seconds);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const uint64_t hole_mb = absl::GetFlag(FLAGS_mmio_hole_mb);
  if (hole_mb >= 4096) return harness::fail("--mmio-hole-mb must be below 4096");
  if (iodepth < 1 || seconds <= 0 || cap_seconds <= 0 || warmup < 0)
    return harness::fail("--iodepth, --seconds, --capacity-seconds must be > 0, --warmup >= 0");

  // `off` is always measured first: it is the 100% every row is compared to.
  std::vector<std::string> order = {"off"};
  for (const auto& n : *names) {
    if (n != "off") order.push_back(n);
  }

  const std::string seg_desc = absl::GetFlag(FLAGS_segment_kb);
  harness::table out(
      absl::StrCat("IOMMU model: threads ", absl::StrJoin(*threads, ","), ", iodepth ", iodepth, ", ",
                   absl::GetFlag(FLAGS_io_size), " IOs in ", seg_desc, " KiB requests, ", pattern, " ", rw,
                   hole_mb ? absl::StrCat(", ", hole_mb, " MiB MMIO hole reserved") : std::string(),
                   ", device ", harness::fixed(mbps, 0), " MB/s; measured: ", absl::StrJoin(*measures, ",")),
      {{"allocator", "Allocator", false},
       {"pattern", "Pattern", false},
       {"rw", "RW", false},
       {"threads", "Threads"},
       {"iodepth", "IOdepth"},
       {"mbps", "MB/s"},
       {"pct_of_off", "% of off"},
       {"cpu_s_per_gb", "CPU s/GB"},
       {"capacity_mbps", "Capacity MB/s"},
       {"above_4g_pct", "% above 4G"}});
  harness::progress prog("iommu-sim");
  for (int64_t t : *threads) {
    const workload w{static_cast<int>(t),      iodepth, *io_bytes, *seg, pattern == "random",
                     absl::GetFlag(FLAGS_seed)};
    double off_mbps = 0;
    for (const auto& n : order) {
      const std::string label = absl::StrCat(n, " x", t);
      std::string mb = "-", pct = "-", cpu = "-", cap = "-", above = "-";
      if (do_device) {
        auto made = make_domain(n, hole_mb);
        if (!made.ok()) return harness::fail(made.status().message());
        auto alloc = std::move(*made);
        auto r = run_device(*alloc, w, mbps, warmup, seconds, prog, label);
        if (!r.ok()) return harness::fail(absl::StrCat(label, " device: ", r.status().message()));
        alloc.reset();
        rcu::barrier();
        if (n == "off") off_mbps = r->mbps;
        mb = harness::fixed(r->mbps, 0);
        pct = harness::fixed(off_mbps > 0 ? 100.0 * r->mbps / off_mbps : 0, 1);
        cpu = harness::fixed(r->cpu_s_per_gb, 5);
        if (n != "off") above = harness::fixed(r->above_4g_pct, 1);
      }
      if (do_capacity) {
        auto made = make_domain(n, hole_mb);
        if (!made.ok()) return harness::fail(made.status().message());
        auto alloc = std::move(*made);
        auto r = run_capacity(*alloc, w, warmup / 2, cap_seconds, prog, label);
        if (!r.ok()) return harness::fail(absl::StrCat(label, " capacity: ", r.status().message()));
        alloc.reset();
        rcu::barrier();
        cap = harness::fixed(*r, 0);
      }
      out.add_row({n, pattern, rw, std::to_string(t), std::to_string(iodepth), mb, pct, cpu, cap, above});
    }
  }
  prog.done("all allocators verified");
  out.print(*fmt, std::cout);
  return 0;
}
