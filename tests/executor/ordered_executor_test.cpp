// SPDX-License-Identifier: MIT
// Tests of <rcukit/ordered_executor.hpp> (padata).
//
// What can fail here, bug by bug of padata's history:
//  * a lost wake-up / orphaned job: done() called in shuffled order from
//    foreign threads, and rounds where a done() lands during another
//    thread's drain with no later done() to pick up a stranded job; a
//    job_watch fails the test, naming
//    the jobs whose serial() never ran, once nothing has moved for a long
//    while (a liveness bound, not a time limit on the test);
//  * completing a job twice (done() on another thread, then parallel()
//    throws; done() called twice): every serial() must run exactly once;
//  * reordering: serial() checks its job index is the next one for its
//    callback CPU and that sched_getcpu() is that CPU;
//  * sequence wraparound: first_seq just below 2^64 (and 2^32) with a small
//    ring, crossing zero many ring laps;
//  * teardown use-after-free: executors destroyed while foreign threads are
//    still inside done() (ASan/TSan builds catch the free);
//  * CPU-set changes in flight, stop/start, backpressure (both policies),
//    throwing parallel()/serial(), bad input, the two front ends.
// RCUKIT_TEST_SCALE (default 1) scales job counts; the sanitizer builds set
// it lower (tests/executor/CMakeLists.txt). RCUKIT_TEST_SECONDS bounds the
// time-based loops.
#include "rcukit/ordered_executor.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "rcukit/rcu.hpp"

namespace {

using namespace std::chrono_literals;
using rcukit::cpu_set;
using rcukit::executor_options;
using rcukit::ordered_executor;
using rcukit::ordered_job;

double test_scale() {
  const char* s = std::getenv("RCUKIT_TEST_SCALE");
  return s != nullptr ? std::atof(s) : 1.0;
}
double test_seconds() {
  const char* s = std::getenv("RCUKIT_TEST_SECONDS");
  return s != nullptr ? std::atof(s) : 1.0;
}
std::uint64_t scaled(std::uint64_t n) {
  return std::max<std::uint64_t>(100, static_cast<std::uint64_t>(static_cast<double>(n) * test_scale()));
}

// Up to two usable CPUs (the CI machine has exactly two: 0 and 1).
cpu_set test_cpus() {
  cpu_set all = cpu_set::all();
  cpu_set out;
  for (int c : all) {
    if (out.size() == 2) break;
    out.insert(c);
  }
  return out;
}

// Ends the test process after a failure that leaves an executor wedged:
// with stranded jobs its destructor would wait for them forever, with a
// cycle in a serial list its worker never stops, and a hang is not a test
// result. gtest has printed the failure before this is called.
[[noreturn]] void end_wedged_process() {
  std::fprintf(stderr, "ordered_executor_test: the executor is wedged and cannot be torn down; exiting\n");
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(1);
}

// Liveness and exactly-once bookkeeping for the n jobs of one test, indexed
// 0..n-1 by submission. The executor owes every submitted job one
// parallel() call and, once done() has been called (or parallel() threw),
// exactly one serial() call. A watchdog thread fails the test when
//  * a serial() runs a second time for one submission (at once), or
//  * some of the n jobs have not been serialized and no job has made any
//    step (submitted, parallel() started, done() returned, serial() ran)
//    for kStall: once every done() call has returned, every serial() must
//    follow. kStall is a generous liveness bound, not a performance
//    threshold: a correct executor moves in microseconds.
// The report names the jobs whose serial() never ran and the last step each
// made; then the process ends (end_wedged_process). Declare the watch
// before the executor so that it also watches the executor's teardown.
class job_watch {
 public:
  static constexpr std::chrono::seconds kStall{20};

  job_watch(std::string what, std::size_t n) : what_(std::move(what)), state_(n) {
    thread_ = std::thread([this] { watch(); });
  }
  ~job_watch() {
    stop_.store(true, std::memory_order_relaxed);  // relaxed: a stop request, nothing handed over
    thread_.join();
  }
  job_watch(const job_watch&) = delete;
  job_watch& operator=(const job_watch&) = delete;

  void submitted(std::size_t i) { mark(i, kSubmitted); }
  void parallel_started(std::size_t i) { mark(i, kParallel); }
  void done_returned(std::size_t i) { mark(i, kDone); }
  void serial_ran(std::size_t i) {
    if ((mark(i, kSerial) & kSerial) != 0) {
      std::size_t none = SIZE_MAX;
      first_duplicate_.compare_exchange_strong(none, i, std::memory_order_relaxed);  // relaxed: a report
      duplicates_.fetch_add(1, std::memory_order_relaxed);                           // relaxed: a report
      return;
    }
    serialized_.fetch_add(1, std::memory_order_release);  // pairs with the acquire in wait_all_serialized()
  }
  std::uint64_t serialized() const { return serialized_.load(std::memory_order_acquire); }
  std::uint64_t duplicates() const { return duplicates_.load(std::memory_order_relaxed); }
  // Returns once `count` jobs (default: all n) have been serialized. If that
  // never happens the watchdog fails the test and ends the process.
  void wait_all_serialized() const { wait_serialized(state_.size()); }
  void wait_serialized(std::uint64_t count) const {
    while (serialized_.load(std::memory_order_acquire) < count) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

 private:
  static constexpr std::uint8_t kSubmitted = 1, kParallel = 2, kDone = 4, kSerial = 8;

  std::uint8_t mark(std::size_t i, std::uint8_t bit) {
    events_.fetch_add(1, std::memory_order_relaxed);  // relaxed: only "did anything move"
    // relaxed: the bits are a report; each bit has one writer per submission.
    return state_[i].fetch_or(bit, std::memory_order_relaxed);
  }

  // The submitted jobs whose serial() never ran, with the last step each made.
  std::string never_serialized() const {
    std::string out;
    std::size_t count = 0, unsubmitted = 0;
    for (std::size_t i = 0; i < state_.size(); ++i) {
      const std::uint8_t s = state_[i].load(std::memory_order_relaxed);
      if ((s & kSerial) != 0) continue;
      if (s == 0) {
        ++unsubmitted;
        continue;
      }
      if (++count > 12) continue;
      out += " " + std::to_string(i) + "(" +
             ((s & kDone) != 0       ? "done() returned"
              : (s & kParallel) != 0 ? "parallel() started"
                                     : "submitted") +
             ")";
    }
    return std::to_string(count) + " submitted jobs never reached serial():" + out +
           (count > 12 ? " ..." : "") + " (" + std::to_string(unsubmitted) + " jobs not submitted yet)";
  }

  void watch() {
    using clock = std::chrono::steady_clock;
    std::uint64_t last = UINT64_MAX;
    clock::time_point since = clock::now();
    while (!stop_.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (duplicates_.load(std::memory_order_relaxed) != 0) {
        ADD_FAILURE() << what_ << ": serial() ran more than once for job "
                      << first_duplicate_.load(std::memory_order_relaxed) << " ("
                      << duplicates_.load(std::memory_order_relaxed) << " extra serial() calls so far)";
        end_wedged_process();
      }
      const std::uint64_t ev = events_.load(std::memory_order_relaxed);
      if (serialized_.load(std::memory_order_relaxed) == state_.size() || ev != last) {
        last = ev;
        since = clock::now();
        continue;
      }
      if (clock::now() - since > kStall) {
        ADD_FAILURE() << what_ << ": no job made progress for " << kStall.count()
                      << " s while jobs were outstanding: " << never_serialized();
        end_wedged_process();
      }
    }
  }

  const std::string what_;
  std::vector<std::atomic<std::uint8_t>> state_;
  std::atomic<std::uint64_t> events_{0};
  std::atomic<std::uint64_t> serialized_{0};
  std::atomic<std::uint64_t> duplicates_{0};
  std::atomic<std::size_t> first_duplicate_{SIZE_MAX};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Waits until pred() holds, for effects that drain() does not order before
// its return: a worker counts a throw from parallel() after the job may
// already have been serialized on another worker, and a second done() in
// parallel() may return after the job's serial() ran. A liveness bound
// (job_watch::kStall), not a performance threshold.
void eventually(const char* what, const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + job_watch::kStall;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << what << ": still not the case after " << job_watch::kStall.count() << " s";
      return;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// Foreign threads that call done() on the jobs handed to them, in shuffled
// batches, so completion order is far from submission order. Each job comes
// with a tag (the test's job index, read before the job may be reused);
// before_done(tag) runs before its done() call and after_done(tag) after it
// returned, on the completer thread.
class completers {
 public:
  using hook = std::function<void(std::uint64_t)>;
  explicit completers(int n, unsigned seed = 1, hook before_done = {}, hook after_done = {})
      : before_done_(std::move(before_done)), after_done_(std::move(after_done)) {
    for (int i = 0; i < n; ++i) queues_.push_back(std::make_unique<queue>());
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, i, seed] { run(*queues_[static_cast<std::size_t>(i)], seed + i); });
    }
  }
  ~completers() { stop(); }
  void hand(ordered_job* j, unsigned pick, std::uint64_t tag = 0) {
    queue& q = *queues_[pick % queues_.size()];
    std::lock_guard<std::mutex> g(q.mu);
    q.jobs.emplace_back(j, tag);
    q.cv.notify_one();
  }
  void stop() {
    for (auto& q : queues_) {
      std::lock_guard<std::mutex> g(q->mu);
      q->stop = true;
      q->cv.notify_one();
    }
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // Sleep a little before each done() (teardown tests).
  void set_delay(bool on) { delay_.store(on, std::memory_order_relaxed); }

 private:
  struct queue {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<ordered_job*, std::uint64_t>> jobs;
    bool stop = false;
  };
  void run(queue& q, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::pair<ordered_job*, std::uint64_t>> batch;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(q.mu);
        q.cv.wait(l, [&] { return q.stop || !q.jobs.empty(); });
        if (q.jobs.empty()) return;  // stop and nothing left
        batch.swap(q.jobs);
      }
      std::shuffle(batch.begin(), batch.end(), rng);
      for (auto [j, tag] : batch) {
        if (delay_.load(std::memory_order_relaxed))
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50));
        if (before_done_) before_done_(tag);
        j->done();
        if (after_done_) after_done_(tag);
      }
      batch.clear();
    }
  }
  const hook before_done_, after_done_;
  std::vector<std::unique_ptr<queue>> queues_;
  std::vector<std::thread> threads_;
  std::atomic<bool> delay_{false};
};

// Per callback CPU order and placement checks, written only by the serial()
// calls of that CPU (one at a time), read after drain().
struct order_checker {
  static constexpr int kMaxCpu = 1024;
  std::vector<std::int64_t> last = std::vector<std::int64_t>(kMaxCpu, -1);
  std::atomic<std::uint64_t> serials{0};
  std::atomic<std::uint64_t> wrong_cpu{0};
  std::atomic<std::uint64_t> out_of_order{0};
  void check(int cb_cpu, std::int64_t index) {
    if (sched_getcpu() != cb_cpu) wrong_cpu.fetch_add(1, std::memory_order_relaxed);
    if (index <= last[static_cast<std::size_t>(cb_cpu)]) out_of_order.fetch_add(1, std::memory_order_relaxed);
    last[static_cast<std::size_t>(cb_cpu)] = index;
    serials.fetch_add(1, std::memory_order_relaxed);
  }
};

// A reusable job: free again once its serial() has run.
struct test_job : ordered_job {
  std::int64_t index = 0;
  int cb_cpu = 0;
  unsigned mode = 0;  // 0: done() in parallel(); 1: handed to a completer
  std::uint64_t expect_seq = 0;
  bool check_seq = false;
  completers* comp = nullptr;
  order_checker* chk = nullptr;
  job_watch* watch = nullptr;  // optional
  std::atomic<std::uint64_t>* bad_seq = nullptr;
  std::atomic<bool> free{true};

  void parallel() override {
    // Read what we need first: once done() is called the job may be
    // serialized and reused by the submitter.
    const auto i = static_cast<std::size_t>(index);
    job_watch* const w = watch;
    if (w != nullptr) w->parallel_started(i);
    if (mode == 0 || comp == nullptr) {
      done();
      if (w != nullptr) w->done_returned(i);
    } else {
      comp->hand(this, static_cast<unsigned>(index * 2654435761u >> 7), i);
    }
  }
  void serial() override {
    if (watch != nullptr) watch->serial_ran(static_cast<std::size_t>(index));
    chk->check(cb_cpu, index);
    if (check_seq && sequence() != expect_seq) bad_seq->fetch_add(1, std::memory_order_relaxed);
    free.store(true, std::memory_order_release);  // pairs with acquire in acquire_job()
  }
};

test_job& acquire_job(std::vector<std::unique_ptr<test_job>>& ring, std::uint64_t i) {
  test_job& j = *ring[i % ring.size()];
  while (!j.free.load(std::memory_order_acquire)) std::this_thread::yield();
  j.free.store(false, std::memory_order_relaxed);  // relaxed: only the submitter reuses jobs
  return j;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void TearDown() override { rcukit::rcu::barrier<rcukit::rcu::memb>(); }
};

// --- bad input ----------------------------------------------------------------
TEST_F(ExecutorTest, RejectsCpusTheProcessMayNotUse) {
  {
    ordered_executor ex(cpu_set{5000});
    EXPECT_EQ(ex.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(ex.cpus().empty());
    test_job j;
    EXPECT_EQ(ex.submit(j, 5000).code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(ex.set_cpus(test_cpus()).ok());  // repairable
    EXPECT_EQ(ex.cpus(), test_cpus());
  }
  EXPECT_EQ(ordered_executor::create(cpu_set{-1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ordered_executor::create(cpu_set{}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ordered_executor::create(cpu_set{0, 5000}).status().code(), absl::StatusCode::kInvalidArgument);
  executor_options bad;
  bad.max_in_flight = 0;
  EXPECT_EQ(ordered_executor::create(test_cpus(), bad).status().code(), absl::StatusCode::kInvalidArgument);

  auto ex = ordered_executor::create(test_cpus());
  ASSERT_TRUE(ex.ok()) << ex.status();
  const cpu_set before = (*ex)->cpus();
  EXPECT_EQ((*ex)->set_cpus(cpu_set{5000}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->add_cpu(5000).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->add_cpu(-3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->remove_cpu(4999).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->set_cpus(cpu_set{}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->cpus(), before) << "a failed change must change nothing";
  cpu_set s = before;
  while (s.size() > 1) {
    const int c = *s.begin();
    ASSERT_TRUE((*ex)->remove_cpu(c).ok());
    s.erase(c);
  }
  EXPECT_EQ((*ex)->remove_cpu(*s.begin()).code(), absl::StatusCode::kInvalidArgument)
      << "set cannot become empty";
  test_job j;
  order_checker chk;
  j.chk = &chk;
  EXPECT_EQ((*ex)->submit(j, 5000).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->submit(j, -1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->in_flight(), 0u);
}

TEST_F(ExecutorTest, CpuSetBasics) {
  cpu_set s{3, 1, 2, 1};
  EXPECT_EQ(s.size(), 3u);
  EXPECT_TRUE(s.contains(1));
  EXPECT_FALSE(s.contains(0));
  EXPECT_EQ(s.ids(), (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(s.erase(2));
  EXPECT_FALSE(s.erase(2));
  EXPECT_FALSE(cpu_set::all().empty());
  EXPECT_TRUE(cpu_set::all().contains(sched_getcpu()));
}

// --- a done() that lands during a drain ---------------------------------------
// padata's 2019 bug: a done() that arrives while another thread is moving
// ready jobs out of the reorder ring must get its job moved too, even when
// no later done() comes to pick it up (padata lost it for want of a barrier,
// then papered over that with a 1-second timer). Each round submits two
// jobs with one callback CPU. A helper thread pinned to that CPU calls
// done() on the first: that drain releases it and wakes the callback
// worker, whose serial() of the first job calls done() on the second. Woken
// on the helper's own CPU, the worker tends to run while the helper is still
// inside its drain, so the second done() lands in it, and nothing comes
// after it. In half of the rounds the helper first sleeps long enough for
// the idle worker to go to sleep (its wake-up then preempts the helper); in
// the other half it does not. The main thread waits in drain() meanwhile,
// which adds a wake-up to every drain. The second job's serial() must run:
// the job_watch fails the test, naming the stranded jobs, if one never does.
TEST_F(ExecutorTest, ADoneLandingDuringADrainIsNeverStranded) {
  const cpu_set cpus = test_cpus();
  const std::size_t rounds = scaled(2'000);
  struct chained_job final : ordered_job {
    std::size_t index = 0;
    int cb = 0;
    chained_job* then = nullptr;  // serial() calls then->done()
    job_watch* watch = nullptr;
    order_checker* chk = nullptr;
    std::atomic<bool> parked{false};
    void parallel() override {
      watch->parallel_started(index);
      parked.store(true, std::memory_order_release);  // pairs with the acquire in the round loop
    }
    void serial() override {
      watch->serial_ran(index);
      chk->check(cb, static_cast<std::int64_t>(index));
      if (then != nullptr) {
        then->done();
        watch->done_returned(then->index);
      }
    }
  };
  std::vector<chained_job> jobs(2 * rounds);
  order_checker chk;
  job_watch watch("done() landing during a drain", 2 * rounds);
  ordered_executor ex(cpus);

  std::mutex mu;
  std::condition_variable cv;
  std::size_t posted = 0;  // guarded by mu: rounds handed to the helper
  bool stop = false;       // guarded by mu
  std::thread helper([&] {
    for (std::size_t r = 0;; ++r) {
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return stop || posted > r; });
        if (posted <= r) return;
      }
      chained_job& first = jobs[2 * r];
      cpu_set_t m;
      CPU_ZERO(&m);
      CPU_SET(first.cb, &m);
      EXPECT_EQ(pthread_setaffinity_np(pthread_self(), sizeof m, &m), 0);
      // Longer than the idle worker polls before it sleeps.
      if (r % 4 < 2) std::this_thread::sleep_for(200us);
      first.done();
      watch.done_returned(first.index);
    }
  });
  struct on_exit {
    std::function<void()> f;
    ~on_exit() { f(); }
  } join_helper{[&] {  // also when an ASSERT returns early
    {
      std::lock_guard<std::mutex> g(mu);
      stop = true;
    }
    cv.notify_all();
    helper.join();
  }};

  for (std::size_t r = 0; r < rounds; ++r) {
    chained_job& first = jobs[2 * r];
    chained_job& second = jobs[2 * r + 1];
    for (chained_job* j : {&first, &second}) {
      j->index = static_cast<std::size_t>(j - jobs.data());
      j->cb = cpus.ids()[r % cpus.size()];
      j->watch = &watch;
      j->chk = &chk;
      ASSERT_TRUE(ex.submit(*j, j->cb).ok());
      watch.submitted(j->index);
    }
    first.then = &second;
    while (!first.parked.load(std::memory_order_acquire) || !second.parked.load(std::memory_order_acquire)) {
      std::this_thread::yield();
    }
    {
      std::lock_guard<std::mutex> g(mu);
      ++posted;
    }
    cv.notify_all();
    ex.drain();  // if the second done() is lost this never returns, and the job_watch fails the test
  }
  watch.wait_all_serialized();
  EXPECT_EQ(chk.serials.load(), 2 * rounds);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  EXPECT_EQ(chk.wrong_cpu.load(), 0u);
}

// --- the main ordering test: 10^6 jobs, shuffled done() from foreign threads --
TEST_F(ExecutorTest, SerialOrderUnderRandomDoneOrderFromForeignThreads) {
  const std::uint64_t n = scaled(1'000'000);
  const cpu_set cpus = test_cpus();
  order_checker chk;
  std::atomic<std::uint64_t> bad_seq{0};
  job_watch watch("ordering test", n);
  completers comp(3, 1, {}, [&](std::uint64_t i) { watch.done_returned(i); });
  std::vector<std::unique_ptr<test_job>> ring(4096);
  for (auto& j : ring) j = std::make_unique<test_job>();
  {
    ordered_executor ex(cpus);
    ASSERT_TRUE(ex.status().ok()) << ex.status();
    std::mt19937 rng(42);
    for (std::uint64_t i = 0; i < n; ++i) {
      test_job& j = acquire_job(ring, i);
      j.index = static_cast<std::int64_t>(i);
      j.cb_cpu = cpus.ids()[rng() % cpus.size()];
      j.mode = (rng() % 4 == 0) ? 0 : 1;  // a quarter complete at once, the rest later, shuffled
      j.comp = &comp;
      j.chk = &chk;
      j.bad_seq = &bad_seq;
      j.check_seq = true;
      j.expect_seq = i;
      j.watch = &watch;
      ASSERT_TRUE(ex.submit(j, j.cb_cpu).ok());
      watch.submitted(i);
    }
    watch.wait_all_serialized();  // fails (and names the stranded jobs) instead of hanging
    ex.drain();
    EXPECT_EQ(chk.serials.load(), n) << "drain() returned before every serial() ran";
    EXPECT_EQ(ex.in_flight(), 0u);
  }
  comp.stop();
  EXPECT_EQ(chk.serials.load(), n);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  EXPECT_EQ(chk.wrong_cpu.load(), 0u) << "serial() ran off its callback CPU";
  EXPECT_EQ(bad_seq.load(), 0u);
}

// --- wraparound ----------------------------------------------------------------
void run_wrap(std::uint64_t first_seq, std::uint64_t n, std::size_t max_in_flight) {
  const cpu_set cpus = test_cpus();
  order_checker chk;
  std::atomic<std::uint64_t> bad_seq{0};
  job_watch watch("wraparound test", n);
  completers comp(2, 7, {}, [&](std::uint64_t i) { watch.done_returned(i); });
  std::vector<std::unique_ptr<test_job>> ring(4 * max_in_flight + 8);
  for (auto& j : ring) j = std::make_unique<test_job>();
  bool saw_max = false, saw_zero = false;
  {
    executor_options o;
    o.first_seq = first_seq;
    o.max_in_flight = max_in_flight;
    ordered_executor ex(cpus, o);
    ASSERT_TRUE(ex.status().ok());
    std::mt19937 rng(3);
    for (std::uint64_t i = 0; i < n; ++i) {
      test_job& j = acquire_job(ring, i);
      j.index = static_cast<std::int64_t>(i);
      j.cb_cpu = cpus.ids()[rng() % cpus.size()];
      j.mode = rng() % 3 == 0 ? 0 : 1;
      j.comp = &comp;
      j.chk = &chk;
      j.bad_seq = &bad_seq;
      j.check_seq = true;
      j.expect_seq = first_seq + i;  // wraps modulo 2^64
      saw_max |= j.expect_seq == UINT64_MAX;
      saw_zero |= j.expect_seq == 0;
      j.watch = &watch;
      ASSERT_TRUE(ex.submit(j, j.cb_cpu).ok());
      watch.submitted(i);
    }
    watch.wait_all_serialized();
    ex.drain();
  }
  comp.stop();
  EXPECT_EQ(chk.serials.load(), n);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  EXPECT_EQ(chk.wrong_cpu.load(), 0u);
  EXPECT_EQ(bad_seq.load(), 0u);
  if (first_seq > UINT64_MAX - n) {
    EXPECT_TRUE(saw_max && saw_zero) << "the test did not cross 2^64";
  }
}

TEST_F(ExecutorTest, SequenceWrapsPast2To64) { run_wrap(UINT64_MAX - 700, scaled(20'000), 16); }
TEST_F(ExecutorTest, SequenceCrosses2To32) { run_wrap(UINT32_MAX - 300, scaled(5'000), 1000); }

// --- CPU-set changes in flight ---------------------------------------------
TEST_F(ExecutorTest, CpuSetChangesMidFlightLoseAndReorderNothing) {
  const cpu_set cpus = test_cpus();
  order_checker chk;
  std::atomic<std::uint64_t> bad_seq{0};
  const std::uint64_t n = scaled(200'000);
  job_watch watch("cpu-set change test", n);
  completers comp(2, 11, {}, [&](std::uint64_t i) { watch.done_returned(i); });
  std::vector<std::unique_ptr<test_job>> ring(4096);
  for (auto& j : ring) j = std::make_unique<test_job>();
  std::atomic<std::uint64_t> changes{0};
  {
    ordered_executor ex(cpus);
    ASSERT_TRUE(ex.status().ok());
    std::atomic<bool> stop{false};
    std::thread changer([&] {
      std::mt19937 rng(5);
      std::vector<cpu_set> shapes;
      for (int c : cpus) shapes.push_back(cpu_set{c});
      shapes.push_back(cpus);
      while (!stop.load(std::memory_order_relaxed)) {
        const unsigned op = rng() % 3;
        const int c = cpus.ids()[rng() % cpus.size()];
        absl::Status s = op == 0   ? ex.set_cpus(shapes[rng() % shapes.size()])
                         : op == 1 ? ex.add_cpu(c)
                                   : ex.remove_cpu(c);
        // remove_cpu of the last CPU or of a CPU not in the set is refused.
        if (s.ok()) changes.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(20us);
      }
    });
    std::mt19937 rng(9);
    for (std::uint64_t i = 0; i < n; ++i) {
      test_job& j = acquire_job(ring, i);
      j.index = static_cast<std::int64_t>(i);
      j.mode = rng() % 2;
      j.comp = &comp;
      j.chk = &chk;
      j.bad_seq = &bad_seq;
      j.watch = &watch;
      for (;;) {
        const cpu_set now = ex.cpus();
        j.cb_cpu = now.ids()[rng() % now.size()];
        const absl::Status s = ex.submit(j, j.cb_cpu);
        if (s.ok()) break;
        // CPU removed meanwhile: retry. (EXPECT, not ASSERT: the changer thread must be joined.)
        EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
        if (s.code() != absl::StatusCode::kInvalidArgument) end_wedged_process();
      }
      watch.submitted(i);
    }
    stop.store(true);
    changer.join();
    watch.wait_all_serialized();
    ex.drain();
  }
  comp.stop();
  EXPECT_EQ(chk.serials.load(), n);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  EXPECT_EQ(chk.wrong_cpu.load(), 0u);
  EXPECT_GT(changes.load(), 0u);
}

// --- stop/start -------------------------------------------------------------
TEST_F(ExecutorTest, StopGatesSubmitButInFlightJobsFinish) {
  const cpu_set cpus = test_cpus();
  order_checker chk;
  ordered_executor ex(cpus);
  std::vector<ordered_job*> held;
  struct holding_job : test_job {
    std::vector<ordered_job*>* held;
    std::mutex* mu;
    void parallel() override {
      std::lock_guard<std::mutex> g(*mu);
      held->push_back(this);
    }
  };
  std::mutex mu;
  std::vector<std::unique_ptr<holding_job>> hj(4);
  for (int i = 0; i < 4; ++i) {
    hj[i] = std::make_unique<holding_job>();
    hj[i]->index = i;
    hj[i]->cb_cpu = *cpus.begin();
    hj[i]->chk = &chk;
    hj[i]->held = &held;
    hj[i]->mu = &mu;
    ASSERT_TRUE(ex.submit(*hj[i], hj[i]->cb_cpu).ok());
  }
  ex.stop();
  test_job extra;
  extra.chk = &chk;
  EXPECT_EQ(ex.submit(extra, *cpus.begin()).code(), absl::StatusCode::kFailedPrecondition);
  // Release the held jobs while stopped, in reverse order.
  for (;;) {
    std::lock_guard<std::mutex> g(mu);
    if (held.size() == 4) break;
  }
  for (auto it = held.rbegin(); it != held.rend(); ++it) (*it)->done();
  ex.drain();
  EXPECT_EQ(chk.serials.load(), 4u);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  ex.start();
  extra.index = 10;
  extra.cb_cpu = *cpus.begin();
  ASSERT_TRUE(ex.submit(extra, extra.cb_cpu).ok());
  ex.drain();
  EXPECT_EQ(chk.serials.load(), 5u);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
}

// --- backpressure -------------------------------------------------------------
struct parked_job : ordered_job {
  std::mutex* mu = nullptr;
  std::vector<ordered_job*>* parked = nullptr;
  std::atomic<int>* serials = nullptr;
  void parallel() override {
    std::lock_guard<std::mutex> g(*mu);
    parked->push_back(this);
  }
  void serial() override { serials->fetch_add(1); }
};

// Where the parked_jobs of one test park, in arrival order, until the test
// calls their done().
struct parking_lot {
  std::mutex mu;
  std::vector<ordered_job*> parked;
  std::atomic<int> serials{0};

  void wire(parked_job& j) {
    j.mu = &mu;
    j.parked = &parked;
    j.serials = &serials;
  }
  // Waits until exactly n jobs have parked; returns them.
  std::vector<ordered_job*> wait_for(size_t n) {
    for (;;) {
      std::lock_guard<std::mutex> g(mu);
      if (parked.size() == n) return parked;
    }
  }
  void clear() {
    std::lock_guard<std::mutex> g(mu);
    parked.clear();
  }
};

TEST_F(ExecutorTest, BackpressureFailPolicyReturnsResourceExhausted) {
  const int cb = *test_cpus().begin();
  executor_options o;
  o.max_in_flight = 8;
  o.on_full = rcukit::when_full::fail;
  ordered_executor ex(test_cpus(), o);
  parking_lot lot;
  std::vector<parked_job> jobs(9);
  for (auto& j : jobs) lot.wire(j);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(ex.submit(jobs[i], cb).ok());
  EXPECT_EQ(ex.in_flight(), 8u);
  EXPECT_EQ(ex.submit(jobs[8], cb).code(), absl::StatusCode::kResourceExhausted);
  for (ordered_job* j : lot.wait_for(8)) j->done();
  ex.drain();
  EXPECT_EQ(lot.serials.load(), 8);
  lot.clear();
  EXPECT_TRUE(ex.submit(jobs[8], cb).ok()) << "room again after the serial steps ran";
  lot.wait_for(1)[0]->done();
  ex.drain();
  EXPECT_EQ(lot.serials.load(), 9);
}

TEST_F(ExecutorTest, BackpressureBlockPolicyWaitsForRoom) {
  const int cb = *test_cpus().begin();
  executor_options o;
  o.max_in_flight = 8;  // default policy: block
  ordered_executor ex(test_cpus(), o);
  parking_lot lot;
  std::vector<parked_job> jobs(9);
  for (auto& j : jobs) lot.wire(j);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(ex.submit(jobs[i], cb).ok());
  std::atomic<bool> returned{false};
  absl::Status blocked_status;
  std::thread blocked([&] {
    blocked_status = ex.submit(jobs[8], cb);
    returned.store(true);
  });
  const std::vector<ordered_job*> first8 = lot.wait_for(8);
  std::this_thread::sleep_for(20ms);
  // Nothing completed yet, so a correct submit cannot have returned.
  EXPECT_FALSE(returned.load()) << "submit() past max_in_flight returned instead of blocking";
  // A blocked submit resumes once in-flight <= 8 - 1 - 8 / 4 = 5: finish the
  // three oldest jobs (their serial steps run in order and give slots back).
  for (int i = 0; i < 3; ++i) jobs[i].done();
  blocked.join();
  EXPECT_TRUE(blocked_status.ok()) << blocked_status;
  for (ordered_job* j : first8) {
    if (j != &jobs[0] && j != &jobs[1] && j != &jobs[2]) j->done();
  }
  lot.wait_for(9)[8]->done();
  ex.drain();
  EXPECT_EQ(lot.serials.load(), 9);

  // From one of the executor's own threads a full executor fails instead of
  // blocking (waiting there could wait for itself).
  struct nested_job : ordered_job {
    ordered_executor* ex;
    parked_job* inner;
    int cb;
    absl::Status got;
    std::atomic<bool> ran{false};
    void parallel() override {
      got = ex->submit(*inner, cb);
      ran.store(true, std::memory_order_release);  // pairs with the test's acquire load
      done();
    }
    void serial() override {}
  };
  std::vector<parked_job> fill(7);
  lot.clear();
  for (auto& j : fill) {
    lot.wire(j);
    ASSERT_TRUE(ex.submit(j, cb).ok());
  }
  parked_job inner;
  lot.wire(inner);
  nested_job nj;
  nj.ex = &ex;
  nj.inner = &inner;
  nj.cb = cb;
  ASSERT_TRUE(ex.submit(nj, cb).ok());  // the 8th slot
  while (!nj.ran.load(std::memory_order_acquire)) std::this_thread::yield();
  for (ordered_job* j : lot.wait_for(7)) j->done();
  ex.drain();
  EXPECT_EQ(nj.got.code(), absl::StatusCode::kResourceExhausted) << nj.got;
  EXPECT_EQ(ex.in_flight(), 0u);
}

// --- exceptions -----------------------------------------------------------------
TEST_F(ExecutorTest, ThrowingParallelStillReachesSerialInOrder) {
  const cpu_set cpus = test_cpus();
  struct throwing_job : ordered_job {
    std::int64_t index = 0;
    int cb = 0;
    int kind = 0;  // 0 ok, 1 throw before done, 2 done then throw, 3 serial throws
    order_checker* chk = nullptr;
    job_watch* watch = nullptr;
    std::atomic<std::uint64_t>* error_mismatch = nullptr;
    void parallel() override {
      watch->parallel_started(static_cast<std::size_t>(index));
      if (kind == 1) throw std::runtime_error("parallel failed");
      done();
      watch->done_returned(static_cast<std::size_t>(index));
      if (kind == 2) throw std::runtime_error("after done");
    }
    void serial() override {
      watch->serial_ran(static_cast<std::size_t>(index));
      chk->check(cb, index);
      const bool has = parallel_error() != nullptr;
      if (has != (kind == 1)) error_mismatch->fetch_add(1);
      if (kind == 3) throw std::logic_error("serial failed");
    }
  };
  const std::uint64_t n = scaled(50'000);
  std::vector<throwing_job> jobs(n);
  job_watch watch("throwing-parallel test", n);
  order_checker chk;
  std::atomic<std::uint64_t> mismatch{0};
  std::uint64_t throws_parallel = 0, throws_serial = 0;
  ordered_executor ex(cpus);
  for (std::uint64_t i = 0; i < n; ++i) {
    throwing_job& j = jobs[i];
    j.index = static_cast<std::int64_t>(i);
    j.cb = cpus.ids()[i % cpus.size()];
    j.kind = i % 5 == 1 ? 1 : i % 7 == 2 ? 2 : i % 11 == 3 ? 3 : 0;
    throws_parallel += j.kind == 1 || j.kind == 2;
    throws_serial += j.kind == 3;
    j.chk = &chk;
    j.watch = &watch;
    j.error_mismatch = &mismatch;
    ASSERT_TRUE(ex.submit(j, j.cb).ok());
    watch.submitted(i);
  }
  watch.wait_all_serialized();
  ex.drain();
  EXPECT_EQ(chk.serials.load(), n);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  EXPECT_EQ(mismatch.load(), 0u);
  eventually("every throw counted", [&] { return ex.parallel_errors() >= throws_parallel; });
  EXPECT_EQ(ex.parallel_errors(), throws_parallel);
  EXPECT_EQ(ex.serial_errors(), throws_serial);
}

// --- completing a job exactly once -------------------------------------------
// Regression (issue 16): parallel() hands its job to another thread, that
// thread's done() returns, and only then parallel() throws. The executor
// used to decide from a thread-local whether done() had run; done() had run
// on another thread, so it completed the job a second time, into a ring
// slot already released and twice onto a serial list, which became a cycle:
// serial() ran forever and drain() never returned. Each serial() must run
// exactly once, without the exception (done() came first, so the executor
// drops it), and drain() must return; the job_watch turns a repeated
// serial() or a stall into a failure instead of a hang.
TEST_F(ExecutorTest, DoneOnAnotherThreadThenThrowCompletesOnce) {
  const int cpu = *test_cpus().begin();
  const std::size_t n = 5000;
  struct handing_job final : ordered_job {
    std::size_t index = 0;
    int cb = 0;
    completers* handoff = nullptr;
    std::vector<std::atomic<bool>>* done_returned = nullptr;
    job_watch* watch = nullptr;
    order_checker* chk = nullptr;
    std::atomic<std::uint64_t>* with_error = nullptr;
    void parallel() override {
      const std::size_t i = index;
      std::vector<std::atomic<bool>>& returned = *done_returned;
      watch->parallel_started(i);
      handoff->hand(this, 0, i);
      // The job is not ours any more: it may already be serialized.
      while (!returned[i].load(std::memory_order_acquire)) std::this_thread::yield();
      throw std::runtime_error("thrown after done() returned on another thread");
    }
    void serial() override {
      watch->serial_ran(index);
      chk->check(cb, static_cast<std::int64_t>(index));
      if (parallel_error() != nullptr) with_error->fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<handing_job> jobs(n);
  std::vector<std::atomic<bool>> done_returned(n);
  order_checker chk;
  std::atomic<std::uint64_t> with_error{0};
  job_watch watch("done() on another thread, then throw", n);
  completers handoff(1, 3, {}, [&](std::uint64_t i) {
    watch.done_returned(i);
    done_returned[i].store(true, std::memory_order_release);  // pairs with the acquire in parallel()
  });
  {
    ordered_executor ex(cpu_set{cpu});  // one worker, as reported
    ASSERT_TRUE(ex.status().ok()) << ex.status();
    for (std::size_t i = 0; i < n; ++i) {
      handing_job& j = jobs[i];
      j.index = i;
      j.cb = cpu;
      j.handoff = &handoff;
      j.done_returned = &done_returned;
      j.watch = &watch;
      j.chk = &chk;
      j.with_error = &with_error;
      ASSERT_TRUE(ex.submit(j, cpu).ok());
      watch.submitted(i);
    }
    watch.wait_all_serialized();
    ex.drain();
    EXPECT_EQ(ex.parallel_errors(), n);
    EXPECT_EQ(ex.in_flight(), 0u);
  }
  handoff.stop();
  EXPECT_EQ(chk.serials.load(), n);
  EXPECT_EQ(watch.duplicates(), 0u);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  EXPECT_EQ(chk.wrong_cpu.load(), 0u);
  EXPECT_EQ(with_error.load(), 0u) << "done() came before the throw: the exception must be dropped";
}

// The other orders of that race. Mode 0: parallel() hands the job off and
// throws at once, so the other thread's done() lands before, during or after
// the executor's own completion. Mode 1: the other thread waits until the
// job's serial() has run (the executor completed it when parallel() threw)
// and only then calls done(), which must be absorbed. Either way every job
// completes exactly once and in order.
TEST_F(ExecutorTest, HandOffAndThrowInEitherOrderCompletesOnce) {
  const cpu_set cpus = test_cpus();
  const std::size_t n = scaled(20'000);
  struct racing_job final : ordered_job {
    std::size_t index = 0;
    int cb = 0;
    unsigned mode = 0;
    completers* handoff = nullptr;
    job_watch* watch = nullptr;
    order_checker* chk = nullptr;
    std::atomic<bool>* serial_ran = nullptr;
    std::atomic<std::uint64_t>* missing_error = nullptr;
    void parallel() override {
      watch->parallel_started(index);
      handoff->hand(this, static_cast<unsigned>(index), index);
      throw std::runtime_error("thrown right after the hand-off");
    }
    void serial() override {
      watch->serial_ran(index);
      chk->check(cb, static_cast<std::int64_t>(index));
      if (mode == 1 && parallel_error() == nullptr) missing_error->fetch_add(1, std::memory_order_relaxed);
      serial_ran->store(true, std::memory_order_release);  // pairs with the acquire in before_done
    }
  };
  std::vector<racing_job> jobs(n);
  std::vector<std::atomic<bool>> serial_ran(n);
  order_checker chk;
  std::atomic<std::uint64_t> missing_error{0};
  job_watch watch("hand-off and throw in either order", n);
  completers handoff(
      2, 17,
      [&](std::uint64_t i) {  // mode 1: done() only after serial() ran
        if (jobs[i].mode != 1) return;
        while (!serial_ran[i].load(std::memory_order_acquire)) std::this_thread::yield();
      },
      [&](std::uint64_t i) { watch.done_returned(i); });
  {
    ordered_executor ex(cpus);
    std::mt19937 rng(23);
    for (std::size_t i = 0; i < n; ++i) {
      racing_job& j = jobs[i];
      j.index = i;
      j.cb = cpus.ids()[rng() % cpus.size()];
      j.mode = rng() % 2;
      j.handoff = &handoff;
      j.watch = &watch;
      j.chk = &chk;
      j.serial_ran = &serial_ran[i];
      j.missing_error = &missing_error;
      ASSERT_TRUE(ex.submit(j, j.cb).ok());
      watch.submitted(i);
    }
    watch.wait_all_serialized();
    ex.drain();
    handoff.stop();  // every late done() has returned
    eventually("every throw counted", [&] { return ex.parallel_errors() >= n; });
    EXPECT_EQ(ex.parallel_errors(), n);
    EXPECT_EQ(ex.duplicate_dones(), 0u) << "a done() after the executor's completion is not a second done()";
    EXPECT_EQ(ex.in_flight(), 0u);
  }
  EXPECT_EQ(chk.serials.load(), n);
  EXPECT_EQ(watch.duplicates(), 0u);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  EXPECT_EQ(chk.wrong_cpu.load(), 0u);
  EXPECT_EQ(missing_error.load(), 0u) << "the executor completed these jobs: parallel_error() must be set";
}

// A second done() for one submission is the user's error. Release builds
// count it (ordered_executor::duplicate_dones()) and ignore it; debug builds
// abort with the caller's file and line (death test below). Either way the
// executor's state stays intact: each job completes once, in order, and the
// executor keeps working. Mode 0 calls done() twice in a row in parallel();
// mode 1 calls it in parallel() and again from another thread, while or
// after the job is serialized.
#ifdef NDEBUG
TEST_F(ExecutorTest, SecondDoneIsIgnoredAndStateStaysIntact) {
  const cpu_set cpus = test_cpus();
  const std::size_t n = scaled(20'000);
  struct twice_job final : ordered_job {
    std::size_t index = 0;
    int cb = 0;
    unsigned mode = 0;
    completers* again = nullptr;
    job_watch* watch = nullptr;
    order_checker* chk = nullptr;
    void parallel() override {
      watch->parallel_started(index);
      done();
      if (mode == 0) {
        done();
      } else {
        again->hand(this, static_cast<unsigned>(index), index);
      }
      watch->done_returned(index);
    }
    void serial() override {
      watch->serial_ran(index);
      chk->check(cb, static_cast<std::int64_t>(index));
    }
  };
  std::vector<twice_job> jobs(n);
  order_checker chk;
  job_watch watch("second done()", n);
  completers again(2, 29);
  ordered_executor ex(cpus);
  std::mt19937 rng(31);
  for (std::size_t i = 0; i < n; ++i) {
    twice_job& j = jobs[i];
    j.index = i;
    j.cb = cpus.ids()[rng() % cpus.size()];
    j.mode = rng() % 2;
    j.again = &again;
    j.watch = &watch;
    j.chk = &chk;
    ASSERT_TRUE(ex.submit(j, j.cb).ok());
    watch.submitted(i);
  }
  watch.wait_all_serialized();
  ex.drain();
  again.stop();  // every second done() from another thread has returned
  eventually("every second done() counted", [&] { return ex.duplicate_dones() >= n; });
  EXPECT_EQ(ex.duplicate_dones(), n);
  EXPECT_EQ(chk.serials.load(), n);
  EXPECT_EQ(watch.duplicates(), 0u);
  EXPECT_EQ(chk.out_of_order.load(), 0u);
  EXPECT_EQ(chk.wrong_cpu.load(), 0u);
  EXPECT_EQ(ex.in_flight(), 0u);

  // The executor still works: fresh jobs all run, in order.
  const std::size_t m = 2000;
  std::vector<std::unique_ptr<test_job>> fresh(m);
  order_checker chk2;
  job_watch watch2("jobs after the second done() calls", m);
  for (std::size_t i = 0; i < m; ++i) {
    fresh[i] = std::make_unique<test_job>();
    test_job& j = *fresh[i];
    j.index = static_cast<std::int64_t>(i);
    j.cb_cpu = cpus.ids()[i % cpus.size()];
    j.chk = &chk2;
    j.watch = &watch2;
    ASSERT_TRUE(ex.submit(j, j.cb_cpu).ok());
    watch2.submitted(i);
  }
  watch2.wait_all_serialized();
  ex.drain();
  EXPECT_EQ(chk2.serials.load(), m);
  EXPECT_EQ(chk2.out_of_order.load(), 0u);
  EXPECT_EQ(ex.duplicate_dones(), n);
}
#else
struct done_twice_job final : ordered_job {
  static constexpr int kSecondDoneLine = __LINE__ + 3;  // the line the report must name
  void parallel() override {
    done();
    done();
  }
  void serial() override {}
};

TEST(ExecutorDeathTest, SecondDoneAbortsWithTheCallersFileAndLine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the parent has liburcu's threads
  EXPECT_DEATH(
      {
        ordered_executor ex(test_cpus());
        done_twice_job j;
        if (ex.submit(j, *test_cpus().begin()).ok()) ex.drain();
      },
      "done\\(\\) called twice for one submission of a job \\(called from .*ordered_executor_test\\.cpp:" +
          std::to_string(done_twice_job::kSecondDoneLine) + ", in ");
}
#endif

// --- teardown with jobs in flight ------------------------------------------------
TEST_F(ExecutorTest, TeardownWithJobsInFlightWaitsAndFreesSafely) {
  const cpu_set cpus = test_cpus();
  const int rounds = std::max(3, static_cast<int>(20 * test_scale()));
  for (int r = 0; r < rounds; ++r) {
    order_checker chk;
    const std::uint64_t n = 600;
    job_watch watch("teardown test", n);  // the destructor drains: it must not wait forever
    completers comp(3, 100 + r, {}, [&](std::uint64_t i) { watch.done_returned(i); });
    comp.set_delay(r % 2 == 0);
    std::vector<std::unique_ptr<test_job>> jobs(n);
    {
      auto ex = std::make_unique<ordered_executor>(cpus);
      for (std::uint64_t i = 0; i < n; ++i) {
        jobs[i] = std::make_unique<test_job>();
        test_job& j = *jobs[i];
        j.index = static_cast<std::int64_t>(i);
        j.cb_cpu = cpus.ids()[i % cpus.size()];
        j.mode = 1;
        j.comp = &comp;
        j.chk = &chk;
        j.watch = &watch;
        ASSERT_TRUE(ex->submit(j, j.cb_cpu).ok());
        watch.submitted(i);
      }
      ex.reset();  // jobs are still in flight in the completers: the destructor drains
      EXPECT_EQ(chk.serials.load(), n);
    }
    comp.stop();  // completers may still have been inside done() during the destructor
    EXPECT_EQ(chk.out_of_order.load(), 0u);
    EXPECT_EQ(chk.wrong_cpu.load(), 0u);
  }
}

// --- drain with concurrent submitters ---------------------------------------------
TEST_F(ExecutorTest, DrainCoversJobsSubmittedBeforeItDespiteConcurrentSubmitters) {
  const cpu_set cpus = test_cpus();
  ordered_executor ex(cpus);
  struct flag_job : ordered_job {
    std::atomic<bool> ran{false};
    void parallel() override { done(); }
    void serial() override { ran.store(true, std::memory_order_release); }
  };
  const std::size_t n = 2000;
  std::vector<flag_job> mine(n);
  std::atomic<bool> stop{false};
  std::thread other([&] {
    std::vector<std::unique_ptr<flag_job>> theirs(64);
    for (auto& j : theirs) j = std::make_unique<flag_job>();
    std::uint64_t i = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(test_seconds() * 0.3);
    while (!stop.load() && std::chrono::steady_clock::now() < end) {
      flag_job& j = *theirs[i++ % theirs.size()];
      ex.drain();  // keep our reused jobs private: only resubmit after they ran
      ASSERT_TRUE(ex.submit(j, *cpus.begin()).ok());
    }
    ex.drain();  // before `theirs` is freed
  });
  for (auto& j : mine) ASSERT_TRUE(ex.submit(j, cpus.ids().back()).ok());
  ex.drain();
  std::size_t ran = 0;
  for (auto& j : mine) ran += j.ran.load(std::memory_order_acquire);
  EXPECT_EQ(ran, n);
  stop.store(true);
  other.join();
  ex.drain();
}

// --- front ends -----------------------------------------------------------------
TEST_F(ExecutorTest, OrderedTransformDeliversResultsInInputOrder) {
  ordered_executor ex(test_cpus());
  const std::uint64_t n = scaled(200'000);
  std::vector<std::uint64_t> in(n);
  for (std::uint64_t i = 0; i < n; ++i) in[i] = i;
  std::vector<std::uint64_t> out;
  out.reserve(n);
  rcukit::ordered_transform(
      ex, in.begin(), in.end(), [](std::uint64_t x) { return x * x + 1; },
      [&](std::uint64_t y) { out.push_back(y); });
  ASSERT_EQ(out.size(), n);
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], i * i + 1) << i;
}

TEST_F(ExecutorTest, OrderedTransformRethrowsFirstErrorAndSkipsOnlyFailedItems) {
  ordered_executor ex(test_cpus());
  std::vector<int> in(5000);
  for (int i = 0; i < 5000; ++i) in[static_cast<std::size_t>(i)] = i;
  std::vector<int> out;
  try {
    rcukit::ordered_transform(
        ex, in.begin(), in.end(),
        [](int x) {
          if (x % 1000 == 999) throw std::runtime_error("bad " + std::to_string(x));
          return x;
        },
        [&](int y) { out.push_back(y); });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "bad 999");
  }
  ASSERT_EQ(out.size(), 4995u);
  EXPECT_TRUE(std::is_sorted(out.begin(), out.end()));
  // The executor is still fully usable.
  std::vector<int> out2;
  rcukit::ordered_transform(
      ex, in.begin(), in.end(), [](int x) { return x; }, [&](int y) { out2.push_back(y); });
  EXPECT_EQ(out2, in);
}

TEST_F(ExecutorTest, OrderedTransformFallsBackInlineWhenStoppedOrNested) {
  ordered_executor ex(test_cpus());
  std::vector<int> in(300);
  for (int i = 0; i < 300; ++i) in[static_cast<std::size_t>(i)] = i;
  ex.stop();
  std::vector<int> out;
  rcukit::ordered_transform(
      ex, in.begin(), in.end(), [](int x) { return x + 1; }, [&](int y) { out.push_back(y - 1); });
  EXPECT_EQ(out, in);
  ex.start();
  struct nested : ordered_job {
    ordered_executor* ex;
    std::vector<int>* in;
    std::vector<int> out;
    void parallel() override {
      rcukit::ordered_transform(
          *ex, in->begin(), in->end(), [](int x) { return x; }, [&](int y) { out.push_back(y); });
      done();
    }
    void serial() override {}
  } nj;
  nj.ex = &ex;
  nj.in = &in;
  ASSERT_TRUE(ex.submit(nj, *test_cpus().begin()).ok());
  ex.drain();
  EXPECT_EQ(nj.out, in);
}

// The front end hands items over in batches of 16: windows smaller than a
// batch (slot reuse inside a batch would corrupt items), a forward-only input
// (no size known), the fail policy at a tiny bound (partial batches), and a
// stop() in the middle of a call (the rest of the batch falls back inline).
TEST_F(ExecutorTest, OrderedTransformSmallWindowsPartialBatchesAndStopMidCall) {
  std::uint64_t n = scaled(2'000);  // a bound of 1 costs a wake-up per item
  std::list<std::uint64_t> in;
  for (std::uint64_t i = 0; i < n; ++i) in.push_back(i);
  for (std::size_t bound : {1, 3, 17, 40}) {
    for (rcukit::when_full policy : {rcukit::when_full::block, rcukit::when_full::fail}) {
      executor_options o;
      o.max_in_flight = bound;
      o.on_full = policy;
      ordered_executor ex(test_cpus(), o);
      std::vector<std::uint64_t> out;
      out.reserve(n);
      rcukit::ordered_transform(
          ex, in.begin(), in.end(), [](std::uint64_t x) { return 3 * x + 1; },
          [&](std::uint64_t y) { out.push_back(y); });
      ASSERT_EQ(out.size(), n) << "bound " << bound;
      for (std::uint64_t i = 0; i < n; ++i)
        ASSERT_EQ(out[i], 3 * i + 1) << "bound " << bound << " item " << i;
      EXPECT_EQ(ex.in_flight(), 0u);
    }
  }
  n = scaled(20'000);
  for (std::uint64_t i = in.size(); i < n; ++i) in.push_back(i);
  ordered_executor ex(test_cpus());
  std::vector<std::uint64_t> out;
  rcukit::ordered_transform(
      ex, in.begin(), in.end(), [](std::uint64_t x) { return x; },
      [&](std::uint64_t y) {
        if (y == n / 3) ex.stop();  // from the callback worker, mid-call
        out.push_back(y);
      });
  ASSERT_EQ(out.size(), n);
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], i) << i;
}

TEST_F(ExecutorTest, ParallelChunksCoversEveryIndexOnceWithMinChunk) {
  ordered_executor ex(test_cpus());
  const std::uint64_t begin = 1000, end = 1000 + scaled(300'000);
  std::vector<std::atomic<std::uint8_t>> seen(end - begin);
  std::atomic<std::uint64_t> small_chunks{0}, chunks{0};
  const std::uint64_t min_chunk = 5000;
  rcukit::parallel_chunks(ex, begin, end, min_chunk, [&](std::uint64_t b, std::uint64_t e) {
    chunks.fetch_add(1);
    if (e - b < min_chunk && e != end) small_chunks.fetch_add(1);
    for (std::uint64_t i = b; i < e; ++i) seen[i - begin].fetch_add(1, std::memory_order_relaxed);
  });
  for (std::uint64_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << i;
  EXPECT_EQ(small_chunks.load(), 0u);
  EXPECT_GE(chunks.load(), 1u);
  // Tiny ranges and empty ranges.
  std::atomic<int> calls{0};
  rcukit::parallel_chunks(ex, 5, 5, 1, [&](std::uint64_t, std::uint64_t) { calls++; });
  EXPECT_EQ(calls.load(), 0);
  rcukit::parallel_chunks(ex, 5, 6, 0,
                          [&](std::uint64_t b, std::uint64_t e) { calls += static_cast<int>(e - b); });
  EXPECT_EQ(calls.load(), 1);
  ex.drain();  // helper jobs delete themselves in their serial step
}

TEST_F(ExecutorTest, ParallelChunksRethrows) {
  ordered_executor ex(test_cpus());
  EXPECT_THROW(rcukit::parallel_chunks(ex, 0, 100'000, 100,
                                       [&](std::uint64_t b, std::uint64_t) {
                                         if (b >= 50'000) throw std::out_of_range("chunk");
                                       }),
               std::out_of_range);
  std::atomic<std::uint64_t> sum{0};
  rcukit::parallel_chunks(ex, 0, 1000, 10, [&](std::uint64_t b, std::uint64_t e) {
    for (std::uint64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 999u * 1000u / 2u);
  ex.drain();
}

}  // namespace

// --- misuse: issue 23 (API.md "Common rules", submit, drain, destructor) ----------
namespace {

// A one-shot gate a job waits on (a test must not depend on timing).
struct gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> g(m);
      open = true;
    }
    cv.notify_all();
  }
};

struct gated_job final : ordered_job {
  gate* par = nullptr;  // parallel() waits here before done()
  gate* ser = nullptr;  // serial() waits here
  std::atomic<int> serials{0};
  void parallel() override {
    if (par != nullptr) par->wait();
    done();
  }
  void serial() override {
    if (ser != nullptr) ser->wait();
    serials.fetch_add(1);
  }
};

TEST(ExecutorMisuse, SubmitOfAJobInFlightIsFailedPrecondition) {
  ordered_executor ex(test_cpus());
  const int cb = *test_cpus().begin();
  // In flight before done(): its parallel() is held.
  gate par;
  gated_job a;
  a.par = &par;
  ASSERT_TRUE(ex.submit(a, cb).ok());
  EXPECT_EQ(ex.submit(a, cb).code(), absl::StatusCode::kFailedPrecondition)
      << "a job whose parallel() has not finished was accepted again";
  // In flight after done(): its serial() waits behind an earlier job's.
  gate ser;
  gated_job first, b;
  first.ser = &ser;
  par.release();
  ASSERT_TRUE(ex.submit(first, cb).ok());
  ASSERT_TRUE(ex.submit(b, cb).ok());
  EXPECT_EQ(ex.submit(b, cb).code(), absl::StatusCode::kFailedPrecondition)
      << "a job done but not yet serialised was accepted again";
  ser.release();
  ex.drain();
  EXPECT_EQ(a.serials.load(), 1);
  EXPECT_EQ(b.serials.load(), 1) << "the refused submit must not have queued the job a second time";
  // Once its serial() has run, the job may be submitted again.
  EXPECT_TRUE(ex.submit(b, cb).ok());
  ex.drain();
  EXPECT_EQ(b.serials.load(), 2);
  EXPECT_EQ(ex.in_flight(), 0u);
}

// A refused submit for another reason leaves the job free to submit.
TEST(ExecutorMisuse, AFailedSubmitDoesNotLeaveTheJobInFlight) {
  ordered_executor ex(test_cpus());
  const int cb = *test_cpus().begin();
  gated_job j;
  EXPECT_EQ(ex.submit(j, -1).code(), absl::StatusCode::kInvalidArgument);
  ex.stop();
  EXPECT_EQ(ex.submit(j, cb).code(), absl::StatusCode::kFailedPrecondition);
  ex.start();
  EXPECT_TRUE(ex.submit(j, cb).ok());
  ex.drain();
  EXPECT_EQ(j.serials.load(), 1);
}

// Submitting again from inside its own serial() is allowed (API.md).
struct self_resubmitting_job final : ordered_job {
  ordered_executor* ex = nullptr;
  int cb = 0;
  std::atomic<int> left{3};
  std::atomic<int> refused{0};
  void parallel() override { done(); }
  void serial() override {
    if (left.fetch_sub(1) > 1 && !ex->submit(*this, cb).ok()) refused.fetch_add(1);
  }
};

TEST(ExecutorMisuse, ResubmitFromInsideSerialIsAccepted) {
  ordered_executor ex(test_cpus());
  self_resubmitting_job j;
  j.ex = &ex;
  j.cb = *test_cpus().begin();
  ASSERT_TRUE(ex.submit(j, j.cb).ok());
  // Each serial() resubmits before it returns; wait until the last one ran.
  while (j.left.load() > 0) ex.drain();
  ex.drain();
  EXPECT_EQ(j.refused.load(), 0);
  EXPECT_EQ(j.left.load(), 0);
}

struct drain_inside_job final : ordered_job {
  static constexpr int kDrainLine = __LINE__ + 3;  // the line the report must name
  ordered_executor* ex = nullptr;
  void parallel() override { done(); }
  void serial() override { ex->drain(); }
};

TEST(ExecutorMisuseDeathTest, DrainInsideAJobAbortsWithTheCallersFileAndLine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the parent has liburcu's threads
  EXPECT_DEATH(
      {
        ordered_executor ex(test_cpus());
        drain_inside_job j;
        j.ex = &ex;
        if (ex.submit(j, *test_cpus().begin()).ok()) ex.drain();
      },
      "rcukit::ordered_executor: drain\\(\\) called from inside a job .*\\(called from "
      ".*ordered_executor_test\\.cpp:" +
          std::to_string(drain_inside_job::kDrainLine) + ", in ");
}

// The destructor has no caller location to name: its report names the
// executor and the rule (API.md, ~ordered_executor).
struct destroy_inside_job final : ordered_job {
  std::unique_ptr<ordered_executor>* owner = nullptr;
  void parallel() override { done(); }
  void serial() override { owner->reset(); }
};

TEST(ExecutorMisuseDeathTest, DestroyingFromInsideAJobAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto ex = std::make_unique<ordered_executor>(test_cpus());
        destroy_inside_job j;
        j.owner = &ex;
        if (ex->submit(j, *test_cpus().begin()).ok()) {
          // The job destroys the executor; wait for the abort, not for it.
          for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      },
      "rcukit::ordered_executor: destroyed from inside one of its own jobs");
}

TEST(ExecutorMisuseDeathTest, DestroyingInsideAReadSideAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto ex = std::make_unique<ordered_executor>(test_cpus());
        rcukit::rcu::read_guard<rcukit::rcu::memb> g;
        ex.reset();
      },
      "rcukit::ordered_executor: destroyed inside an rcu::memb read side");
}

}  // namespace
