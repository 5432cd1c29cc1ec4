// SPDX-License-Identifier: MIT
// rcukit-iommu-sim -- a model of the 2013 IOMMU fio comparison (LWN
// "Skiplists II": 16 threads, iodepth 10, 20 MB IOs, two SSDs), so the IOVA
// allocators can be compared under the same load on any machine.
//
// The model (defaults and where they come from are in stress/README.md):
//  * --threads submitters (fio jobs) each keep --iodepth IOs of --io-size in
//    flight. They run on --workers OS threads, by default one per CPU the
//    process may use (at most one per submitter): each worker serves its
//    share of the submitters in turn, as a CPU serves the jobs scheduled on
//    it. So the allocator sees the parallelism the machine has and the load
//    (IOs in flight, fragmentation) of every submitter, and no result
//    depends on how the OS time-slices more threads than CPUs.
//  * An IO is split into DMA segments as the 2013 block layer and intel-iommu
//    did: the block layer cut an IO into requests of at most max_sectors_kb
//    (512 KiB by default), and intel_map_sg() mapped each request's
//    scatterlist with ONE size-aligned IOVA allocation covering all its
//    pages, tried below the 32-bit boundary first and then in the full
//    space. --segment-kb gives the distribution of that request size.
//  * Segments stay allocated while the IO is in flight and are freed when it
//    completes.
//  * One shared device moves bytes at --mbps (defaults: the article's
//    IOMMU-off figures, 2575 MB/s writes and 2861 MB/s reads), one queued IO
//    at a time (iommu_model.hpp); --pattern stream takes them in submission
//    order, random picks a random queued IO, so completions (and frees) come
//    back out of order and fragment the space.
//  * An allocator slower than the device leaves the device idle: throughput
//    is bytes per second of wall time that both the device moved and the
//    workers mapped (the lower of the two: a queue filled before the window
//    would otherwise hide a slow allocator for as long as it takes to drain).
//
// Two measurements per allocator and thread count (--measure), each repeated
// --repeat times, interleaved (a repeat runs every allocator in turn, the
// first one rotating), reported as the median and the range:
//  * device: the model above. Columns mbps and pct_of_off (throughput, and
//    relative to the `off` run of the same repeat), and cpu_s_per_gb: the
//    CPU time the workers spent inside the allocator (thread CPU clock
//    around each IO's allocations and around its frees, so time spun on a
//    lock counts), per GB of IO mapped plus per GB unmapped.
//    above_4g_pct: the share of allocations that did not fit below 4 GiB.
//  * capacity: the same submitters, workers, IO sizes, segments and
//    completion order (stream: a submitter frees its oldest IO; random: a
//    random one of its own in flight) with no device: the workers map and
//    unmap as fast as the allocator lets them. Column capacity_mbps: MB of
//    IO mapped and unmapped per second of wall time. This is the figure
//    that separates the allocators when the device is the bottleneck.
//
// Verification: in the device run every allocation is checked against every
// live one (no overlap) outside the timed sections; in both runs every
// allocation is checked for bounds and size alignment, and at the end every
// IOVA must have been freed (the domain holds no allocation). A violation is
// an error exit, never a number.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
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
#include "harness/report.hpp"
#include "iommu_model.hpp"
#include "rcukit/cpu_set.hpp"
#include "rcukit/detail/cpu_affinity.hpp"

ABSL_FLAG(std::string, threads, "16",
          "comma-separated submitter counts (fio numjobs), e.g. 1,2,4,8,16 for a scaling curve");
ABSL_FLAG(int, workers, 0,
          "OS threads the submitters run on (0: one per CPU the process may use, at most one per submitter)");
ABSL_FLAG(
    bool, pin, true,
    "pin worker k to the k-th CPU the process may use (when there are at most as many workers as CPUs)");
ABSL_FLAG(int, iodepth, 10, "IOs in flight per submitter");
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
ABSL_FLAG(int, repeat, 3, "measurements per allocator and thread count, interleaved across allocators");
ABSL_FLAG(double, seconds, 5, "measured seconds per allocator, thread count and repeat, device model");
ABSL_FLAG(double, capacity_seconds, 1,
          "measured seconds per allocator, thread count and repeat, capacity run");
ABSL_FLAG(double, warmup, 1,
          "seconds run before each measurement starts (device model; half of it for capacity)");
ABSL_FLAG(uint64_t, mmio_hole_mb, 0,
          "MiB just below 4 GiB reserved in every domain besides the IOAPIC window, as intel-iommu reserved "
          "the PCI BARs of the machine's MMIO hole (machine-specific; 0: the IOAPIC window only)");
ABSL_FLAG(std::string, format, "table", "output format: table, tsv or json");
ABSL_FLAG(uint64_t, seed, 1, "random seed");

namespace {

using namespace rcukit;
using namespace rcukit::iommu_sim;

// One worker's accounting; written by that worker only, read after join().
// A cache line each, so the workers' counters do not share one.
struct alignas(64) worker_account {
  uint64_t map_cpu_ns = 0, mapped_bytes = 0;      // allocations of IOs started in the window
  uint64_t unmap_cpu_ns = 0, unmapped_bytes = 0;  // frees of IOs completed in the window
  uint64_t allocs = 0, allocs_above_4g = 0;       // allocations in the window, and those above 4 GiB
  std::string error;
};

// The submitters worker `k` of `w` serves: every w.workers-th, from k.
// Pins the calling worker first when the workload says where.
template <class Submitter>
std::vector<Submitter> submitters_of(const workload& w, int k) {
  if (!w.pin.empty()) (void)detail::pin_this_thread(w.pin[static_cast<size_t>(k)]);  // best effort
  std::vector<Submitter> out;
  for (int s = k; s < w.submitters; s += w.workers)
    out.emplace_back(w.seed * 7919 + static_cast<uint64_t>(s));
  return out;
}

// Waits until every worker has filled its submitters' iodepth once (filled
// == workers: the load is in place; at 16 submitters of 4 KiB requests that
// is 800,000 allocations), sleeps through the warm-up, calls on_open(),
// opens the measurement window for `seconds` (status(elapsed) every 100 ms),
// closes it; returns the window's length in seconds.
template <class Open, class Status>
double measure_window(const std::atomic<int>& filled, int workers, double warmup, double seconds,
                      std::atomic<bool>& measuring, const std::atomic<bool>& failed, Open on_open,
                      Status status) {
  // relaxed: a count only; the window's opening hands nothing over
  while (filled.load(std::memory_order_relaxed) < workers && !failed.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  on_open();
  const auto t0 = clock_type::now();
  measuring.store(true, std::memory_order_relaxed);  // relaxed: a flag; the counts are read after join()
  const auto t_end =
      t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  for (auto now = clock_type::now(); now < t_end && !failed.load(std::memory_order_relaxed);
       now = clock_type::now()) {
    std::this_thread::sleep_for(std::min<clock_type::duration>(t_end - now, std::chrono::milliseconds(100)));
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
  std::atomic<int> filled{0};          // workers whose submitters all reached iodepth once
  std::vector<worker_account> acct(w.workers);
  const bool track = alloc.tracks();

  struct submitter {
    explicit submitter(uint64_t seed) : rng(seed) {}
    std::mt19937_64 rng;
    std::vector<std::unique_ptr<io>> inflight;
  };

  auto worker = [&](int k) {
    worker_account& a = acct[k];
    std::vector<submitter> subs = submitters_of<submitter>(w, k);
    auto fail = [&](std::string msg) {
      a.error = std::move(msg);
      failed.store(true, std::memory_order_relaxed);
      return false;
    };
    // Unmap: out of the checker first (another worker may be handed the
    // range as soon as it is freed), then the timed frees.
    auto release = [&](io& x) {
      const bool counted = measuring.load(std::memory_order_relaxed);
      if (track) {
        for (auto [pfn, n] : x.segments) {
          if (!checker.remove(pfn, n)) fail(absl::StrCat("freeing [", pfn, ", +", n, ") that was not live"));
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
    auto reap = [&](submitter& s) {
      for (size_t i = 0; i < s.inflight.size();) {
        if (s.inflight[i]->complete.load(std::memory_order_acquire)) {  // pairs with the device's release
          release(*s.inflight[i]);
          s.inflight.erase(s.inflight.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ++i;
        }
      }
    };
    // Map one IO for s and queue it on the device; false on an error.
    auto submit = [&](submitter& s) {
      auto x = std::make_unique<io>();
      x->bytes = w.io_bytes;
      const bool counted = measuring.load(std::memory_order_relaxed);
      const uint64_t c0 = thread_cpu_ns();  // the timed allocations, then (untimed) the checks
      for (uint64_t left = w.io_bytes / kPage; left > 0;) {
        const uint64_t n = std::min(left, w.seg.draw(s.rng));
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
          if (!checker.add(pfn, n))
            return fail(absl::StrCat("allocation [", pfn, ", +", n, ") overlaps a live one"));
        }
      }
      dev.submit(x.get());
      s.inflight.push_back(std::move(x));
      return true;
    };
    bool full = false;
    while (!stop.load(std::memory_order_relaxed) && !failed.load(std::memory_order_relaxed)) {
      bool busy = false;
      for (submitter& s : subs) {
        reap(s);  // completions first (and their frees), as the IRQ path would
        while (static_cast<int>(s.inflight.size()) < w.iodepth && !failed.load(std::memory_order_relaxed)) {
          if (!submit(s)) break;
          busy = true;
        }
      }
      if (!full) {
        full = true;
        filled.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count the measuring thread polls
      }
      if (!busy) {
        std::this_thread::sleep_until(
            std::min(dev.poll(), clock_type::now() + std::chrono::microseconds(200)));
      }
    }
    // Drain: wait for these submitters' IOs to complete, then free them.
    for (submitter& s : subs) {
      while (!s.inflight.empty()) {
        dev.poll();
        reap(s);
        if (!s.inflight.empty()) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
  };

  std::vector<std::thread> pool;
  for (int k = 0; k < w.workers; ++k) pool.emplace_back(worker, k);
  double b0 = 0;
  const double elapsed = measure_window(
      filled, w.workers, warmup, seconds, measuring, failed, [&] { b0 = dev.bytes_moved(); },
      [&](double el) {
        prog.update(absl::StrCat(label, " device: ", harness::fixed((dev.bytes_moved() - b0) / 1e6 / el, 0),
                                 " MB/s"));
      });
  const double b1 = dev.bytes_moved();
  stop.store(true, std::memory_order_relaxed);
  dev.finish();
  for (auto& th : pool) th.join();
  for (auto& a : acct) {
    if (!a.error.empty()) return absl::InternalError(a.error);
  }
  alloc.flush();
  if (checker.live() != 0)
    return absl::InternalError(absl::StrCat(checker.live(), " pages or ranges still live after the drain"));
  if (!alloc.empty()) return absl::InternalError("the domain still holds allocations after the drain");
  worker_account sum;
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
  // What both the device and the allocator sustained: the lower of the
  // bytes moved and the bytes mapped in the window. Over a long run the two
  // are equal; in a window shorter than the queue takes to drain (160 IOs
  // of 20 MB are 1.25 s of device time) the device still moves what was
  // queued before, and only the mapped bytes show an allocator that cannot
  // keep up.
  const double moved = std::min(b1 - b0, static_cast<double>(sum.mapped_bytes));
  return device_result{moved / 1e6 / elapsed, cpu, above};
}

// The time one cache line takes to go from CPU a to CPU b and back, in ns
// (the median of 5 bursts of 2000 hand-offs between two threads pinned
// there). On a VM it is the machine's state, not the program's: the same
// two vCPUs measure ~60 ns when the hypervisor runs them on one core's
// hyperthreads and ~300 ns when it does not, and it changes within seconds.
double line_round_trip_ns(int a, int b) {
  constexpr long kHandoffs = 2000;
  alignas(64) std::atomic<long> x{0};  // even: a's turn; odd: b's
  std::vector<double> bursts;
  std::thread other([&] {
    (void)detail::pin_this_thread(b);
    for (long i = 1; i < 5 * 2 * kHandoffs; i += 2) {
      while (x.load(std::memory_order_acquire) != i) {  // pairs with a's release store
      }
      x.store(i + 1, std::memory_order_release);  // pairs with a's acquire load
    }
  });
  std::thread self([&] {
    (void)detail::pin_this_thread(a);
    for (long burst = 0; burst < 5; ++burst) {
      const auto t0 = clock_type::now();
      for (long i = burst * 2 * kHandoffs; i < (burst + 1) * 2 * kHandoffs; i += 2) {
        while (x.load(std::memory_order_acquire) != i) {  // pairs with b's release store
        }
        x.store(i + 1, std::memory_order_release);  // pairs with b's acquire load
      }
      while (x.load(std::memory_order_acquire) != (burst + 1) * 2 * kHandoffs) {  // b's last reply
      }
      bursts.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / kHandoffs);
    }
  });
  self.join();
  other.join();
  return harness::median(bursts);
}

struct capacity_result {
  double mbps;
  double line_rtt_ns;  // the slower of line_round_trip_ns() before and after the window; 0 with one worker
};

// The capacity run: no device. Each submitter keeps iodepth IOs mapped and,
// once it has that many, unmaps one (its oldest for stream, a random one of
// its own for random) and maps the next; a worker serves its submitters in
// turn. Returns MB of IO mapped and unmapped per second.
absl::StatusOr<capacity_result> run_capacity(allocator& alloc, const workload& w, double warmup,
                                             double seconds, harness::progress& prog,
                                             const std::string& label) {
  const bool probe = w.pin.size() >= 2;
  const double rtt0 = probe ? line_round_trip_ns(w.pin[0], w.pin[1]) : 0;
  std::atomic<bool> stop{false};            // relaxed: a stop request, no data handed over
  std::atomic<bool> failed{false};          // relaxed: the details are read after join()
  std::atomic<bool> measuring{false};       // relaxed: which IOs are counted; counts are read after join()
  std::atomic<uint64_t> progress_bytes{0};  // relaxed: a statistic for the progress line only
  std::atomic<int> filled{0};               // workers whose submitters all reached iodepth once
  std::vector<worker_account> acct(w.workers);
  const bool track = alloc.tracks();
  using segments = std::vector<std::pair<uint64_t, uint64_t>>;

  struct submitter {
    explicit submitter(uint64_t seed) : rng(seed) {}
    std::mt19937_64 rng;
    std::deque<segments> inflight;  // oldest first
  };

  auto worker = [&](int k) {
    worker_account& a = acct[k];
    std::vector<submitter> subs = submitters_of<submitter>(w, k);
    auto unmap = [&](submitter& s, size_t i) {
      const bool counted = measuring.load(std::memory_order_relaxed);
      for (auto [pfn, n] : s.inflight[i]) alloc.free(pfn, n);
      s.inflight.erase(s.inflight.begin() + static_cast<std::ptrdiff_t>(i));
      if (counted) a.unmapped_bytes += w.io_bytes;
    };
    auto map = [&](submitter& s) {
      segments segs;
      std::string err;
      for (uint64_t left = w.io_bytes / kPage; left > 0 && err.empty();) {
        const uint64_t n = std::min(left, w.seg.draw(s.rng));
        auto pfn = alloc.alloc(n);
        if (!pfn.ok()) {
          err = absl::StrCat("alloc(", n, " pages): ", pfn.status().ToString());
          break;
        }
        segs.emplace_back(*pfn, n);
        left -= n;
        if (track) err = check_range(*pfn, n);
      }
      s.inflight.push_back(std::move(segs));  // freed by the drain below if this IO failed
      if (!err.empty()) {
        a.error = std::move(err);
        failed.store(true, std::memory_order_relaxed);
      }
    };
    int passes = 0;
    while (!stop.load(std::memory_order_relaxed) && !failed.load(std::memory_order_relaxed)) {
      for (submitter& s : subs) {
        if (static_cast<int>(s.inflight.size()) >= w.iodepth) {
          const size_t i =
              w.random ? std::uniform_int_distribution<size_t>(0, s.inflight.size() - 1)(s.rng) : 0;
          unmap(s, i);
          progress_bytes.fetch_add(w.io_bytes, std::memory_order_relaxed);
        }
        map(s);
      }
      // relaxed: a count the measuring thread polls; nothing is handed over through it
      if (++passes == w.iodepth) filled.fetch_add(1, std::memory_order_relaxed);
    }
    for (submitter& s : subs) {
      while (!s.inflight.empty()) unmap(s, 0);
    }
  };

  std::vector<std::thread> pool;
  for (int k = 0; k < w.workers; ++k) pool.emplace_back(worker, k);
  uint64_t p0 = 0;
  const double elapsed = measure_window(
      filled, w.workers, warmup, seconds, measuring, failed,
      [&] { p0 = progress_bytes.load(std::memory_order_relaxed); },
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
  const double rtt1 = probe ? line_round_trip_ns(w.pin[0], w.pin[1]) : 0;
  return capacity_result{static_cast<double>(bytes) / 1e6 / elapsed, std::max(rtt0, rtt1)};
}

// One allocator's repeats at one thread count.
struct repeats {
  std::vector<double> mbps, pct, cpu, above, capacity, rtt;
};

std::string runs_cell(const std::vector<double>& v, int precision) {
  if (v.empty()) return "-";
  return absl::StrJoin(v, " ",
                       [&](std::string* out, double x) { out->append(harness::fixed(x, precision)); });
}
std::string median_cell(const std::vector<double>& v, int precision) {
  return v.empty() ? "-" : harness::fixed(harness::median(v), precision);
}
std::string range_cell(const std::vector<double>& v, int precision) {
  if (v.empty()) return "-";
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return absl::StrCat(harness::fixed(*lo, precision), "-", harness::fixed(*hi, precision));
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Model of the 2013 IOMMU fio comparison: IOVA allocators under 16 submitters x iodepth 10 x 20 MB "
      "IOs,\n"
      "with a device model (throughput, % of IOMMU off, allocator CPU per GB) and without one (capacity),\n"
      "each repeated and interleaved across allocators.\n"
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
  const int repeat = absl::GetFlag(FLAGS_repeat);
  const int workers_flag = absl::GetFlag(FLAGS_workers);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double cap_seconds = absl::GetFlag(FLAGS_capacity_seconds);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const uint64_t hole_mb = absl::GetFlag(FLAGS_mmio_hole_mb);
  if (hole_mb >= 4096) return harness::fail("--mmio-hole-mb must be below 4096");
  if (iodepth < 1 || repeat < 1 || workers_flag < 0 || seconds <= 0 || cap_seconds <= 0 || warmup < 0)
    return harness::fail(
        "--iodepth, --repeat, --seconds, --capacity-seconds must be > 0, --workers, --warmup >= 0");
  const std::vector<int> cpu_ids = cpu_set::all().ids();
  const int cpus = std::max<int>(1, static_cast<int>(cpu_ids.size()));
  const bool pin = absl::GetFlag(FLAGS_pin);

  // The device model always measures `off` (first in the list): it is the
  // 100% every row is compared to. Capacity alone measures what was asked.
  std::vector<std::string> order;
  if (do_device || std::count(names->begin(), names->end(), "off") > 0) order.push_back("off");
  for (const auto& n : *names) {
    if (n != "off") order.push_back(n);
  }

  const std::string seg_desc = absl::GetFlag(FLAGS_segment_kb);
  harness::table out(
      absl::StrCat("IOMMU model: threads ", absl::StrJoin(*threads, ","), " on at most ",
                   workers_flag ? workers_flag : cpus, pin ? " pinned" : "", " workers, iodepth ", iodepth,
                   ", ", absl::GetFlag(FLAGS_io_size), " IOs in ", seg_desc, " KiB requests, ", pattern, " ",
                   rw, hole_mb ? absl::StrCat(", ", hole_mb, " MiB MMIO hole reserved") : std::string(),
                   ", device ", harness::fixed(mbps, 0), " MB/s; measured: ", absl::StrJoin(*measures, ","),
                   ", ", repeat, " interleaved repeats (median, range)"),
      {{"allocator", "Allocator", false},
       {"pattern", "Pattern", false},
       {"rw", "RW", false},
       {"threads", "Threads"},
       {"workers", "Workers"},
       {"iodepth", "IOdepth"},
       {"runs", "Runs"},
       {"device_mbps", "Device MB/s"},
       {"mbps", "MB/s"},
       {"mbps_range", "MB/s range", false},
       {"pct_of_off", "% of off"},
       {"cpu_s_per_gb", "CPU s/GB"},
       {"capacity_mbps", "Capacity MB/s"},
       {"capacity_range", "Capacity range", false},
       {"line_rtt_ns", "Line RTT ns"},
       {"above_4g_pct", "% above 4G"},
       {"mbps_runs", "MB/s per run", false},
       {"capacity_mbps_runs", "Capacity per run", false},
       {"line_rtt_ns_runs", "Line RTT per run", false}});
  harness::progress prog("iommu-sim");
  for (int64_t t : *threads) {
    const int workers = std::min<int>(static_cast<int>(t), workers_flag ? workers_flag : cpus);
    std::vector<int> pin_to;
    if (pin && workers <= static_cast<int>(cpu_ids.size()))
      pin_to.assign(cpu_ids.begin(), cpu_ids.begin() + workers);
    std::vector<repeats> rep(order.size());
    // Runs one measurement of every allocator for repeat r, starting at a
    // rotating allocator so that no allocator always runs first.
    auto one_repeat = [&](int r, bool device_run) -> absl::Status {
      const workload w{static_cast<int>(t),
                       workers,
                       pin_to,
                       iodepth,
                       *io_bytes,
                       *seg,
                       pattern == "random",
                       absl::GetFlag(FLAGS_seed) + static_cast<uint64_t>(r)};
      for (size_t i = 0; i < order.size(); ++i) {
        const size_t j = (i + static_cast<size_t>(r)) % order.size();
        const std::string& n = order[j];
        const std::string label = absl::StrCat(n, " x", t, " run ", r + 1, "/", repeat);
        auto made = make_domain(n, hole_mb);
        if (!made.ok()) return made.status();
        auto alloc = std::move(*made);
        if (device_run) {
          auto d = run_device(*alloc, w, mbps, warmup, seconds, prog, label);
          if (!d.ok()) return absl::InternalError(absl::StrCat(label, " device: ", d.status().message()));
          rep[j].mbps.push_back(d->mbps);
          rep[j].cpu.push_back(d->cpu_s_per_gb);
          rep[j].above.push_back(d->above_4g_pct);
        } else {
          auto c = run_capacity(*alloc, w, warmup / 2, cap_seconds, prog, label);
          if (!c.ok()) return absl::InternalError(absl::StrCat(label, " capacity: ", c.status().message()));
          rep[j].capacity.push_back(c->mbps);
          rep[j].rtt.push_back(c->line_rtt_ns);
        }
        alloc.reset();
        rcu::barrier();
      }
      return absl::OkStatus();
    };
    for (int r = 0; r < repeat && do_device; ++r) {
      if (auto s = one_repeat(r, true); !s.ok()) return harness::fail(s.message());
    }
    for (int r = 0; r < repeat && do_capacity; ++r) {
      if (auto s = one_repeat(r, false); !s.ok()) return harness::fail(s.message());
    }
    for (size_t j = 0; j < order.size(); ++j) {
      repeats& x = rep[j];
      for (size_t r = 0; r < x.mbps.size(); ++r) {
        const double off = rep[0].mbps[r];
        x.pct.push_back(off > 0 ? 100.0 * x.mbps[r] / off : 0);
      }
      const bool is_off = order[j] == "off";
      out.add_row({order[j], pattern, rw, std::to_string(t), std::to_string(workers), std::to_string(iodepth),
                   std::to_string(repeat), harness::fixed(mbps, 0), median_cell(x.mbps, 0),
                   range_cell(x.mbps, 0), median_cell(x.pct, 1), median_cell(x.cpu, 5),
                   median_cell(x.capacity, 0), range_cell(x.capacity, 0), median_cell(x.rtt, 0),
                   is_off ? "-" : median_cell(x.above, 1), runs_cell(x.mbps, 0), runs_cell(x.capacity, 0),
                   runs_cell(x.rtt, 0)});
    }
  }
  prog.done("all allocators verified");
  out.print(*fmt, std::cout);
  return 0;
}
