// SPDX-License-Identifier: MIT
// rcukit/detail/rcu_tsan.hpp -- grace periods shown to ThreadSanitizer edge by
// edge (invariant 5 of rcu.hpp). Included by rcu.hpp; every function here is
// an empty inline unless the translation unit is built with
// -fsanitize=thread, so it costs nothing in other builds.
//
// The idea. liburcu 0.13 tells TSan nothing, so rcu.hpp must say which
// accesses a grace period orders before a free. The rule is RCU's own: a
// grace period that starts after retire(p) (or inside synchronize()) orders
// before its end every read side that BEGAN before that point, including
// those that already ended; a read side that begins later is ordered by
// nothing, so if it can still reach p (retire before unlink, a forgotten
// link) its access and the free must show up as a race. A single clock
// released by every read-side exit and acquired by every callback cannot
// express that: read sides that began after retire() also released it.
//
// The mechanism: per-thread "cells". A cell is a small heap object whose
// address is a TSan sync object. Each thread (per flavour) owns one current
// cell; every read side it enters uses the current cell and releases into it
// when it ends (qsbr: a "read side" is the online interval between two
// quiescent states). A grace-period start (retire() or synchronize())
// *captures* the current cell of every registered thread: it marks it and
// keeps a reference. A thread whose current cell was captured switches to a
// fresh cell before its next read side, so a captured cell only ever
// receives read sides that began before the capture. The callback (or
// synchronize(), after waiting) acquires exactly the cells it captured.
// Because a thread's clock only grows, its current cell, released at the end
// of its latest read side, covers all its earlier read sides too.
//
// Invariants:
//  (1) A captured cell is never released into by a read side that began
//      after the capture (the owner switches first).
//  (2) A cell lives while its owner uses it or a capture holds it
//      (refcount under the registry mutex); freeing it deletes the TSan sync
//      object at its address, so a reused address starts empty.
//  (3) Threads that exit fold their last cell into one "exited" cell: the
//      exiting thread acquires the previous exited cell (if already
//      captured) and releases into a new one, so captures of the old one
//      stay exact. Cost: the exiting thread's last moments (and a joiner)
//      are ordered after earlier exited threads' read sides.
//  (4) The bookkeeping itself (a mutex, a list, a map) is hidden from TSan
//      (ignore-sync and ignore-accesses regions): its locking must not
//      order threads, or it would reintroduce the coarse edges.
//
// Not modelled: barrier() keeps one clock released after every callback and
// acquired by barrier(), which only orders frees before barrier()'s return.
#pragma once

#ifndef RCUKIT_TSAN_ENABLED
#error "include <rcukit/rcu.hpp>, which decides RCUKIT_TSAN_ENABLED, not this file"
#endif

#if RCUKIT_TSAN_ENABLED
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
void AnnotateIgnoreSyncBegin(const char* file, int line);
void AnnotateIgnoreSyncEnd(const char* file, int line);
}
#endif

namespace rcukit::rcu::detail::tsan {

inline constexpr bool enabled = RCUKIT_TSAN_ENABLED != 0;

#if RCUKIT_TSAN_ENABLED

struct cell {
  // Set under the registry mutex by a capture; read by the owner without it
  // at read-side entry. relaxed: a TSan-only hint that must create no edge.
  // A stale `false` lets a read side that began as the capture happened use
  // the captured cell: it then counts as begun before the grace period,
  // which the real grace period (started after the capture) also honours.
  std::atomic<bool> captured{false};
  unsigned refs = 1;  // under the registry mutex: the owner's hold plus captures
};

struct record {  // one per thread and flavour
  record* prev = nullptr;
  record* next = nullptr;
  cell* current = nullptr;  // written by the owner under the mutex, read by captures
};

struct registry {
  std::mutex mu;
  record* live = nullptr;
  cell* exited = nullptr;  // read sides of threads that have exited (invariant 3)
  std::unordered_map<const void*, std::vector<cell*>> pending;  // retire() captures, by rcu_head
};

// Invariant 4: no sync edge and no access is recorded while one is alive.
class hidden {
 public:
  hidden() noexcept {
    AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
    __tsan_ignore_thread_begin();
  }
  ~hidden() {
    __tsan_ignore_thread_end();
    AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  }
  hidden(const hidden&) = delete;
  hidden& operator=(const hidden&) = delete;
};

// Explicit edges taken while `hidden` is alive.
inline void visible_release(cell* c) noexcept {
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  __tsan_release(c);
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
}
inline void visible_acquire(cell* c) noexcept {
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  __tsan_acquire(c);
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
}

// Never destroyed: callbacks may run while static destructors do. Call only
// inside `hidden` (its guard variable would otherwise order every caller
// after the first).
template <class F>
registry& registry_of() {
  static registry* r = new registry;
  return *r;
}

inline void unref(cell* c) {
  if (--c->refs == 0) delete c;
}

inline void capture_into(registry& r, std::vector<cell*>& out) {
  for (record* t = r.live; t != nullptr; t = t->next) {
    if (t->current == nullptr) continue;
    t->current->captured.store(true, std::memory_order_relaxed);  // relaxed: see cell::captured
    ++t->current->refs;
    out.push_back(t->current);
  }
  if (r.exited != nullptr) {
    r.exited->captured.store(true, std::memory_order_relaxed);
    ++r.exited->refs;
    out.push_back(r.exited);
  }
}

// Per-thread state: trivially destructible, so it stays readable while other
// thread_local destructors run (rcu.hpp invariant 3).
struct thread_data {
  record* rec = nullptr;
  unsigned depth = 0;   // read_guard nesting (memb, mb, bp)
  bool exited = false;  // the owner below has run: records are now per read side
};
template <class F>
inline thread_local constinit thread_data tls{};

template <class F>
void leave(record* t) {
  hidden h;
  registry& r = registry_of<F>();
  std::lock_guard lock(r.mu);
  if (t->prev != nullptr) t->prev->next = t->next;
  if (t->next != nullptr) t->next->prev = t->prev;
  if (r.live == t) r.live = t->next;
  if (t->current != nullptr) {
    if (r.exited == nullptr || r.exited->captured.load(std::memory_order_relaxed)) {
      cell* fresh = new cell;
      if (r.exited != nullptr) {
        visible_acquire(r.exited);  // invariant 3: the new exited cell covers the old one
        unref(r.exited);
      }
      r.exited = fresh;
    }
    visible_release(r.exited);
    unref(t->current);
  }
  delete t;
}

// Leaves the registry at thread exit.
template <class F>
struct owner {
  ~owner() {
    thread_data& d = tls<F>;
    if (d.rec != nullptr) leave<F>(d.rec);
    d.rec = nullptr;
    d.exited = true;
  }
};

template <class F>
record* my_record() {
  thread_data& d = tls<F>;
  if (d.rec != nullptr) [[likely]] {
    return d.rec;
  }
  {
    hidden h;
    registry& r = registry_of<F>();
    std::lock_guard lock(r.mu);
    d.rec = new record;
    d.rec->next = r.live;
    if (r.live != nullptr) r.live->prev = d.rec;
    r.live = d.rec;
  }
  if (!d.exited) {
    static thread_local owner<F> o;
    (void)o;
  }
  return d.rec;
}

// A read side (qsbr: an online interval) begins on this thread.
template <class F>
void begin() noexcept {
  record* t = my_record<F>();
  cell* c = t->current;
  if (c != nullptr && !c->captured.load(std::memory_order_relaxed)) [[likely]] {
    return;  // relaxed: see cell::captured
  }
  hidden h;
  registry& r = registry_of<F>();
  std::lock_guard lock(r.mu);
  t->current = new cell;  // invariant 1
  if (c != nullptr) unref(c);
}

// The read side begun by begin() ends: everything this thread did so far is
// ordered before any grace period that captured its current cell.
template <class F>
void end() noexcept {
  thread_data& d = tls<F>;
  if (d.rec == nullptr || d.rec->current == nullptr) return;
  __tsan_release(d.rec->current);
  if (d.exited) {  // a read side after thread-exit cleanup: fold it in now
    leave<F>(d.rec);
    d.rec = nullptr;
  }
}

// Outermost read_guard entry / exit for the flavours with real read sides.
template <class F>
void read_enter() noexcept {
  if (tls<F>.depth++ == 0) begin<F>();
}
template <class F>
void read_exit() noexcept {
  if (--tls<F>.depth == 0) end<F>();
}

// Grace-period start for synchronize(): the cells to acquire afterwards.
template <class F>
std::vector<cell*> capture() {
  std::vector<cell*> out;
  hidden h;
  registry& r = registry_of<F>();
  std::lock_guard lock(r.mu);
  capture_into(r, out);
  return out;
}

// Grace-period end: acquire the captured cells and drop them.
template <class F>
void consume(std::vector<cell*>& cells) {
  for (cell* c : cells) __tsan_acquire(c);
  hidden h;
  registry& r = registry_of<F>();
  std::lock_guard lock(r.mu);
  for (cell* c : cells) unref(c);
  cells.clear();
}

// retire(): capture now, keyed by the rcu_head the callback will receive.
template <class F>
void stash(const void* head) noexcept {
  hidden h;
  registry& r = registry_of<F>();
  std::lock_guard lock(r.mu);
  capture_into(r, r.pending[head]);
}

// The callback for `head`: acquire what its retire() captured.
template <class F>
void unstash(const void* head) noexcept {
  std::vector<cell*> cells;
  {
    hidden h;
    registry& r = registry_of<F>();
    std::lock_guard lock(r.mu);
    auto it = r.pending.find(head);
    if (it == r.pending.end()) return;
    cells = std::move(it->second);
    r.pending.erase(it);
  }
  consume<F>(cells);
}

inline void release(const void* p) noexcept { __tsan_release(const_cast<void*>(p)); }
inline void acquire(const void* p) noexcept { __tsan_acquire(const_cast<void*>(p)); }

#else  // !RCUKIT_TSAN_ENABLED: nothing at all.

struct cell {};
template <class F>
inline void begin() noexcept {}
template <class F>
inline void end() noexcept {}
template <class F>
inline void read_enter() noexcept {}
template <class F>
inline void read_exit() noexcept {}
template <class F>
inline void stash(const void*) noexcept {}
template <class F>
inline void unstash(const void*) noexcept {}
inline void release(const void*) noexcept {}
inline void acquire(const void*) noexcept {}

#endif

// The grace-period span of synchronize()/barrier(): captures on construction
// and acquires on destruction (TSan builds only).
template <class F>
class grace_span {
 public:
#if RCUKIT_TSAN_ENABLED
  grace_span() : cells_(capture<F>()) {}
  ~grace_span() { consume<F>(cells_); }
#else
  grace_span() noexcept {}
#endif
  grace_span(const grace_span&) = delete;
  grace_span& operator=(const grace_span&) = delete;

#if RCUKIT_TSAN_ENABLED
 private:
  std::vector<cell*> cells_;
#endif
};

}  // namespace rcukit::rcu::detail::tsan
