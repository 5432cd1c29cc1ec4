// SPDX-License-Identifier: MIT
// Tests of <rcukit/rcu.hpp>, typed over the four liburcu flavours.
//
// What can fail here: a retired object reclaimed while a reader that saw it is
// still inside its read side; synchronize() returning before a pre-existing
// reader left; barrier() returning with callbacks pending; registration
// leaking or doubling when threads come and go (a leaked memb registration
// stalls the next grace period forever, which ctest's timeout turns into a
// failure); objects leaked (live counter not 0 after barrier()); retire()'s
// out-of-memory fallback aborting or not waiting for readers; misuse inside
// a read side (synchronize(), barrier(), qsbr quiescent_state()) running on
// instead of aborting with the caller's file and line.
#include "rcukit/rcu.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

// Allocation-failure injection for retire()'s box (the only nothrow new in
// rcu.hpp): when set, the next nothrow operator new on this thread fails.
thread_local bool t_fail_next_nothrow_new = false;

void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (t_fail_next_nothrow_new) {
    t_fail_next_nothrow_new = false;
    return nullptr;
  }
  try {
    return ::operator new(n);  // the sanitizers' allocator, so delete matches
  } catch (...) {
    return nullptr;
  }
}

namespace {

using namespace std::chrono_literals;
namespace rcu = rcukit::rcu;

// Live-object accounting shared by every test object type.
std::atomic<long> g_live{0};  // relaxed counters; read after barrier(), which orders them

struct tracked : rcu::retirable {
  explicit tracked(int v = 0) : value(v) { g_live.fetch_add(1, std::memory_order_relaxed); }
  ~tracked() {
    // release: pairs with the acquire load in readers that check `destroyed`.
    destroyed_flag->store(true, std::memory_order_release);
    g_live.fetch_sub(1, std::memory_order_relaxed);
  }
  int value;
  std::shared_ptr<std::atomic<bool>> destroyed_flag = std::make_shared<std::atomic<bool>>(false);
};

// Not derived from retirable: exercises the boxed retire path.
struct plain {
  plain() { g_live.fetch_add(1, std::memory_order_relaxed); }
  ~plain() { g_live.fetch_sub(1, std::memory_order_relaxed); }
  long payload[4] = {1, 2, 3, 4};
};

// Not derived from retirable, with a destruction flag: the boxed path, whose
// box allocation can fail.
struct boxed_tracked {
  explicit boxed_tracked(int v) : value(v) { g_live.fetch_add(1, std::memory_order_relaxed); }
  ~boxed_tracked() {
    // release: pairs with the acquire loads of readers and of the test body.
    destroyed_flag->store(true, std::memory_order_release);
    g_live.fetch_sub(1, std::memory_order_relaxed);
  }
  int value;
  std::shared_ptr<std::atomic<bool>> destroyed_flag = std::make_shared<std::atomic<bool>>(false);
};

// Seconds for the bounded concurrent loops (RCUKIT_TEST_SECONDS, default 1).
double test_seconds() {
  const char* s = std::getenv("RCUKIT_TEST_SECONDS");
  return s != nullptr ? std::atof(s) : 1.0;
}

// qsbr needs explicit registration; the others register on first use. This
// RAII helper makes every test thread (including the gtest main thread)
// correct for every flavour.
template <class F>
struct test_thread_scope {
  struct none {};
  [[no_unique_address]] std::conditional_t<std::is_same_v<F, rcu::qsbr>, rcu::thread_registration<F>, none>
      reg;
  // For qsbr, a thread that waits must not hold up grace periods.
  void quiescent() {
    if constexpr (std::is_same_v<F, rcu::qsbr>) rcu::quiescent_state<F>();
  }
};

template <class F>
class RcuTest : public ::testing::Test {
 protected:
  void TearDown() override {
    scope_.quiescent();
    rcu::barrier<F>();
    EXPECT_EQ(g_live.load(std::memory_order_relaxed), 0) << "objects leaked or freed twice";
  }
  test_thread_scope<F> scope_;
};

using Flavors = ::testing::Types<rcu::memb, rcu::mb, rcu::bp, rcu::qsbr>;
class FlavorNames {
 public:
  template <class F>
  static std::string GetName(int) {
    return F::name;
  }
};
TYPED_TEST_SUITE(RcuTest, Flavors, FlavorNames);

// A reader holds an object while the writer unlinks and retires it (through
// `retire_fn`); the object must be intact until the reader leaves, and
// reclaimed by barrier().
template <class F, class Retire>
void check_retired_object_survives_reader(test_thread_scope<F>& main_scope, Retire retire_fn) {
  auto* obj = new tracked(42);
  std::atomic<tracked*> slot{obj};
  std::atomic<int> phase{0};  // 0 start, 1 reader inside, 2 retired, 3 reader done
  std::atomic<bool> survived{false};
  auto flag = obj->destroyed_flag;

  std::thread reader([&] {
    [[maybe_unused]] test_thread_scope<F> scope;
    {
      rcu::read_guard<F> g;
      tracked* p = slot.load(std::memory_order_acquire);  // pairs with the release store below
      phase.store(1, std::memory_order_release);
      while (phase.load(std::memory_order_acquire) < 2) std::this_thread::yield();
      // The writer has retired p. Give a broken grace period every chance to
      // free it, then check it is intact.
      std::this_thread::sleep_for(50ms);
      survived.store(!flag->load(std::memory_order_acquire) && p->value == 42, std::memory_order_relaxed);
    }
    phase.store(3, std::memory_order_release);
  });

  while (phase.load(std::memory_order_acquire) < 1) std::this_thread::yield();
  slot.store(new tracked(7), std::memory_order_release);
  retire_fn(obj);
  phase.store(2, std::memory_order_release);
  while (phase.load(std::memory_order_acquire) < 3) {
    main_scope.quiescent();
    std::this_thread::yield();
  }
  reader.join();
  EXPECT_TRUE(survived.load(std::memory_order_relaxed));
  main_scope.quiescent();
  rcu::barrier<F>();
  EXPECT_TRUE(flag->load(std::memory_order_acquire)) << "barrier() did not reclaim the retired object";
  delete slot.load(std::memory_order_relaxed);
}

void delete_tracked(tracked* p) { delete p; }

TYPED_TEST(RcuTest, RetiredObjectSurvivesWhileReaderInside) {
  using F = TypeParam;
  check_retired_object_survives_reader<F>(this->scope_, [](tracked* p) { rcu::retire<F>(p); });
}

// The same through retire_with (the path the skiplist and Judy use).
TYPED_TEST(RcuTest, RetiredWithObjectSurvivesWhileReaderInside) {
  using F = TypeParam;
  check_retired_object_survives_reader<F>(this->scope_,
                                          [](tracked* p) { rcu::retire_with<&delete_tracked, F>(p); });
}

TYPED_TEST(RcuTest, SynchronizeWaitsForPreexistingReaders) {
  using F = TypeParam;
  for (int round = 0; round < 5; ++round) {
    std::atomic<bool> entered{false};
    std::atomic<bool> left{false};
    std::thread reader([&] {
      test_thread_scope<F> scope;
      {
        rcu::read_guard<F> g;
        entered.store(true, std::memory_order_release);
        std::this_thread::sleep_for(20ms);
        left.store(true, std::memory_order_release);
      }
      scope.quiescent();
    });
    while (!entered.load(std::memory_order_acquire)) std::this_thread::yield();
    this->scope_.quiescent();
    rcu::synchronize<F>();
    EXPECT_TRUE(left.load(std::memory_order_acquire)) << "synchronize() returned before a reader left";
    reader.join();
  }
}

TYPED_TEST(RcuTest, NestedGuardsAndSynchronizeOutside) {
  using F = TypeParam;
  {
    rcu::read_guard<F> outer;
    {
      rcu::read_guard<F> inner;
      if constexpr (!std::is_same_v<F, rcu::qsbr>) {
        EXPECT_TRUE(F::read_ongoing());
      }
    }
    if constexpr (!std::is_same_v<F, rcu::qsbr>) {
      EXPECT_TRUE(F::read_ongoing()) << "inner guard ended the outer read side";
    }
  }
  if constexpr (!std::is_same_v<F, rcu::qsbr>) {
    EXPECT_FALSE(F::read_ongoing());
  }
  this->scope_.quiescent();
  rcu::synchronize<F>();
}

TYPED_TEST(RcuTest, BarrierRunsEveryPendingCallback) {
  using F = TypeParam;
  constexpr int kObjects = 20000;
  for (int i = 0; i < kObjects; ++i) {
    if (i % 2 == 0) {
      rcu::retire<F>(new tracked(i));
    } else {
      rcu::retire<F>(new plain);
    }
  }
  this->scope_.quiescent();
  rcu::barrier<F>();
  EXPECT_EQ(g_live.load(std::memory_order_relaxed), 0);
}

struct custom_freed : rcu::retirable {
  static inline std::atomic<int> freed{0};  // relaxed: read after barrier()
  static void release(custom_freed* p) {
    freed.fetch_add(1, std::memory_order_relaxed);
    delete p;
  }
};

TYPED_TEST(RcuTest, RetireWithCustomReclaimer) {
  using F = TypeParam;
  custom_freed::freed.store(0, std::memory_order_relaxed);
  for (int i = 0; i < 100; ++i) rcu::retire_with<&custom_freed::release, F>(new custom_freed);
  this->scope_.quiescent();
  rcu::barrier<F>();
  EXPECT_EQ(custom_freed::freed.load(std::memory_order_relaxed), 100);
}

// An object whose destructor retires another: runs on liburcu's call_rcu
// thread, which liburcu registered itself. rcukit must not register it again.
template <class F>
struct parent_node : rcu::retirable {
  parent_node() { g_live.fetch_add(1, std::memory_order_relaxed); }
  ~parent_node() {
    rcu::retire<F>(new tracked(1));
    g_live.fetch_sub(1, std::memory_order_relaxed);
  }
};

TYPED_TEST(RcuTest, RetireFromCallbackThread) {
  using F = TypeParam;
  for (int i = 0; i < 200; ++i) rcu::retire<F>(new parent_node<F>);
  this->scope_.quiescent();
  rcu::barrier<F>();  // runs the parents, which queue children
  rcu::barrier<F>();  // runs the children
  EXPECT_EQ(g_live.load(std::memory_order_relaxed), 0);
}

// 1000 short-lived threads, at most 50 alive at once, each registering
// (automatically or explicitly), reading and retiring. A registration left
// behind would make the synchronize() below wait forever.
TYPED_TEST(RcuTest, ThousandShortLivedThreads) {
  using F = TypeParam;
  std::atomic<tracked*> slot{new tracked(0)};
  constexpr int kThreads = 1000;
  constexpr int kBatch = 50;
  std::atomic<int> reads{0};
  for (int base = 0; base < kThreads; base += kBatch) {
    std::vector<std::thread> batch;
    for (int t = base; t < base + kBatch; ++t) {
      batch.emplace_back([&, t] {
        test_thread_scope<F> scope;
        {
          rcu::read_guard<F> g;
          tracked* p = slot.load(std::memory_order_acquire);  // pairs with the exchange below
          if (p->value >= 0) reads.fetch_add(1, std::memory_order_relaxed);
        }
        // acq_rel: publishes the new object and acquires the old one to retire.
        tracked* old = slot.exchange(new tracked(t), std::memory_order_acq_rel);
        rcu::retire<F>(old);
        scope.quiescent();
      });
    }
    for (auto& th : batch) th.join();
  }
  EXPECT_EQ(reads.load(std::memory_order_relaxed), kThreads);
  this->scope_.quiescent();
  rcu::synchronize<F>();  // hangs if a dead thread's registration was leaked
  delete slot.load(std::memory_order_relaxed);
}

// A thread_local whose destructor runs after rcukit's exit-time
// unregistration still gets a working read side and retire().
template <class F>
struct late_user {
  bool armed = false;
  ~late_user() {
    if (!armed) return;
    rcu::read_guard<F> g;
    rcu::retire<F>(new tracked(3));
  }
};

TYPED_TEST(RcuTest, ThreadLocalDestructorAfterUnregistration) {
  using F = TypeParam;
  if constexpr (std::is_same_v<F, rcu::qsbr>) {
    GTEST_SUCCEED() << "qsbr registration is explicit; no exit-time path to test";
  } else {
    std::thread t([] {
      // Constructed before the first RCU use, so destroyed after rcukit's
      // exit-time unregisterer.
      static thread_local late_user<F> user;
      user.armed = true;
      rcu::read_guard<F> g;
    });
    t.join();
    rcu::barrier<F>();
    EXPECT_EQ(g_live.load(std::memory_order_relaxed), 0);
    rcu::synchronize<F>();  // the transient registration was dropped again
  }
}

// Readers and writers race for a bounded time; readers verify each object
// they reach is not destroyed while they hold the read side.
TYPED_TEST(RcuTest, ConcurrentReplaceAndRetire) {
  using F = TypeParam;
  std::atomic<tracked*> slot{new tracked(0)};
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0};
  std::atomic<long> seen{0};
  auto reader = [&] {
    test_thread_scope<F> scope;
    long n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      {
        rcu::read_guard<F> g;
        tracked* p = slot.load(std::memory_order_acquire);  // pairs with the writer's exchange
        if (p->destroyed_flag->load(std::memory_order_acquire)) bad.fetch_add(1, std::memory_order_relaxed);
        ++n;
      }
      scope.quiescent();
    }
    seen.fetch_add(n, std::memory_order_relaxed);
  };
  std::thread r1(reader);
  std::thread r2(reader);
  std::thread writer([&] {
    test_thread_scope<F> scope;
    int i = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      tracked* old = slot.exchange(new tracked(i++), std::memory_order_acq_rel);
      rcu::retire<F>(old);
      if (i % 64 == 0) {
        scope.quiescent();
        rcu::synchronize<F>();
      }
    }
    scope.quiescent();
  });
  {
    rcu::offline_scope<F> offline;  // qsbr: do not hold up the writer's grace periods
    std::this_thread::sleep_for(std::chrono::duration<double>(test_seconds()));
    stop.store(true, std::memory_order_relaxed);
    r1.join();
    r2.join();
    writer.join();
  }
  EXPECT_EQ(bad.load(std::memory_order_relaxed), 0);
  EXPECT_GT(seen.load(std::memory_order_relaxed), 0);
  this->scope_.quiescent();
  rcu::barrier<F>();
  delete slot.load(std::memory_order_relaxed);
}

// retire() whose box allocation fails, outside a read side, falls back to
// synchronize() + delete: it waits for a reader that holds the object and
// reclaims at once. For qsbr the caller (the fixture's registered thread) is
// online but outside any read_guard, which is not a read side.
TYPED_TEST(RcuTest, RetireOutOfMemoryOutsideReadSideWaitsThenDeletes) {
  using F = TypeParam;
  auto* obj = new boxed_tracked(42);
  auto flag = obj->destroyed_flag;
  std::atomic<boxed_tracked*> slot{obj};
  std::atomic<int> phase{0};  // 0 start, 1 reader holds obj
  std::atomic<bool> survived{false};
  std::thread reader([&] {
    test_thread_scope<F> scope;
    {
      rcu::read_guard<F> g;
      boxed_tracked* p = slot.load(std::memory_order_acquire);  // pairs with the construction
      phase.store(1, std::memory_order_release);
      std::this_thread::sleep_for(50ms);  // the writer's retire() must wait for this
      survived.store(!flag->load(std::memory_order_acquire) && p->value == 42, std::memory_order_relaxed);
    }
    scope.quiescent();
  });
  while (phase.load(std::memory_order_acquire) < 1) std::this_thread::yield();
  slot.store(nullptr, std::memory_order_release);
  t_fail_next_nothrow_new = true;
  rcu::retire<F>(obj);
  EXPECT_FALSE(t_fail_next_nothrow_new) << "the injected allocation failure was not reached";
  EXPECT_TRUE(flag->load(std::memory_order_acquire)) << "the fallback did not reclaim at once";
  reader.join();
  EXPECT_TRUE(survived.load(std::memory_order_relaxed)) << "reclaimed while a reader held it";
}

// rcukit reads liburcu's own per-thread registration flag (detail/urcu_abi.hpp
// mirrors its reader records); this checks the mirror against liburcu's own
// bookkeeping at run time, for the flavours that have the flag.
TYPED_TEST(RcuTest, RegisteredFlagFollowsLiburcu) {
  using F = TypeParam;
  if constexpr (!std::is_same_v<F, rcu::bp>) {
    std::thread([] {
      EXPECT_FALSE(F::registered()) << "a new thread counted as registered";
      F::register_thread();  // liburcu's own call, as a program would make it
      EXPECT_TRUE(F::registered());
      if constexpr (std::is_same_v<F, rcu::qsbr>) {
        EXPECT_TRUE(F::online());
      }
      F::unregister_thread();
      EXPECT_FALSE(F::registered());
      {
        rcu::thread_registration<F> reg;
        EXPECT_TRUE(F::registered());
      }
      EXPECT_FALSE(F::registered());
    }).join();
  }
}

// A program that registers a thread through liburcu's API and then uses
// rcukit on it (API.md: liburcu interop): rcukit must neither register it a
// second time (liburcu aborts) nor unregister it behind the program's back.
TYPED_TEST(RcuTest, RegistrationThroughLiburcuIsKept) {
  using F = TypeParam;
  std::thread([] {
    F::register_thread();
    {
      rcu::thread_registration<F> nested;  // nests with the program's registration
      rcu::read_guard<F> g;
    }
    for (int i = 0; i < 3; ++i) {
      rcu::read_guard<F> g;
      rcu::retire<F>(new plain);
    }
    if constexpr (std::is_same_v<F, rcu::qsbr>) rcu::quiescent_state<F>();
    if constexpr (!std::is_same_v<F, rcu::bp>) {
      EXPECT_TRUE(F::registered()) << "rcukit unregistered it";
    }
    F::unregister_thread();  // the program's own unregistration, exactly once
  }).join();
  // Registered by liburcu again after the program unregistered: rcukit
  // registers it itself on first use (memb, mb), and unregisters at exit.
  std::thread([] {
    if constexpr (!std::is_same_v<F, rcu::qsbr>) {
      F::register_thread();
      { rcu::read_guard<F> g; }
      F::unregister_thread();
      { rcu::read_guard<F> g; }
    }
  }).join();
}

// Misuse inside a read side aborts with the caller's file and line, for every
// flavour (qsbr included: liburcu would take the thread offline silently).
template <class F>
class RcuDeathTest : public RcuTest<F> {};
TYPED_TEST_SUITE(RcuDeathTest, Flavors, FlavorNames);

TYPED_TEST(RcuDeathTest, SynchronizeInsideReadSideAborts) {
  using F = TypeParam;
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // liburcu has threads running
  EXPECT_DEATH(
      {
        rcu::read_guard<F> g;
        rcu::synchronize<F>();
      },
      "synchronize\\(\\) called inside a read-side critical section \\(called from .*rcu_test\\.cpp:[0-9]+");
}

TYPED_TEST(RcuDeathTest, BarrierInsideReadSideAborts) {
  using F = TypeParam;
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        rcu::read_guard<F> outer;
        rcu::read_guard<F> nested;
        rcu::barrier<F>();
      },
      "barrier\\(\\) called inside a read-side critical section \\(called from .*rcu_test\\.cpp:[0-9]+");
}

TYPED_TEST(RcuDeathTest, RetireOutOfMemoryInsideReadSideAborts) {
  using F = TypeParam;
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        rcu::read_guard<F> g;
        auto* p = new boxed_tracked(1);
        t_fail_next_nothrow_new = true;
        rcu::retire<F>(p);
      },
      "retire\\(\\): out of memory inside a read side");
}

TEST(RcuQsbrDeathTest, QuiescentStateInsideReadSideAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        rcu::thread_registration<rcu::qsbr> reg;
        rcu::read_guard<rcu::qsbr> g;
        rcu::quiescent_state<rcu::qsbr>();
      },
      "quiescent_state\\(\\) called inside a read-side critical section \\(called from .*rcu_test\\.cpp");
}

// A qsbr read side on a thread that never registered, or that is offline,
// would protect nothing: it aborts naming the caller (API.md: misuse).
TEST(RcuQsbrDeathTest, ReadSideOnUnregisteredThreadAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH({ rcu::read_guard<rcu::qsbr> g; },
               "not registered or is offline.*\\(called from .*rcu_test\\.cpp:[0-9]+");
}

TEST(RcuQsbrDeathTest, ReadSideOnOfflineThreadAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        rcu::thread_registration<rcu::qsbr> reg;
        rcu::offline_scope<rcu::qsbr> off;
        rcu::read_guard<rcu::qsbr> g;
      },
      "not registered or is offline.*\\(called from .*rcu_test\\.cpp:[0-9]+");
}

}  // namespace
