// SPDX-License-Identifier: MIT
// A program outside the rcukit tree, built as a user builds one: through
// find_package(rcukit), add_subdirectory, or pkg-config, with
// -Wall -Wextra -Werror. Several threads share an extent index and a Judy
// array while another publishes a configuration through rcu::retire.
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include <rcukit/rcukit.hpp>

static_assert(RCUKIT_VERSION >= 200, "this consumer needs rcukit 0.2");

namespace {

struct config : rcukit::rcu::retirable {
  int generation = 0;
};
std::atomic<config*> current{new config};

int fail(const char* what) {
  std::fprintf(stderr, "consumer: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  rcukit::extent_skiplist<int> extents;
  rcukit::judy_array<int> owners;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        const uint64_t start = static_cast<uint64_t>(t * 1000 + i) * 16;
        if (extents.insert({start, 8}, t).ok()) owners.insert_or_assign(start, t);
        rcukit::rcu::read_guard<> g;
        const config* c = current.load(std::memory_order_acquire);  // pairs with the exchange below
        (void)c->generation;
      }
    });
  }
  for (int gen = 1; gen <= 100; ++gen) {
    auto* next = new config;
    next->generation = gen;
    rcukit::rcu::retire(current.exchange(next, std::memory_order_acq_rel));
  }
  for (auto& th : threads) th.join();
  if (extents.size() != 4000 || owners.size() != 4000) return fail("lost an insert");
  if (extents.lookup(16 * 2500 + 3)->value != 2) return fail("wrong owner");
  rcukit::rcu::retire(current.exchange(nullptr, std::memory_order_acq_rel));
  rcukit::rcu::barrier();
  std::printf("consumer: ok (rcukit %s)\n", RCUKIT_VERSION_STRING);
  return 0;
}
