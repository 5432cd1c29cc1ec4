// SPDX-License-Identifier: MIT
// hello_rcu: the smallest useful RCU program. Readers look at a shared
// configuration without locks; a writer publishes a new version and retires
// the old one, which is deleted only after every reader that could see it
// has left its read side.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "rcukit/rcu.hpp"

namespace rcu = rcukit::rcu;

struct config : rcu::retirable {  // retirable: retire() needs no allocation
  int version;
  std::string greeting;
};

int main() {
  std::atomic<config*> current{new config{{}, 1, "hello, RCU"}};
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};

  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        rcu::read_guard<> g;  // registers this thread on first use
        // acquire: pairs with the writer's release exchange, so the fields
        // of the config it published are visible here.
        const config* c = current.load(std::memory_order_acquire);
        if (c->greeting.empty()) std::abort();
        ++n;
      }
      reads.fetch_add(n, std::memory_order_relaxed);
    });
  }

  for (int v = 2; v <= 100; ++v) {
    auto* next = new config{{}, v, "hello, RCU v" + std::to_string(v)};
    config* old = current.exchange(next, std::memory_order_acq_rel);
    rcu::retire(old);  // freed after a grace period
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : readers) t.join();

  const config* last = current.load(std::memory_order_relaxed);
  std::printf("%s (version %d); readers made %ld lock-free reads\n", last->greeting.c_str(), last->version,
              reads.load(std::memory_order_relaxed));
  delete last;
  rcu::barrier();  // every retired config has been deleted
  return 0;
}
