// SPDX-License-Identifier: MIT
// rcukit/detail/cpu_affinity.hpp -- pinning a thread to one CPU. Compiled
// once, with cpu_set::all(), in src/cpu_topology.cpp (rcukit::runtime), so
// no header pulls in <sched.h> and <pthread.h>.
#pragma once

namespace rcukit::detail {

// Pins the calling thread to `cpu`: 0 on success, else an errno value
// (EINVAL for a CPU the process may not use or the kernel cannot name).
// Blocking (one system call).
int pin_this_thread(int cpu) noexcept;

}  // namespace rcukit::detail
