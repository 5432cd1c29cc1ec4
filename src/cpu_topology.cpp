// SPDX-License-Identifier: MIT
// src/cpu_topology.cpp -- which CPUs the process may use, and pinning a
// thread to one of them: the only code in rcukit that talks to the kernel's
// affinity calls (cpu_set.hpp, detail/cpu_affinity.hpp).
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "rcukit/cpu_set.hpp"
#include "rcukit/detail/cpu_affinity.hpp"

namespace rcukit {

namespace {
void insert_all(const cpu_set_t& m, cpu_set& out) {
  for (int i = 0; i < CPU_SETSIZE; ++i) {
    if (CPU_ISSET(i, &m)) out.insert(i);
  }
}
}  // namespace

cpu_set cpu_set::all() {
  cpu_set out;
  cpu_set_t m;
  CPU_ZERO(&m);
  if (pthread_getaffinity_np(pthread_self(), sizeof m, &m) == 0) insert_all(m, out);
  CPU_ZERO(&m);
  if (sched_getaffinity(getpid(), sizeof m, &m) == 0) insert_all(m, out);
  return out;
}

int detail::pin_this_thread(int cpu) noexcept {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
  cpu_set_t m;
  CPU_ZERO(&m);
  CPU_SET(cpu, &m);
  return pthread_setaffinity_np(pthread_self(), sizeof m, &m);
}

}  // namespace rcukit
