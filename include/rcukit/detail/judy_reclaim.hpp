// SPDX-License-Identifier: MIT
// rcukit/detail/judy_reclaim.hpp -- how judy_array frees memory: objects
// never published are freed at once (into the calling thread's block
// cache), replaced ones are retired through RCU, and the destructor frees
// a quiescent tree.
//
// Reclamation. Each thread batches what it retires (detail/rcu_batch.hpp:
// one rcu::retire_with per batch). When a batch's grace period ends, the
// callback parks it in a process-wide depot (or frees it, past the depot's
// bound); each update takes the parked batches into its thread's block
// cache (detail/judy_block_cache.hpp), and rcu::barrier() frees what is
// parked. So a busy writer reuses what it retires, and after rcu::barrier()
// a thread that stopped updating holds no retired object past its grace
// period: only its cache and its open batch (fewer than 64 objects not yet
// handed to RCU), both bounded.
// When no batch can be allocated an object is retired alone through
// rcu::retire_with, and its callback frees it straight to malloc
// (judy_alloc::solo_pending counts it meanwhile).
#pragma once

#include <cstddef>

#include "rcukit/detail/judy_block_cache.hpp"
#include "rcukit/detail/judy_core.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

template <class T, class Rcu, unsigned BucketCap>
struct judy_reclaim : judy_core<T, Rcu, BucketCap> {
  using base = judy_core<T, Rcu, BucketCap>;
  using node = judy_node;
  using leaf = judy_leaf<T>;
  using word = judy_word;
  using kind = judy_kind;
  using entry = std::pair<std::uint64_t, T>;
  using typename base::rec;
  using base::as_leaf_mut;
  using base::as_node;
  using base::as_rec;
  using base::as_rec_mut;
  using base::is_rec;
  using base::word_bytes;

  static void free_rec(rec* r) noexcept {
    r->~rec();
    detail::judy_alloc::deallocate(r, sizeof(rec));
  }
  static void free_rec_remote(rec* r) noexcept {
    r->~rec();
    detail::judy_alloc::deallocate_retired_alone(r, sizeof(rec));
  }

  // Frees an unpublished subtree built below (nodes and leaves).
  static void free_unpublished(word w) {
    if (w == 0) return;
    if (detail::judy_is_leaf(w)) {
      detail::judy_free_leaf<T>(as_leaf_mut(w));
      return;
    }
    node* n = as_node(w);
    n->template visit<true>(0, 255, [](unsigned, word c) {
      free_unpublished(c);
      return false;
    });
    detail::judy_free_node(n);
  }
  // Retires a node or leaf that new readers can no longer reach: into the
  // calling thread's batch, or alone if no batch could be allocated.
  static void retire_word(word w) noexcept {
    if (is_rec(w)) {
      if (detail::judy_reclaimer<Rcu>::retire(as_rec_mut(w), sizeof(rec))) return;
      detail::judy_alloc::solo_pending.add(static_cast<long>(word_bytes(w)));
      rcu::retire_with<&free_rec_remote, Rcu>(as_rec_mut(w));
      return;
    }
    void* mem = detail::judy_is_leaf(w) ? static_cast<void*>(as_leaf_mut(w)) : static_cast<void*>(as_node(w));
    if (detail::judy_reclaimer<Rcu>::retire(mem, word_bytes(w))) return;
    detail::judy_alloc::solo_pending.add(static_cast<long>(word_bytes(w)));  // until the callback frees it
    if (detail::judy_is_leaf(w)) {
      rcu::retire_with<&detail::judy_free_leaf_remote<T>, Rcu>(as_leaf_mut(w));
    } else {
      rcu::retire_with<&detail::judy_free_node_remote, Rcu>(as_node(w));
    }
  }
  // Frees one unpublished node or leaf (not its children).
  static void free_one(word w) noexcept {
    if (w == 0) return;
    if (is_rec(w)) {
      free_rec(as_rec_mut(w));
      return;
    }
    if (detail::judy_is_leaf(w)) {
      detail::judy_free_leaf<T>(as_leaf_mut(w));
    } else {
      detail::judy_free_node(as_node(w));
    }
  }

  static void destroy(word w) {
    if (is_rec(w)) {
      free_unpublished(as_rec(w)->top);
      free_rec(as_rec_mut(w));
      return;
    }
    free_unpublished(w);
  }
};

}  // namespace rcukit::detail
