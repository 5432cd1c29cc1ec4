// ThreadSanitizer canary for rcu.hpp's annotations (built in the tsan preset
// only). The same reader/writer scenario runs in two modes:
//   correct      the writer retires the old object: TSan must stay silent,
//                which shows that the annotations make grace periods visible;
//   planted-bug  the writer deletes it at once (a missing grace period):
//                TSan must report, which shows the annotations do not hide
//                real bugs. ctest runs this mode with WILL_FAIL.
// The reader and writer hand off only through relaxed atomics and sleeps, so
// the only happens-before edge TSan can see is the one rcu.hpp provides.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "rcukit/rcu.hpp"

namespace rcu = rcukit::rcu;

struct payload : rcu::retirable {
  long value = 42;
};

int main(int argc, char** argv) {
  const bool planted_bug = argc > 1 && std::strcmp(argv[1], "planted-bug") == 0;
  std::atomic<payload*> slot{new payload};
  // relaxed on purpose: a signal that creates no happens-before edge.
  std::atomic<int> reader_has_read{0};
  long observed = 0;

  std::thread reader([&] {
    rcu::read_guard<> g;
    payload* p = slot.load(std::memory_order_acquire);  // pairs with the initial construction
    observed = p->value;                                // the read a bad free would race with
    reader_has_read.store(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  });

  while (reader_has_read.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  payload* old = slot.exchange(new payload, std::memory_order_acq_rel);
  if (planted_bug) {
    delete old;  // BUG on purpose: the reader may still be inside its read side
  } else {
    rcu::retire(old);
  }
  reader.join();
  rcu::barrier();
  delete slot.load(std::memory_order_relaxed);
  std::printf("%s mode finished (observed %ld)\n", planted_bug ? "planted-bug" : "correct", observed);
  return 0;
}
