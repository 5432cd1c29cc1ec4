// SPDX-License-Identifier: MIT
// src/executor_threads.cpp -- the ordered executor's worker threads: how
// one is created, pinned to its CPU (src/cpu_topology.cpp) and started in
// the loop the facade handed over (detail/executor_worker.hpp), and how it
// is stopped. The tags (W4, ...) are in detail/executor_core.hpp.
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/cpu_affinity.hpp"
#include "rcukit/detail/executor_core.hpp"

namespace rcukit::detail {

absl::StatusOr<std::unique_ptr<executor_worker>> executor_core::make_worker(int cpu) {
  auto w = std::make_unique<executor_worker>();
  w->core = this;
  w->cpu = cpu;
  executor_worker* raw = w.get();
  try {
    raw->thread = std::thread([raw] {
      const int rc = pin_this_thread(raw->cpu);
      {
        std::lock_guard<std::mutex> g(raw->mu);
        raw->pin_rc = rc;
        raw->pinned = true;
      }
      raw->cv.notify_all();
      if (rc != 0) return;
      tls_worker = raw;
      raw->core->loop_(*raw);
    });
  } catch (const std::system_error& e) {
    return absl::InternalError(std::string("ordered_executor: cannot create a worker thread: ") + e.what());
  }
  int rc;
  {
    std::unique_lock<std::mutex> l(raw->mu);
    raw->cv.wait(l, [&] { return raw->pinned; });
    rc = raw->pin_rc;
  }
  if (rc != 0) {
    raw->thread.join();
    return absl::InvalidArgumentError("ordered_executor: cannot pin a thread to CPU " + std::to_string(cpu));
  }
  return w;
}

void executor_core::stop_worker(executor_worker& w) {
  w.quit.store(true, std::memory_order_seq_cst);  // (W4)
  rouse(w);
  w.thread.join();
}

}  // namespace rcukit::detail
