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
// At the end every IOVA must have been freed and no two live allocations may
// ever have overlapped (checked on every allocation); a violation is an error
// exit, never a number.
#include <algorithm>
#include <atomic>
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
#include "absl/strings/str_split.h"
#include "common/report.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/iova.hpp"
#include "rcukit/rbtree.hpp"

ABSL_FLAG(int, threads, 16, "submitting threads (fio numjobs)");
ABSL_FLAG(int, iodepth, 10, "IOs in flight per thread");
ABSL_FLAG(std::string, io_size, "20M", "IO size (K/M suffixes)");
ABSL_FLAG(std::string, segment_kb, "512",
          "DMA mapping size per request in KiB: N (fixed) or LO-HI (uniform, rounded to 4 KiB)");
ABSL_FLAG(std::string, pattern, "random", "completion order: stream (submission order) or random");
ABSL_FLAG(std::string, rw, "write", "write or read: selects the default device bandwidth");
ABSL_FLAG(double, mbps, 0, "device bandwidth in MB/s (0: 2575 for write, 2861 for read)");
ABSL_FLAG(std::string, allocator, "off,rbtree,rbtree-augmented,skiplist,magazine+rbtree",
          "comma-separated: off, rbtree, rbtree-augmented, skiplist, magazine+<index>");
ABSL_FLAG(double, seconds, 5, "measured seconds per allocator");
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

// --- allocators ------------------------------------------------------------
struct allocator {
  virtual ~allocator() = default;
  // Size-aligned allocation, below 4 GiB first then anywhere (intel_alloc_iova).
  virtual absl::StatusOr<uint64_t> alloc(uint64_t npages) = 0;
  virtual void free(uint64_t pfn, uint64_t npages) = 0;
  virtual void flush() {}
  // True if no allocation starting at pfn is still held by the domain.
  virtual bool released(uint64_t pfn) const = 0;
};

// IOMMU off: addresses are the physical pages themselves; nothing to track.
struct off_allocator final : allocator {
  absl::StatusOr<uint64_t> alloc(uint64_t) override { return 0; }
  void free(uint64_t, uint64_t) override {}
  bool released(uint64_t) const override { return true; }
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
  bool released(uint64_t pfn) const override { return !domain.find(pfn).has_value(); }
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
  bool released(uint64_t pfn) const override { return !domain.find(pfn).has_value(); }
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
const std::vector<std::string> kAllocators = {"off",
                                              "rbtree",
                                              "rbtree-augmented",
                                              "skiplist",
                                              "magazine+rbtree",
                                              "magazine+rbtree-augmented",
                                              "magazine+skiplist"};

// --- overlap checker: every live IOVA range, checked on each allocation -----
class overlap_checker {
 public:
  bool add(uint64_t pfn, uint64_t npages) {
    std::lock_guard g(mu_);
    auto it = live_.upper_bound(pfn);
    if (it != live_.begin() && std::prev(it)->second > pfn) return false;
    if (it != live_.end() && it->first < pfn + npages) return false;
    live_.emplace(pfn, pfn + npages);
    ever_.push_back(pfn);
    return true;
  }
  void remove(uint64_t pfn) {
    std::lock_guard g(mu_);
    live_.erase(pfn);
  }
  size_t live() const {
    std::lock_guard g(mu_);
    return live_.size();
  }
  std::vector<uint64_t> ever() const {
    std::lock_guard g(mu_);
    return ever_;
  }

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> live_;
  std::vector<uint64_t> ever_;
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

struct sim_result {
  double mbps;
};

absl::StatusOr<sim_result> simulate(allocator& alloc, int threads, int iodepth, uint64_t io_bytes,
                                    segment_dist seg, bool random, double mbps, double seconds, uint64_t seed,
                                    harness::progress& prog, const std::string& name) {
  device dev(mbps, random, seed);
  overlap_checker checker;
  std::atomic<bool> stop{false};    // relaxed: a stop request, no data handed over
  std::atomic<bool> failed{false};  // relaxed: read after join
  std::vector<std::string> errors(threads);
  const bool track = name != "off";

  auto worker = [&](int t) {
    std::mt19937_64 rng(seed * 7919 + t);
    std::vector<std::unique_ptr<io>> inflight;
    auto release = [&](io& x) {
      for (auto [pfn, n] : x.segments) {
        if (track) checker.remove(pfn);
        alloc.free(pfn, n);
      }
    };
    while (!stop.load(std::memory_order_relaxed) && !failed.load(std::memory_order_relaxed)) {
      // Reap completions (and free their IOVAs) first, as the IRQ path would.
      for (size_t i = 0; i < inflight.size();) {
        if (inflight[i]->complete.load(std::memory_order_acquire)) {  // pairs with the device's release
          release(*inflight[i]);
          inflight.erase(inflight.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ++i;
        }
      }
      if (static_cast<int>(inflight.size()) < iodepth) {
        auto x = std::make_unique<io>();
        x->bytes = io_bytes;
        for (uint64_t left = io_bytes / kPage; left > 0;) {
          const uint64_t n = std::min(left, seg.draw(rng));
          auto pfn = alloc.alloc(n);
          if (!pfn.ok()) {
            errors[t] = absl::StrCat("alloc(", n, " pages): ", pfn.status().ToString());
            failed.store(true, std::memory_order_relaxed);
            return;
          }
          if (track && !checker.add(*pfn, n)) {
            errors[t] = absl::StrCat("allocation [", *pfn, ", +", n, ") overlaps a live one");
            failed.store(true, std::memory_order_relaxed);
            return;
          }
          x->segments.emplace_back(*pfn, n);
          left -= n;
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
      for (size_t i = 0; i < inflight.size();) {
        if (inflight[i]->complete.load(std::memory_order_acquire)) {
          release(*inflight[i]);
          inflight.erase(inflight.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ++i;
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  // Warm up one second, then measure bytes completed over `seconds`.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const uint64_t b0 = dev.completed_bytes();
  const auto t0 = clock_type::now();
  const auto t_end =
      t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  while (clock_type::now() < t_end && !failed.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const double el = std::chrono::duration<double>(clock_type::now() - t0).count();
    prog.update(
        absl::StrCat(name, ": ", harness::fixed((dev.completed_bytes() - b0) / 1e6 / el, 0), " MB/s"));
  }
  const uint64_t b1 = dev.completed_bytes();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
  for (auto& e : errors) {
    if (!e.empty()) return absl::InternalError(e);
  }
  alloc.flush();
  if (checker.live() != 0)
    return absl::InternalError(absl::StrCat(checker.live(), " IOVAs still held after drain"));
  for (uint64_t pfn : checker.ever()) {
    if (!alloc.released(pfn)) return absl::InternalError(absl::StrCat("IOVA at pfn ", pfn, " never freed"));
  }
  return sim_result{static_cast<double>(b1 - b0) / 1e6 / elapsed};
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Model of the 2013 IOMMU fio comparison: IOVA allocators under 16 threads x iodepth 10 x 20 MB IOs.\n"
      "Example: rcukit-iommu-sim --pattern random --rw write --allocator off,rbtree,skiplist --seconds 5");
  harness::normalize_flag_names(argc, argv);
  absl::ParseCommandLine(argc, argv);

  auto fmt = harness::parse_format(absl::GetFlag(FLAGS_format));
  if (!fmt.ok()) return harness::fail(fmt.status().message());
  auto names = harness::parse_name_list(absl::GetFlag(FLAGS_allocator), kAllocators);
  if (!names.ok()) return harness::fail(absl::StrCat("--allocator: ", names.status().message()));
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
  const int threads = absl::GetFlag(FLAGS_threads);
  const int iodepth = absl::GetFlag(FLAGS_iodepth);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  if (threads < 1 || iodepth < 1 || seconds <= 0)
    return harness::fail("--threads, --iodepth, --seconds must be > 0");

  // `off` is always measured first: it is the 100% every row is compared to.
  std::vector<std::string> order = {"off"};
  for (const auto& n : *names) {
    if (n != "off") order.push_back(n);
  }

  harness::table out(absl::StrCat("IOMMU model: ", threads, " threads, iodepth ", iodepth, ", ",
                                  absl::GetFlag(FLAGS_io_size), " IOs, ", pattern, " ", rw, ", device ",
                                  harness::fixed(mbps, 0), " MB/s"),
                     {{"allocator", "Allocator", false},
                      {"pattern", "Pattern", false},
                      {"rw", "RW", false},
                      {"threads", "Threads"},
                      {"iodepth", "IOdepth"},
                      {"mbps", "MB/s"},
                      {"pct_of_off", "% of off"}});
  harness::progress prog("iommu-sim");
  double off_mbps = 0;
  for (const auto& n : order) {
    auto alloc = make_allocator(n);
    auto r = simulate(*alloc, threads, iodepth, *io_bytes, *seg, pattern == "random", mbps, seconds,
                      absl::GetFlag(FLAGS_seed), prog, n);
    if (!r.ok()) return harness::fail(absl::StrCat(n, ": ", r.status().message()));
    alloc.reset();
    rcu::barrier();
    if (n == "off") off_mbps = r->mbps;
    out.add_row({n, pattern, rw, std::to_string(threads), std::to_string(iodepth), harness::fixed(r->mbps, 0),
                 harness::fixed(off_mbps > 0 ? 100.0 * r->mbps / off_mbps : 0, 1)});
  }
  prog.done("all allocators verified");
  out.print(*fmt, std::cout);
  return 0;
}
