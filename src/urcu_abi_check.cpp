// SPDX-License-Identifier: MIT
// Compile-time check of detail/urcu_abi.hpp against the liburcu headers this
// build finds: rcukit declares liburcu's functions itself (so that its
// headers include none of liburcu's), and this translation unit fails to
// compile if a declaration or the rcu_head layout no longer matches.
#include <cstddef>
#include <type_traits>

// The reader records are declared by liburcu's inline (LGPL) fast paths only;
// nothing here is called, so no liburcu code is compiled into rcukit.
#define _LGPL_SOURCE 1
#include <urcu/urcu-bp.h>
#include <urcu/urcu-mb.h>
#include <urcu/urcu-memb.h>
#include <urcu/urcu-qsbr.h>

#include "rcukit/rcu.hpp"

namespace {

namespace abi = rcukit::rcu::detail::urcu;

static_assert(sizeof(abi::head) == sizeof(rcu_head), "rcu_head size changed");
static_assert(alignof(abi::head) == alignof(rcu_head), "rcu_head alignment changed");
static_assert(offsetof(abi::head, next) == offsetof(rcu_head, next), "rcu_head layout changed");
static_assert(offsetof(abi::head, func) == offsetof(rcu_head, func), "rcu_head layout changed");

// The reader records rcukit reads the `registered` flag of (bit-fields have no
// offsetof: tests/rcu_test.cpp checks the flag itself at run time).
static_assert(sizeof(abi::reader) == sizeof(urcu_reader), "struct urcu_reader changed");
static_assert(offsetof(abi::reader, node) == offsetof(urcu_reader, node), "struct urcu_reader changed");
static_assert(offsetof(abi::reader, tid) == offsetof(urcu_reader, tid), "struct urcu_reader changed");
static_assert(sizeof(abi::qsbr_reader) == sizeof(struct urcu_qsbr_reader), "struct urcu_qsbr_reader changed");
static_assert(offsetof(abi::qsbr_reader, tid) == offsetof(struct urcu_qsbr_reader, tid),
              "struct urcu_qsbr_reader changed");

// Same return type and parameter count as liburcu's declaration; pointer
// parameters are compared by position in the call_rcu check below.
template <class Ours, class Theirs>
constexpr bool same_shape = false;
template <class R, class... A, class R2, class... B>
constexpr bool same_shape<R (*)(A...) noexcept, R2 (*)(B...)> =
    std::is_same_v<R, R2> && sizeof...(A) == sizeof...(B);

#define RCUKIT_CHECK(ours, theirs) \
  static_assert(same_shape<decltype(&abi::ours), decltype(&theirs)>, #theirs " changed")
#define RCUKIT_CHECK_FLAVOR(f)                                \
  RCUKIT_CHECK(f##_read_lock, urcu_##f##_read_lock);          \
  RCUKIT_CHECK(f##_read_unlock, urcu_##f##_read_unlock);      \
  RCUKIT_CHECK(f##_read_ongoing, urcu_##f##_read_ongoing);    \
  RCUKIT_CHECK(f##_synchronize_rcu, urcu_##f##_synchronize_rcu); \
  RCUKIT_CHECK(f##_register_thread, urcu_##f##_register_thread)
RCUKIT_CHECK_FLAVOR(memb);
RCUKIT_CHECK_FLAVOR(mb);
RCUKIT_CHECK_FLAVOR(bp);
RCUKIT_CHECK_FLAVOR(qsbr);
RCUKIT_CHECK(memb_unregister_thread, urcu_memb_unregister_thread);
RCUKIT_CHECK(mb_unregister_thread, urcu_mb_unregister_thread);
RCUKIT_CHECK(qsbr_unregister_thread, urcu_qsbr_unregister_thread);
RCUKIT_CHECK(qsbr_quiescent_state, urcu_qsbr_quiescent_state);
RCUKIT_CHECK(qsbr_thread_offline, urcu_qsbr_thread_offline);
RCUKIT_CHECK(qsbr_thread_online, urcu_qsbr_thread_online);
// call_rcu and barrier: <urcu/call-rcu.h> is declared once, for the first
// flavour included (bp above); the other flavours export the same shape.
RCUKIT_CHECK(bp_call_rcu, urcu_bp_call_rcu);
RCUKIT_CHECK(bp_barrier, urcu_bp_barrier);
#undef RCUKIT_CHECK_FLAVOR
#undef RCUKIT_CHECK

}  // namespace
