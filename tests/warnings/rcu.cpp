// SPDX-License-Identifier: MIT
// Every public function of <rcukit/rcu.hpp>, for every flavour.
#include <rcukit/rcu.hpp>

#include <atomic>
#include <thread>

#include "check.hpp"

namespace {

struct node : rcukit::rcu::retirable {
  int value = 0;
};
std::atomic<int> reclaimed{0};
void reclaim(node* n) {
  reclaimed.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after barrier()
  delete n;
}

template <class F>
void exercise() {
  rcukit::rcu::thread_registration<F> reg;
  std::atomic<node*> slot{new node};
  {
    rcukit::rcu::read_guard<F> g;
    rcukit::rcu::read_guard<F> nested;
    WARN_CHECK(slot.load(std::memory_order_acquire)->value == 0);  // acquire: pairs with the exchange below
    (void)g.id();
  }
  node* old = slot.exchange(new node, std::memory_order_acq_rel);
  rcukit::rcu::retire<F>(old);
  rcukit::rcu::retire<F>(new int(3));  // not retirable: boxed
  rcukit::rcu::retire_with<&reclaim, F>(slot.exchange(nullptr, std::memory_order_acq_rel));
  if constexpr (std::is_same_v<F, rcukit::rcu::qsbr>) {
    rcukit::rcu::quiescent_state<F>();
    rcukit::rcu::offline_scope<F> off;
    rcukit::rcu::synchronize<F>();
  } else {
    rcukit::rcu::offline_scope<F> off;  // nothing for these flavours
    rcukit::rcu::synchronize<F>();
  }
  rcukit::rcu::barrier<F>();
}

}  // namespace

int main() {
  exercise<rcukit::rcu::memb>();
  exercise<rcukit::rcu::mb>();
  exercise<rcukit::rcu::bp>();
  exercise<rcukit::rcu::qsbr>();
  std::thread([] { exercise<rcukit::rcu::default_flavor>(); }).join();
  WARN_CHECK(reclaimed.load(std::memory_order_relaxed) == 5);
  return 0;
}
