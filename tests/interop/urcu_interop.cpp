// SPDX-License-Identifier: MIT
// A program that uses liburcu's own API beside rcukit (API.md, "Common
// rules"): it includes a liburcu flavour header before or after rcukit's
// umbrella header (RCUKIT_URCU_FIRST, set per target in CMakeLists.txt),
// registers its threads and reads, publishes and reclaims through liburcu's
// documented calls, while rcukit structures are used from the same threads.
// Built twice, once per include order, for the memb flavour (<urcu.h>) and
// the qsbr flavour (<urcu-qsbr.h>, RCUKIT_URCU_QSBR). Exits non-zero with a
// message if a result is wrong; failing to compile is the other failure.
#if defined(RCUKIT_URCU_QSBR)
#define RCUKIT_URCU_HEADER <urcu-qsbr.h>
#else
#define RCUKIT_URCU_HEADER <urcu.h>
#endif

#if RCUKIT_URCU_FIRST
#include RCUKIT_URCU_HEADER
#include <rcukit/rcukit.hpp>
#else
#include <rcukit/rcukit.hpp>
// rcukit's headers leave liburcu's names alone: none of its macros, none of
// its include guards (so the header below still defines its whole API).
#if defined(rcu_read_lock) || defined(call_rcu) || defined(synchronize_rcu) || defined(_URCU_H) || \
    defined(_URCU_QSBR_H) || defined(_URCU_CALL_RCU_H) || defined(caa_likely)
#error "an rcukit header leaked liburcu's macros or include guards"
#endif
#include RCUKIT_URCU_HEADER
#endif

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

#if defined(RCUKIT_URCU_QSBR)
using flavor = rcukit::rcu::qsbr;
#else
using flavor = rcukit::rcu::memb;
#endif

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "urcu_interop: %s\n", what);
    std::exit(1);
  }
}

// Published through liburcu's API and reclaimed through liburcu's call_rcu.
struct config {
  struct rcu_head head;
  int version;
};
config* current = nullptr;
std::atomic<int> freed{0};

config* make_config(int version) {
  auto* c = new config;
  c->version = version;
  return c;
}

void free_config(struct rcu_head* h) {
  delete caa_container_of(h, config, head);
  freed.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after rcu_barrier()
}

void run() {
  constexpr int kThreads = 4;
  constexpr int kUpdates = 200;
  rcukit::extent_skiplist<int, flavor> extents;
  rcukit::judy_array<int, flavor> judy;

  rcu_assign_pointer(current, make_config(0));

  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      rcu_register_thread();  // liburcu's registration serves rcukit's read sides too
      int last = 0;
      for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {  // relaxed: a flag, no data
        rcu_read_lock();
        const config* c = rcu_dereference(current);
        check(c->version >= last, "a reader saw versions go backwards");
        last = c->version;
        rcu_read_unlock();
        const uint64_t key = static_cast<uint64_t>(t) * 1000000 + static_cast<uint64_t>(i % 1000);
        if (!extents.lookup(key)) check(extents.insert({key, 1}, t).ok(), "skiplist insert failed");
        judy.insert_or_assign(key, t);
        check(judy.find(key).value_or(-1) == t, "judy lost a key");
#if defined(RCUKIT_URCU_QSBR)
        rcu_quiescent_state();
#endif
      }
      rcu_unregister_thread();
    });
  }
  for (int v = 1; v <= kUpdates; ++v) {
    config* old = rcu_xchg_pointer(&current, make_config(v));
    if (v % 2 == 0) {
      call_rcu(&old->head, free_config);
    } else {
#if defined(RCUKIT_URCU_QSBR)
      rcu_thread_offline();
      synchronize_rcu();
      rcu_thread_online();
#else
      synchronize_rcu();
#endif
      delete old;
      freed.fetch_add(1, std::memory_order_relaxed);
    }
  }
  stop.store(true, std::memory_order_relaxed);
  {
#if defined(RCUKIT_URCU_QSBR)
    rcu_thread_offline();  // joining blocks: let grace periods proceed
#endif
    for (auto& th : threads) th.join();
#if defined(RCUKIT_URCU_QSBR)
    rcu_thread_online();
#endif
  }
  rcu_barrier();  // qsbr: liburcu takes an online caller offline while it waits
  check(freed.load(std::memory_order_relaxed) == kUpdates, "call_rcu callbacks lost");
  delete current;
  check(extents.size() == judy.size(), "skiplist and judy disagree");
  check(extents.check_invariants().ok(), "skiplist invariants");
  extents.clear();
  rcukit::rcu::barrier<flavor>();
}

}  // namespace

int main() {
  rcu_register_thread();
  run();
  rcu_unregister_thread();
  std::puts("urcu_interop: ok");
  return 0;
}
