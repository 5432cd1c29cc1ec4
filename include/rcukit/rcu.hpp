// SPDX-License-Identifier: MIT
// rcukit/rcu.hpp -- read-copy-update over liburcu, as compile-time policies.
//
// The idea. liburcu (0.13, as shipped by Debian 12) exports one family of
// prefixed symbols per flavour: urcu_memb_*, urcu_mb_*, urcu_bp_*,
// urcu_qsbr_*. Each flavour is wrapped once here as a policy type whose
// static member functions call those symbols directly, so the flavour is
// chosen at compile time by a template argument (`extent_skiplist<T,
// rcu::qsbr>`), with no macro renaming and no runtime dispatch.
//
// Invariants this layer keeps:
//  (1) A thread is registered with a flavour before it enters a read side or
//      calls retire(): memb and mb register on first use through a
//      thread_local and unregister when the thread exits; bp registers
//      itself inside liburcu; qsbr is explicit (see `thread_registration`).
//  (2) A registration is never made twice and never leaked: the per-thread
//      state below knows whether the thread was registered by us (auto or
//      explicit) or by liburcu itself (its call_rcu worker threads). Threads
//      that come and go by the thousands leave liburcu's registry as they
//      found it, so they can neither corrupt it nor stall a grace period.
//  (3) A thread_local destructor that runs after our unregistration (thread
//      exit order is reverse construction order) still works: a read side
//      entered then registers for its own duration only.
//  (4) retire(p) never allocates when T derives from `rcu::retirable` (the
//      rcu_head is embedded, as the kernel embeds it); otherwise one small
//      node per retire carries the rcu_head. If that allocation fails the
//      call degrades to synchronize() + delete (outside a read side) rather
//      than leaking or failing.
//  (5) ThreadSanitizer sees the grace periods, exactly. liburcu 0.13 is
//      built without TSan annotations (upstream added them in 0.15), so when
//      rcukit is compiled with -fsanitize=thread, detail/rcu_tsan.hpp orders
//      before each free (and before synchronize()'s return) the read sides
//      that began before retire() (or synchronize()) and no others, and
//      retire() hands the retiring thread's clock to the callback. Correct
//      code reports nothing; a missing grace period, a retire before the
//      unlink, or a reader that reaches a retired object through a link
//      left behind is reported (tests/rcu_tsan_canary.cpp proves each).
//      Other builds compile none of it.
//  (6) synchronize() and barrier() inside a read side abort with the
//      caller's file and line for every flavour, and so do qsbr's
//      quiescent_state() and offline_scope: liburcu would silently take a
//      qsbr thread offline and the read side would lose its protection. For
//      qsbr, liburcu's read_ongoing() means "online", so rcukit counts
//      read_guard nesting itself; an online thread outside any guard is
//      outside a read side (it may, e.g., take invariant 4's fallback).
//  (7) A qsbr read side on a thread that is not registered, or is offline,
//      would protect nothing: read_guard<qsbr> aborts instead, naming the
//      caller's file and line. Every rcukit structure passes its own
//      caller's location down, so the message names the user's call.
//  (8) A program may register its threads through liburcu's own API
//      (detail/urcu_abi.hpp): rcukit then neither registers them again nor
//      unregisters them, for every flavour.
//
// Not supported: the signal flavour (deprecated upstream), defer_rcu.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#include "rcukit/detail/urcu_abi.hpp"

#if defined(__SANITIZE_THREAD__)
#define RCUKIT_TSAN_ENABLED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RCUKIT_TSAN_ENABLED 1
#endif
#endif
#ifndef RCUKIT_TSAN_ENABLED
#define RCUKIT_TSAN_ENABLED 0
#endif

#include "rcukit/detail/fatal.hpp"
#include "rcukit/detail/rcu_tsan.hpp"

namespace rcukit::rcu {

// ---------------------------------------------------------------------------
// Flavour policies. `auto_register` says whether rcukit registers threads on
// first use; `read_ongoing()` is liburcu's own per-thread query.
// ---------------------------------------------------------------------------

// Memory-barrier-free readers; writers use the membarrier syscall. Default.
struct memb {
  static constexpr const char* name = "memb";
  static constexpr bool auto_register = true;
  static void read_lock() noexcept { detail::urcu::memb_read_lock(); }
  static void read_unlock() noexcept { detail::urcu::memb_read_unlock(); }
  static bool read_ongoing() noexcept { return detail::urcu::memb_read_ongoing() != 0; }
  static void synchronize() noexcept { detail::urcu::memb_synchronize_rcu(); }
  static void barrier() noexcept { detail::urcu::memb_barrier(); }
  static void call(detail::urcu::head* h, detail::urcu::callback fn) noexcept { detail::urcu::memb_call_rcu(h, fn); }
  static void register_thread() noexcept { detail::urcu::memb_register_thread(); }
  static void unregister_thread() noexcept { detail::urcu::memb_unregister_thread(); }
  // liburcu counts the thread as registered (by rcukit or by the program).
  static bool registered() noexcept { return detail::urcu::memb_registered(); }
};

// Readers issue a full memory barrier; no syscall on the writer side.
struct mb {
  static constexpr const char* name = "mb";
  static constexpr bool auto_register = true;
  static void read_lock() noexcept { detail::urcu::mb_read_lock(); }
  static void read_unlock() noexcept { detail::urcu::mb_read_unlock(); }
  static bool read_ongoing() noexcept { return detail::urcu::mb_read_ongoing() != 0; }
  static void synchronize() noexcept { detail::urcu::mb_synchronize_rcu(); }
  static void barrier() noexcept { detail::urcu::mb_barrier(); }
  static void call(detail::urcu::head* h, detail::urcu::callback fn) noexcept { detail::urcu::mb_call_rcu(h, fn); }
  static void register_thread() noexcept { detail::urcu::mb_register_thread(); }
  static void unregister_thread() noexcept { detail::urcu::mb_unregister_thread(); }
  // liburcu counts the thread as registered (by rcukit or by the program).
  static bool registered() noexcept { return detail::urcu::mb_registered(); }
};

// "Bulletproof": liburcu registers the thread inside the first read_lock.
struct bp {
  static constexpr const char* name = "bp";
  static constexpr bool auto_register = false;  // liburcu does it itself
  static void read_lock() noexcept { detail::urcu::bp_read_lock(); }
  static void read_unlock() noexcept { detail::urcu::bp_read_unlock(); }
  static bool read_ongoing() noexcept { return detail::urcu::bp_read_ongoing() != 0; }
  static void synchronize() noexcept { detail::urcu::bp_synchronize_rcu(); }
  static void barrier() noexcept { detail::urcu::bp_barrier(); }
  static void call(detail::urcu::head* h, detail::urcu::callback fn) noexcept { detail::urcu::bp_call_rcu(h, fn); }
  static void register_thread() noexcept { detail::urcu::bp_register_thread(); }
  static void unregister_thread() noexcept { detail::urcu::bp_unregister_thread(); }
  // liburcu counts the thread as registered (by rcukit or by the program).
  static bool registered() noexcept { return detail::urcu::bp_registered(); }
};

// Quiescent-state-based: free read sides, but every registered thread must
// hold a `thread_registration<qsbr>` and call `quiescent_state<qsbr>()`
// regularly (outside any read side), or grace periods stall.
struct qsbr {
  static constexpr const char* name = "qsbr";
  static constexpr bool auto_register = false;  // explicit by design
  static void read_lock() noexcept { detail::urcu::qsbr_read_lock(); }
  static void read_unlock() noexcept { detail::urcu::qsbr_read_unlock(); }
  // For qsbr this is "the thread is online", not "inside a read side".
  static bool read_ongoing() noexcept { return detail::urcu::qsbr_read_ongoing() != 0; }
  static void synchronize() noexcept { detail::urcu::qsbr_synchronize_rcu(); }
  static void barrier() noexcept { detail::urcu::qsbr_barrier(); }
  static void call(detail::urcu::head* h, detail::urcu::callback fn) noexcept { detail::urcu::qsbr_call_rcu(h, fn); }
  static void register_thread() noexcept { detail::urcu::qsbr_register_thread(); }
  static void unregister_thread() noexcept { detail::urcu::qsbr_unregister_thread(); }
  // liburcu counts the thread as registered (by rcukit or by the program).
  static bool registered() noexcept { return detail::urcu::qsbr_registered(); }
  // Registered and not offline: the only state in which a read side protects.
  static bool online() noexcept { return detail::urcu::qsbr_online(); }
  static void quiescent_state() noexcept { detail::urcu::qsbr_quiescent_state(); }
  static void thread_offline() noexcept { detail::urcu::qsbr_thread_offline(); }
  static void thread_online() noexcept { detail::urcu::qsbr_thread_online(); }
};

using default_flavor = memb;

template <class F>
concept flavor =
    std::is_same_v<F, memb> || std::is_same_v<F, mb> || std::is_same_v<F, bp> || std::is_same_v<F, qsbr>;

// Embed (by inheritance) in objects that are retired often: retire() then
// needs no allocation. The kernel embeds struct rcu_head the same way.
struct retirable {
  detail::urcu::head rcu_head_{};
};

namespace detail {

// The caller's file and line for the misuse reports of invariant 6
// (rcukit::detail::fatal, detail/fatal.hpp).
using ::rcukit::detail::call_site;

// --- ThreadSanitizer hand-off (invariant 5; detail/rcu_tsan.hpp). ---------
template <class F>
inline char barrier_clock = 0;  // released after each callback, acquired by barrier()

// --- Work after barrier(). -------------------------------------------------
// An allocator whose RCU callbacks park memory past its grace period for
// reuse (detail/rcu_batch.hpp's depot) registers a function that frees what
// is parked; barrier() calls every registered function once the callbacks
// ran, so that after rcu::barrier() no such memory stays parked. Up to
// kBarrierHooks functions, each registered once; more are ignored (their
// memory then stays parked until reused).
using barrier_hook = void (*)() noexcept;
inline constexpr unsigned kBarrierHooks = 8;
inline constinit std::atomic<barrier_hook> barrier_hooks[kBarrierHooks]{};
inline void add_barrier_hook(barrier_hook h) noexcept {
  for (std::atomic<barrier_hook>& slot : barrier_hooks) {
    barrier_hook cur = nullptr;
    // acq_rel: the release publishes the hook's setup to run_barrier_hooks();
    // on failure, acquire reads the registered entry to compare it.
    if (slot.compare_exchange_strong(cur, h, std::memory_order_acq_rel, std::memory_order_acquire)) return;
    if (cur == h) return;
  }
}
inline void run_barrier_hooks() noexcept {
  for (std::atomic<barrier_hook>& slot : barrier_hooks) {
    const barrier_hook h = slot.load(std::memory_order_acquire);  // pairs with add_barrier_hook()
    if (h == nullptr) return;
    h();
  }
}

// --- Per-thread registration state (invariants 1-3). ----------------------
// Trivially destructible and constant-initialized, so it stays readable while
// other thread_local destructors run at thread exit. Only the owning thread
// reads or writes it: no atomics needed.
enum class reg : unsigned char {
  none,       // never registered (or explicitly unregistered)
  automatic,  // registered by rcukit on first use; unregistered at thread exit
  explicit_,  // registered by a thread_registration object
  external,   // registered by liburcu itself (call_rcu worker threads)
  exited,     // thread exit passed our unregistration: register per use
};
struct thread_state {
  reg state = reg::none;
  unsigned explicit_depth = 0;   // live thread_registration objects
  unsigned transient_depth = 0;  // read_guard nesting while registered transiently
  unsigned qsbr_depth = 0;       // qsbr only: read_guard nesting (liburcu keeps none)
};
template <class F>
inline thread_local constinit thread_state tls_state{};

template <class F>
struct exit_unregisterer {
  ~exit_unregisterer() {
    thread_state& s = tls_state<F>;
    if (s.state == reg::automatic) F::unregister_thread();
    s.state = reg::exited;
  }
};

template <class F>
void register_slow(thread_state& s) noexcept {
  F::register_thread();
  s.state = reg::automatic;
  // Construct the thread_local whose destructor unregisters at thread exit.
  static thread_local exit_unregisterer<F> unregisterer;
  (void)unregisterer;
}

// Called before every read_lock / call_rcu for memb and mb. Returns true when
// the caller must unregister again afterwards (transient registration while
// the thread is exiting, invariant 3).
template <class F>
inline bool ensure_registered() noexcept {
  if constexpr (!F::auto_register) {
    return false;
  } else {
    thread_state& s = tls_state<F>;
    if (s.state == reg::automatic || s.state == reg::explicit_) [[likely]] {
      return false;
    }
    if (s.state == reg::external) {
      if (F::registered()) return false;
      s.state = reg::none;  // the program unregistered it through liburcu
    }
    if (s.state == reg::none) {
      if (F::registered()) {  // the program registered it through liburcu (invariant 2)
        s.state = reg::external;
        return false;
      }
      register_slow<F>(s);
      return false;
    }
    // reg::exited: register for this use only (nested uses share it), unless
    // the program's own registration is still in place.
    if (s.transient_depth == 0 && F::registered()) return false;
    if (s.transient_depth++ == 0) F::register_thread();
    return true;
  }
}

// Ends a transient registration begun by ensure_registered() returning true.
template <class F>
inline void end_transient() noexcept {
  thread_state& s = tls_state<F>;
  if (--s.transient_depth == 0) F::unregister_thread();
}

// True inside a read_guard of flavour F. For qsbr liburcu's read_ongoing()
// means "online", so rcukit counts the guards itself (invariant 6).
template <class F>
inline bool in_read_side() noexcept {
  if constexpr (std::is_same_v<F, qsbr>) {
    return tls_state<F>.qsbr_depth != 0;
  } else {
    return F::read_ongoing();
  }
}

// The check a qsbr read side, and every public member of a structure of
// flavour F, makes first (invariant 7): the calling thread must be
// registered and online. Nothing at all for the other flavours.
template <class F>
inline void require_online(const call_site& where) noexcept {
  if constexpr (std::is_same_v<F, qsbr>) {
    if (!F::online()) [[unlikely]] {
      ::rcukit::detail::fatal("rcu",
                              "rcu::qsbr used on a thread that is not registered or is offline "
                              "(hold an rcu::thread_registration<rcu::qsbr>, or call liburcu's "
                              "rcu_register_thread(), and no offline_scope around the call)",
                              where);
    }
  }
}

template <class F>
inline void check_outside_read_side(const char* what, const call_site& where) noexcept {
  if (in_read_side<F>()) [[unlikely]] {
    ::rcukit::detail::fatal("rcu", what, where);
  }
}

// Callback trampolines (run on liburcu's call_rcu thread for flavour F). The
// callback acquires what its retire() captured: the retiring thread's clock
// and the read sides that began before the retire (invariant 5).
template <class F>
inline void enter_callback(detail::urcu::head* h) noexcept {
  thread_state& s = tls_state<F>;
  if (s.state == reg::none) s.state = reg::external;  // liburcu registered this thread
  tsan::unstash<F>(h);
}

template <class F, class T>
void delete_retirable(detail::urcu::head* h) noexcept {
  enter_callback<F>(h);
  auto* r = reinterpret_cast<retirable*>(reinterpret_cast<char*>(h) - offsetof(retirable, rcu_head_));
  T* obj = static_cast<T*>(r);
  tsan::acquire(obj);
  delete obj;
  tsan::release(&barrier_clock<F>);
}

template <auto Fn, class F, class T>
void call_retirable(detail::urcu::head* h) noexcept {
  enter_callback<F>(h);
  auto* r = reinterpret_cast<retirable*>(reinterpret_cast<char*>(h) - offsetof(retirable, rcu_head_));
  T* obj = static_cast<T*>(r);
  tsan::acquire(obj);
  Fn(obj);
  tsan::release(&barrier_clock<F>);
}

// Carrier for objects that do not embed an rcu_head.
template <class T>
struct boxed_retire {
  urcu::head head{};
  T* obj = nullptr;
};

template <class F, class T>
void delete_boxed(detail::urcu::head* h) noexcept {
  enter_callback<F>(h);
  auto* box =
      reinterpret_cast<boxed_retire<T>*>(reinterpret_cast<char*>(h) - offsetof(boxed_retire<T>, head));
  tsan::acquire(box);
  delete box->obj;
  delete box;
  tsan::release(&barrier_clock<F>);
}

// Identifies the outermost read side a thread is in, so that a structure can
// tell whether something it handed out (a leaf view) comes from the read side
// it is used in. Each thread draws a block of 2^40 ids from a global counter
// on first use (and a new block when it runs out), so ids are unique across
// threads and over time. Only the owning thread touches its clock.
struct read_side_clock {
  uint64_t depth = 0;
  uint64_t id = 0;    // the current (or last) outermost read side
  uint64_t left = 0;  // ids left in this thread's block
};
template <class F>
inline thread_local constinit read_side_clock tls_read_side{};
inline uint64_t read_side_block() noexcept {
  static std::atomic<uint64_t> next{1};  // relaxed: only needs distinct values
  return next.fetch_add(uint64_t{1} << 40, std::memory_order_relaxed);
}
template <class F>
inline void enter_read_side() noexcept {
  read_side_clock& c = tls_read_side<F>;
  if (c.depth++ != 0) return;
  if (c.left == 0) {
    c.id = read_side_block();
    c.left = (uint64_t{1} << 40) - 1;
  } else {
    ++c.id;
    --c.left;
  }
}
template <class F>
inline void exit_read_side() noexcept {
  --tls_read_side<F>.depth;
}

// Queues fn(h) after a grace period. The TSan capture is taken first, so it
// precedes the grace period liburcu starts for this callback.
template <class F>
inline void call_registered(detail::urcu::head* h, detail::urcu::callback fn) noexcept {
  const bool transient = ensure_registered<F>();
  tsan::stash<F>(h);
  F::call(h, fn);
  if (transient) end_transient<F>();
}

// qsbr in TSan builds: a blocking wait on an online thread is a quiescent
// state for it (liburcu takes it offline meanwhile), so its online interval
// ends before the wait and a new one begins after it.
template <class F>
class qsbr_pause {
 public:
  qsbr_pause() noexcept {
    if constexpr (tsan::enabled && std::is_same_v<F, qsbr>) {
      if (F::read_ongoing()) {
        online_ = true;
        tsan::end<F>();
      }
    }
  }
  ~qsbr_pause() {
    if (online_) tsan::begin<F>();
  }
  qsbr_pause(const qsbr_pause&) = delete;
  qsbr_pause& operator=(const qsbr_pause&) = delete;

 private:
  bool online_ = false;
};

}  // namespace detail

// ---------------------------------------------------------------------------
// read_guard: an RAII read-side critical section. Nestable. Wait-free for
// memb/qsbr/bp readers (mb issues one full barrier). Registers the thread on
// first use for memb/mb. Must not be held across synchronize()/barrier().
// ---------------------------------------------------------------------------
template <class F = default_flavor>
class read_guard {
  static_assert(flavor<F>, "rcukit::rcu::read_guard<F>: F must be memb, mb, bp or qsbr");

 public:
  // `where` names the caller in the one misuse this can detect: a qsbr read
  // side on a thread that is not registered or is offline (invariant 7).
  read_guard(detail::call_site where = detail::call_site::current()) noexcept
      : transient_(detail::ensure_registered<F>()) {
    if constexpr (std::is_same_v<F, qsbr>) {
      detail::require_online<F>(where);
      ++detail::tls_state<F>.qsbr_depth;  // invariant 6
    } else {
      detail::tsan::read_enter<F>();  // before the lock: see ~read_guard
    }
    F::read_lock();
    detail::enter_read_side<F>();
  }
  // The id of the outermost read side this guard belongs to (unique per
  // thread and over time; see detail::read_side_clock).
  uint64_t id() const noexcept { return detail::tls_read_side<F>.id; }
  ~read_guard() {
    detail::exit_read_side<F>();
    if constexpr (std::is_same_v<F, qsbr>) {
      --detail::tls_state<F>.qsbr_depth;
    } else {
      // TSan builds: release before unlocking, so a grace period that sees
      // the unlock finds this read side in the cell (invariant 5).
      detail::tsan::read_exit<F>();
    }
    F::read_unlock();
    if (transient_) detail::end_transient<F>();
  }
  read_guard(const read_guard&) = delete;
  read_guard& operator=(const read_guard&) = delete;

 private:
  bool transient_;
};

// ---------------------------------------------------------------------------
// thread_registration: explicit RAII registration. Required for qsbr (where
// the thread is then online and must call quiescent_state() regularly);
// optional for memb/mb/bp, where it nests with the automatic registration.
// ---------------------------------------------------------------------------
template <class F = default_flavor>
class thread_registration {
  static_assert(flavor<F>, "rcukit::rcu::thread_registration<F>: F must be memb, mb, bp or qsbr");

 public:
  thread_registration() noexcept {
    detail::thread_state& s = detail::tls_state<F>;
    if (s.explicit_depth++ == 0 && (s.state == detail::reg::none || s.state == detail::reg::exited) &&
        !F::registered()) {  // a registration the program made through liburcu is kept as it is
      F::register_thread();
      owns_ = true;
      prev_ = s.state;
      s.state = detail::reg::explicit_;
      if constexpr (std::is_same_v<F, qsbr>) detail::tsan::begin<F>();  // online from here
    }
  }
  ~thread_registration() {
    detail::thread_state& s = detail::tls_state<F>;
    --s.explicit_depth;
    if (owns_) {
      if constexpr (detail::tsan::enabled && std::is_same_v<F, qsbr>) {
        if (F::read_ongoing()) detail::tsan::end<F>();  // the last online interval ends
      }
      F::unregister_thread();
      s.state = prev_;
    }
  }
  thread_registration(const thread_registration&) = delete;
  thread_registration& operator=(const thread_registration&) = delete;

 private:
  bool owns_ = false;
  detail::reg prev_ = detail::reg::none;
};

// Waits until every read side that began before the call has ended.
// Blocking. Must not be called inside a read side: that aborts with a
// message naming the caller's file and line (`where`, filled in by default).
template <class F = default_flavor>
void synchronize(detail::call_site where = detail::call_site::current()) noexcept {
  static_assert(flavor<F>, "rcukit::rcu::synchronize<F>: F must be memb, mb, bp or qsbr");
  detail::check_outside_read_side<F>("synchronize() called inside a read-side critical section", where);
  detail::qsbr_pause<F> pause;
  detail::tsan::grace_span<F> span;  // TSan: read sides begun before now, acquired after the wait
  F::synchronize();
}

// Waits until every retire() callback queued before the call has run, then
// lets allocators free what those callbacks parked for reuse
// (detail::run_barrier_hooks). Blocking. Must not be called inside a read side (aborts with a message
// naming the caller's file and line) or from a retire callback.
template <class F = default_flavor>
void barrier(detail::call_site where = detail::call_site::current()) noexcept {
  static_assert(flavor<F>, "rcukit::rcu::barrier<F>: F must be memb, mb, bp or qsbr");
  detail::check_outside_read_side<F>("barrier() called inside a read-side critical section", where);
  detail::qsbr_pause<F> pause;
  const bool transient = detail::ensure_registered<F>();
  F::barrier();
  if (transient) detail::end_transient<F>();
  detail::tsan::acquire(&detail::barrier_clock<F>);
  detail::run_barrier_hooks();
}

// Deletes p after a grace period, on liburcu's call_rcu thread. Never blocks
// (but see invariant 4 for the no-memory fallback, which waits for a grace
// period when called outside a read side, and aborts inside one). May be
// called inside or outside a read side. The object must no longer be
// reachable by new readers.
template <class F = default_flavor, class T>
void retire(T* p, detail::call_site where = detail::call_site::current()) noexcept {
  static_assert(flavor<F>, "rcukit::rcu::retire<F>: F must be memb, mb, bp or qsbr");
  static_assert(!std::is_array_v<T>, "rcukit::rcu::retire: arrays are not supported");
  if (p == nullptr) return;
  detail::tsan::release(p);  // pairs with tsan::acquire(obj) in the callback
  if constexpr (std::is_base_of_v<retirable, T>) {
    retirable* r = p;
    detail::call_registered<F>(&r->rcu_head_, &detail::delete_retirable<F, T>);
  } else {
    auto* box = new (std::nothrow) detail::boxed_retire<T>;
    if (box == nullptr) {
      // An online qsbr thread outside a read_guard may wait here (invariant 6
      // tells a guard from "online").
      if (detail::in_read_side<F>()) {
        ::rcukit::detail::fatal("rcu", "retire(): out of memory inside a read side", where);
      }
      synchronize<F>();
      delete p;
      return;
    }
    box->obj = p;
    detail::tsan::release(box);
    detail::call_registered<F>(&box->head, &detail::delete_boxed<F, T>);
  }
}

// Like retire(), but reclaims by calling Fn(p) instead of `delete p`; for
// objects with their own allocation scheme. T must derive from retirable.
template <auto Fn, class F = default_flavor, class T>
void retire_with(T* p) noexcept {
  static_assert(flavor<F>, "rcukit::rcu::retire_with<F>: F must be memb, mb, bp or qsbr");
  static_assert(std::is_base_of_v<retirable, T>,
                "rcukit::rcu::retire_with: T must derive from rcu::retirable");
  if (p == nullptr) return;
  detail::tsan::release(p);  // pairs with tsan::acquire(obj) in the callback
  retirable* r = p;
  detail::call_registered<F>(&r->rcu_head_, &detail::call_retirable<Fn, F, T>);
}

// qsbr only: announces that this thread holds no references from earlier
// read sides. Must be called outside any read side (aborts with a message
// naming the caller's file and line).
template <class F = default_flavor>
void quiescent_state(detail::call_site where = detail::call_site::current()) noexcept {
  static_assert(std::is_same_v<F, qsbr>, "rcukit::rcu::quiescent_state is only meaningful for rcu::qsbr");
  detail::check_outside_read_side<F>("quiescent_state() called inside a read-side critical section", where);
  detail::tsan::end<F>();  // TSan: this online interval ends...
  F::quiescent_state();
  detail::tsan::begin<F>();  // ...and the next one begins
}

// qsbr: takes a registered thread offline for the scope (for example while it
// blocks in a join or a condition wait), so grace periods do not wait for it.
// No read side may be open across it (qsbr: aborts with a message naming the
// caller's file and line). For the other flavours it does nothing.
template <class F = default_flavor>
class offline_scope {
  static_assert(flavor<F>, "rcukit::rcu::offline_scope<F>: F must be memb, mb, bp or qsbr");

 public:
  explicit offline_scope(detail::call_site where = detail::call_site::current()) noexcept {
    if constexpr (std::is_same_v<F, qsbr>) {
      detail::check_outside_read_side<F>("offline_scope opened inside a read-side critical section", where);
      if constexpr (detail::tsan::enabled) {
        if (F::read_ongoing()) detail::tsan::end<F>();
      }
      F::thread_offline();
    }
  }
  ~offline_scope() {
    if constexpr (std::is_same_v<F, qsbr>) {
      F::thread_online();
      detail::tsan::begin<F>();
    }
  }
  offline_scope(const offline_scope&) = delete;
  offline_scope& operator=(const offline_scope&) = delete;
};

}  // namespace rcukit::rcu
