// SPDX-License-Identifier: MIT
// rcukit/detail/urcu_abi.hpp -- the liburcu functions rcukit calls, declared
// under rcukit's own names.
//
// The idea. liburcu's flavour headers (<urcu.h>, <urcu/urcu-memb.h>, ...) map
// the generic API (rcu_read_lock, call_rcu, ...) onto one flavour's prefixed
// symbols with about a thousand macros, and each header is written to be the
// only flavour a translation unit sees: the first one included claims
// <urcu/call-rcu.h> and clears the mapping of the others. A library that
// includes them all, as rcukit must (its flavour is a template argument),
// breaks a program that also includes <urcu.h> for its own use, in either
// order, and leaks every one of those macros into its users.
//
// So rcukit includes no liburcu header. It declares the exported functions it
// calls (liburcu 0.13, the soname Debian 12 ships) with asm labels: the C++
// names below live in rcukit::rcu::detail::urcu and cannot collide with, or
// be renamed by, liburcu's macros, while the linker binds them to liburcu's
// own symbols (C++ linkage on our side: the label alone fixes the symbol,
// and no extern "C" name is claimed). A program may include any liburcu header before or after
// rcukit's and use liburcu's API as liburcu documents it
// (tests/interop/ checks both orders).
//
// Invariants:
//  (1) Every declaration here names a function that the shared libraries
//      export with exactly this C signature (pointers and void only).
//  (2) `head` has the size, alignment and layout of liburcu's struct
//      rcu_head (two pointers: the queue link, then the callback);
//      src/urcu_abi_check.cpp compiles both side by side and static_asserts
//      it, so a liburcu that changes the layout fails rcukit's build.
//  (3) Calls go through the shared library (no inlined liburcu code; see
//      docs/DESIGN.md, "Licensing and liburcu").
//
//  (4) A thread may be registered by its own code through liburcu's API
//      (rcu_register_thread) rather than by rcukit; liburcu aborts on a
//      second registration. rcukit reads liburcu's own per-thread
//      `registered` flag before registering a thread (`registered()` below):
//      the reader records are part of the ABI that liburcu's inline fast
//      paths (_LGPL_SOURCE) compile against, stable within the soname, and
//      src/urcu_abi_check.cpp static_asserts the mirrored layouts.
//
// bp has no exported unregister function (liburcu makes it a no-op inline).
#pragma once

namespace rcukit::rcu::detail::urcu {

// liburcu's struct rcu_head, as an rcukit type (invariant 2).
struct head {
  void* next = nullptr;
  void (*func)(head*) = nullptr;
};
using callback = void (*)(head*);

#define RCUKIT_URCU_FLAVOR_DECLS(f)                                            \
  void f##_read_lock() noexcept __asm__("urcu_" #f "_read_lock");             \
  void f##_read_unlock() noexcept __asm__("urcu_" #f "_read_unlock");         \
  int f##_read_ongoing() noexcept __asm__("urcu_" #f "_read_ongoing");        \
  void f##_synchronize_rcu() noexcept __asm__("urcu_" #f "_synchronize_rcu"); \
  void f##_barrier() noexcept __asm__("urcu_" #f "_barrier");                 \
  void f##_call_rcu(head*, callback) noexcept __asm__("urcu_" #f "_call_rcu"); \
  void f##_register_thread() noexcept __asm__("urcu_" #f "_register_thread");

RCUKIT_URCU_FLAVOR_DECLS(memb)
RCUKIT_URCU_FLAVOR_DECLS(mb)
RCUKIT_URCU_FLAVOR_DECLS(bp)
RCUKIT_URCU_FLAVOR_DECLS(qsbr)
void memb_unregister_thread() noexcept __asm__("urcu_memb_unregister_thread");
void mb_unregister_thread() noexcept __asm__("urcu_mb_unregister_thread");
void qsbr_unregister_thread() noexcept __asm__("urcu_qsbr_unregister_thread");
void qsbr_quiescent_state() noexcept __asm__("urcu_qsbr_quiescent_state");
void qsbr_thread_offline() noexcept __asm__("urcu_qsbr_thread_offline");
void qsbr_thread_online() noexcept __asm__("urcu_qsbr_thread_online");

#undef RCUKIT_URCU_FLAVOR_DECLS

inline void bp_unregister_thread() noexcept {}

// liburcu's per-thread reader records (invariant 4): struct urcu_reader
// (memb, mb) and struct urcu_qsbr_reader, whose registry link is aligned to
// liburcu's CAA_CACHE_LINE_SIZE for the architecture.
#if defined(__x86_64__) || defined(__i386__) || defined(__s390__)
inline constexpr unsigned long cache_line = 128;
#elif defined(__powerpc__) || defined(__sparc__)
inline constexpr unsigned long cache_line = 256;
#else
inline constexpr unsigned long cache_line = 64;
#endif
struct list_link {
  list_link* next;
  list_link* prev;
};
struct reader {  // struct urcu_reader
  unsigned long ctr;
  char need_mb;
  alignas(cache_line) list_link node;
  unsigned long tid;
  unsigned int registered : 1;
};
struct qsbr_reader {  // struct urcu_qsbr_reader
  unsigned long ctr;
  alignas(cache_line) list_link node;
  int waiting;
  unsigned long tid;
  unsigned int registered : 1;
};
extern __thread reader memb_reader __asm__("urcu_memb_reader");
extern __thread reader mb_reader __asm__("urcu_mb_reader");
extern __thread qsbr_reader qsbr_reader_tls __asm__("urcu_qsbr_reader");

// Whether liburcu counts the calling thread as registered with a flavour
// (bp registers its threads itself and has no such flag: always false).
inline bool memb_registered() noexcept { return memb_reader.registered != 0; }
inline bool mb_registered() noexcept { return mb_reader.registered != 0; }
inline bool qsbr_registered() noexcept { return qsbr_reader_tls.registered != 0; }
inline bool bp_registered() noexcept { return false; }
// qsbr: registered and online (liburcu keeps ctr at 0 while a thread is
// offline or unregistered). Only the owning thread writes its record.
inline bool qsbr_online() noexcept { return qsbr_reader_tls.registered != 0 && qsbr_reader_tls.ctr != 0; }

}  // namespace rcukit::rcu::detail::urcu
