// SPDX-License-Identifier: MIT
// rcukit/detail/seqcount.hpp -- a fence-free sequence counter.
//
// The idea (Lameter's seqcount, as in the kernel's seqcount_t): a writer that
// already holds a lock makes the counter odd, changes the protected fields,
// and makes it even again; a reader samples the counter, reads the fields,
// and retries if the counter was odd or changed.
//
// The C++ memory-model subtlety (Boehm, "Can seqlocks get along with
// programming language memory models?", MSPC 2012): the protected fields must
// be atomics (a plain field read while a writer stores is a data race, UB,
// and a TSan report), and the reader's final counter load must not move up
// past its data loads. The textbook answer is relaxed data plus
// atomic_thread_fence, which ThreadSanitizer does not model. This version
// needs no fence:
//   * writers store every protected field with memory_order_release, so the
//     odd counter store made before them happens-before any reader that
//     observes one of the new values;
//   * readers load every protected field with memory_order_acquire, so the
//     final counter load cannot be satisfied before them, and if a reader saw
//     any new value it also sees the odd (or a later) counter and retries.
// On x86-64 both are plain MOVs; on AArch64 they are LDAR/STLR.
//
// Invariants: (1) only one writer at a time (the caller holds a lock);
// (2) every protected field is an atomic stored with release and loaded with
// acquire; (3) the counter is even exactly when no write section is open.
// Not supported: writers without external mutual exclusion.
#pragma once

#include <atomic>
#include <cstdint>

#include "rcukit/detail/backoff.hpp"

namespace rcukit::detail {

class seqcount {
 public:
  // Reader: waits (detail/backoff.hpp) while a write section is open,
  // returns the even value to hand to retry(). Lock-free, not wait-free.
  uint64_t read_begin() const noexcept {
    backoff b;
    for (;;) {
      // acquire: pairs with the release store in write_end(); the writer's
      // field stores before it are visible to our field loads.
      const uint64_t s = seq_.load(std::memory_order_acquire);
      if ((s & 1) == 0) return s;
      b.pause();
    }
  }
  // True when the fields read since read_begin(s) may be torn. relaxed: the
  // caller's acquire field loads already keep this load after them (see above).
  bool retry(uint64_t s) const noexcept { return seq_.load(std::memory_order_relaxed) != s; }
  // Current value (acquire: pairs with write_end), for multi-object validation.
  uint64_t current() const noexcept { return seq_.load(std::memory_order_acquire); }

  // Writer (holding the object's lock). relaxed: the release stores of the
  // protected fields that follow order this store before them (invariant 2).
  void write_begin() noexcept {
    seq_.store(seq_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // release: pairs with the acquire load in read_begin()/current().
  void write_end() noexcept {
    seq_.store(seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

 private:
  std::atomic<uint64_t> seq_{0};
};

}  // namespace rcukit::detail
