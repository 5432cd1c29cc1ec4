// SPDX-License-Identifier: MIT
// ThreadSanitizer canary for rcu.hpp's annotations (built in the tsan preset
// only): `rcu_tsan_canary <mode> [memb|mb|bp|qsbr]`.
//
//   correct               four correct programs; TSan must stay silent, which
//                         shows the annotations order every read side that
//                         began before retire()/synchronize() before the
//                         free or the return: a reader still inside, a
//                         reader that already left, a reader thread that has
//                         exited, and a plain field written after
//                         synchronize() that an earlier reader read.
//   planted-bug           the writer deletes at once (no grace period).
//   late-reader           the writer unlinks the object from one slot but
//                         forgets a second link, and retires it; a reader
//                         that starts after retire() reaches it there.
//   retire-before-unlink  the writer retires the object before unlinking it;
//                         a reader that starts in between reaches it.
//   sync-late-reader      the writer assumes that after synchronize() no
//                         reader sees a still-published plain field, and
//                         writes it; a reader that started during the grace
//                         period reads it.
// Each bug mode must make TSan report (ctest requires the report; see also
// expect-report at the end, for scripts/canaries.sh). The last
// three are hidden by annotations that order every read side ending before
// the grace period ends (one clock per flavour): the late reader leaves its
// read side before the grace period ends.
//
// Threads hand off only through relaxed atomics and sleeps, so the only
// happens-before edges TSan can see are the ones rcu.hpp provides. A reader
// that began before the grace period ("blocker") holds it open until the
// late reader is done, so the free (or the write) comes after the late read.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>

#include "rcukit/rcu.hpp"

namespace {

namespace rcu = rcukit::rcu;
using namespace std::chrono_literals;

struct payload : rcu::retirable {
  long value = 42;
};

// qsbr needs explicit registration; the others register on first use.
template <class F>
struct registered {
  struct none {};
  [[no_unique_address]] std::conditional_t<std::is_same_v<F, rcu::qsbr>, rcu::thread_registration<F>, none> r;
  void quiescent() {
    if constexpr (std::is_same_v<F, rcu::qsbr>) rcu::quiescent_state<F>();
  }
};

// relaxed on purpose: a signal that creates no happens-before edge.
void wait_until(const std::atomic<int>& flag) {
  while (flag.load(std::memory_order_relaxed) == 0) std::this_thread::sleep_for(1ms);
}
void raise(std::atomic<int>& flag) { flag.store(1, std::memory_order_relaxed); }

// The waiting main thread must not hold up qsbr grace periods.
template <class F>
void wait_offline(const std::atomic<int>& flag) {
  rcu::offline_scope<F> off;
  wait_until(flag);
}

// --- correct programs ------------------------------------------------------

// A reader still inside its read side when the object is retired.
template <class F>
void reader_inside() {
  std::atomic<payload*> slot{new payload};
  std::atomic<int> has_read{0};
  long observed = 0;
  std::thread reader([&] {
    [[maybe_unused]] registered<F> reg;
    {
      rcu::read_guard<F> g;
      observed = slot.load(std::memory_order_acquire)->value;  // acquire: pairs with the construction
      raise(has_read);
      std::this_thread::sleep_for(200ms);
    }
    reg.quiescent();
  });
  wait_offline<F>(has_read);
  rcu::retire<F>(slot.exchange(new payload, std::memory_order_acq_rel));
  {
    rcu::offline_scope<F> off;
    reader.join();
  }
  rcu::barrier<F>();
  delete slot.load(std::memory_order_relaxed);
  if (observed != 42) std::printf("unexpected value %ld\n", observed);
}

// A reader that read the object and left its read side before retire(); its
// thread is still alive (and idle) when the object is freed.
template <class F>
void reader_left() {
  std::atomic<payload*> slot{new payload};
  std::atomic<int> has_read{0}, freed{0};
  long observed = 0;
  std::thread reader([&] {
    [[maybe_unused]] registered<F> reg;
    {
      rcu::read_guard<F> g;
      observed = slot.load(std::memory_order_acquire)->value;  // acquire: pairs with the construction
    }
    raise(has_read);
    rcu::offline_scope<F> off;
    wait_until(freed);
  });
  wait_offline<F>(has_read);
  rcu::retire<F>(slot.exchange(new payload, std::memory_order_acq_rel));
  rcu::barrier<F>();
  raise(freed);
  {
    rcu::offline_scope<F> off;
    reader.join();
  }
  delete slot.load(std::memory_order_relaxed);
  if (observed != 42) std::printf("unexpected value %ld\n", observed);
}

// A reader thread that read the object and exited (not yet joined) before
// retire().
template <class F>
void reader_exited() {
  std::atomic<payload*> slot{new payload};
  std::atomic<int> finished{0};
  long observed = 0;
  std::thread reader([&] {
    {
      [[maybe_unused]] registered<F> reg;
      rcu::read_guard<F> g;
      observed = slot.load(std::memory_order_acquire)->value;  // acquire: pairs with the construction
    }
    raise(finished);
  });
  wait_offline<F>(finished);
  std::this_thread::sleep_for(50ms);  // let the thread run its exit-time destructors
  rcu::retire<F>(slot.exchange(new payload, std::memory_order_acq_rel));
  rcu::barrier<F>();
  {
    rcu::offline_scope<F> off;
    reader.join();
  }
  delete slot.load(std::memory_order_relaxed);
  if (observed != 42) std::printf("unexpected value %ld\n", observed);
}

// A plain field read by a reader that began before synchronize(), written
// after it returns.
template <class F>
void write_after_synchronize() {
  long field = 1;
  std::atomic<int> has_read{0};
  long observed = 0;
  std::thread reader([&] {
    [[maybe_unused]] registered<F> reg;
    {
      rcu::read_guard<F> g;
      observed = field;
      raise(has_read);
      std::this_thread::sleep_for(100ms);
    }
    reg.quiescent();
  });
  wait_offline<F>(has_read);
  rcu::synchronize<F>();
  field = 2;  // every reader that could see the old value has finished
  rcu::offline_scope<F> off;
  reader.join();
  if (observed != 1) std::printf("unexpected value %ld\n", observed);
}

// --- planted bugs ------------------------------------------------------------

// No grace period at all.
template <class F>
void planted_bug() {
  std::atomic<payload*> slot{new payload};
  std::atomic<int> has_read{0};
  long observed = 0;
  std::thread reader([&] {
    [[maybe_unused]] registered<F> reg;
    {
      rcu::read_guard<F> g;
      observed = slot.load(std::memory_order_acquire)->value;  // the read a bad free races with
      raise(has_read);
      std::this_thread::sleep_for(200ms);
    }
    reg.quiescent();
  });
  wait_offline<F>(has_read);
  delete slot.exchange(new payload, std::memory_order_acq_rel);  // BUG on purpose
  {
    rcu::offline_scope<F> off;
    reader.join();
  }
  rcu::barrier<F>();
  delete slot.load(std::memory_order_relaxed);
  std::printf("observed %ld\n", observed);
}

// A reader thread that already read before the grace period (so its
// per-thread state predates it) and starts a new read side afterwards.
template <class F, class Read>
std::thread late_thread(std::atomic<int>& ready, const std::atomic<int>& go, std::chrono::milliseconds delay,
                        std::atomic<int>& done, Read read) {
  return std::thread([&ready, &go, delay, &done, read] {
    [[maybe_unused]] registered<F> reg;
    {
      rcu::read_guard<F> g;  // an earlier, harmless read side
    }
    reg.quiescent();
    raise(ready);
    wait_offline<F>(go);
    std::this_thread::sleep_for(delay);
    {
      rcu::read_guard<F> g;
      read();  // the late read
    }
    reg.quiescent();
    raise(done);
  });
}

// A reader that starts after retire() reaches the object: through a second
// link (late-reader) or because retire() came before the unlink
// (retire-before-unlink). A blocker that began earlier holds the grace
// period open until the late reader has left its read side.
template <class F>
void late_reader(bool retire_first) {
  auto* obj = new payload;
  std::atomic<payload*> slot_a{obj};
  std::atomic<payload*> slot_b{retire_first ? nullptr : obj};  // late-reader: the forgotten link
  std::atomic<int> blocker_in{0}, late_ready{0}, retired{0}, late_done{0};
  long observed = 0;
  std::thread blocker([&] {
    [[maybe_unused]] registered<F> reg;
    {
      rcu::read_guard<F> g;
      raise(blocker_in);
      wait_until(late_done);
    }
    reg.quiescent();
  });
  std::thread late = late_thread<F>(late_ready, retired, 0ms, late_done, [&] {
    payload* p = (retire_first ? slot_a : slot_b).load(std::memory_order_acquire);
    observed = p->value;  // the read the free races with
  });
  wait_offline<F>(blocker_in);
  wait_offline<F>(late_ready);
  if (retire_first) {
    rcu::retire<F>(obj);  // BUG on purpose: still reachable through slot_a
  } else {
    slot_a.store(new payload, std::memory_order_release);  // unlinked here, but slot_b still links it
    rcu::retire<F>(obj);                                   // BUG on purpose
  }
  raise(retired);
  // Not joined yet: a join would order the late read before the writer's
  // next quiescent state, which (qsbr) rightly orders it before the free.
  wait_offline<F>(late_done);
  if (retire_first) slot_a.store(new payload, std::memory_order_release);  // the late unlink
  rcu::barrier<F>();  // the blocker leaves, the grace period ends, obj is freed
  {
    rcu::offline_scope<F> off;
    late.join();
    blocker.join();
  }
  delete slot_a.load(std::memory_order_relaxed);
  std::printf("observed %ld\n", observed);
}

// A reader that starts while synchronize() waits reads a plain field the
// writer then writes, believing synchronize() fenced off every reader.
template <class F>
void sync_late_reader() {
  long field = 1;
  std::atomic<int> blocker_in{0}, late_ready{0}, syncing{0}, late_done{0};
  long observed = 0;
  std::thread blocker([&] {
    [[maybe_unused]] registered<F> reg;
    {
      rcu::read_guard<F> g;
      raise(blocker_in);
      wait_until(late_done);
    }
    reg.quiescent();
  });
  // 50 ms: synchronize() has started its grace period before the late read side.
  std::thread late = late_thread<F>(late_ready, syncing, 50ms, late_done, [&] {
    observed = field;  // the read the write races with
  });
  wait_offline<F>(blocker_in);
  wait_offline<F>(late_ready);
  raise(syncing);
  rcu::synchronize<F>();
  field = 2;  // BUG on purpose: the late reader was not fenced off
  {
    rcu::offline_scope<F> off;
    late.join();
    blocker.join();
  }
  std::printf("observed %ld\n", observed);
}

template <class F>
int run(const std::string& mode) {
  [[maybe_unused]] registered<F> reg;  // the main thread writes; for qsbr it is registered
  if (mode == "correct") {
    reader_inside<F>();
    reader_left<F>();
    reader_exited<F>();
    write_after_synchronize<F>();
  } else if (mode == "planted-bug") {
    planted_bug<F>();
  } else if (mode == "late-reader") {
    late_reader<F>(false);
  } else if (mode == "retire-before-unlink") {
    late_reader<F>(true);
  } else if (mode == "sync-late-reader") {
    sync_late_reader<F>();
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::printf("%s mode (%s) finished\n", mode.c_str(), F::name);
  return 0;
}

bool g_expect_report = false;

int run_flavor(const std::string& mode, const std::string& flavor) {
  if (flavor == "memb") return run<rcu::memb>(mode);
  if (flavor == "mb") return run<rcu::mb>(mode);
  if (flavor == "bp") return run<rcu::bp>(mode);
  if (flavor == "qsbr") return run<rcu::qsbr>(mode);
  std::fprintf(stderr, "unknown flavour %s\n", flavor.c_str());
  return 2;
}

}  // namespace

// TSan calls this after printing a report (and before halt_on_error stops
// the process).
extern "C" void __tsan_on_report(const void* /*report*/) {
  if (g_expect_report) {
    std::printf("expect-report: ThreadSanitizer reported, as required\n");
    std::fflush(stdout);
    std::_Exit(0);
  }
}

// `rcu_tsan_canary expect-report <mode> [flavour]` (for scripts/canaries.sh,
// which counts a failing binary as a catch) inverts the outcome: exit 0 when
// TSan reports, 1 when the bug mode ran to the end unreported, so a planted
// regression that makes the annotations hide a bug makes this binary fail.
int main(int argc, char** argv) {
  int arg = 1;
  if (argc > arg && std::strcmp(argv[arg], "expect-report") == 0) {
    g_expect_report = true;
    ++arg;
  }
  const std::string mode = argc > arg ? argv[arg] : "correct";
  const std::string flavor = argc > arg + 1 ? argv[arg + 1] : "memb";
  const int rc = run_flavor(mode, flavor);
  if (g_expect_report && rc == 0) {
    std::printf("expect-report: %s (%s) ran to the end without a ThreadSanitizer report\n", mode.c_str(),
                flavor.c_str());
    return 1;
  }
  return rc;
}
