// rcukit/detail/judy_node.hpp -- node encodings of the RCU Judy-style array.
//
// The idea. A 256-way digital tree over 64-bit keys: the node at depth d
// (0 = root) discriminates key byte d, most significant first. Child slots
// hold tagged words: 0 = empty, bit 0 set = a bucket (a small sorted array
// of full keys and values, judy_bucket below), otherwise an inner node. Keys
// live in buckets hung as high as possible: a slot holds a bucket until it
// overflows, then splits into a node of smaller buckets, and a node whose
// children are all buckets holding at most half a bucket merges back (the
// split/merge gap is the bucket hysteresis). This replaces libJudy's
// compressed leaves and costs no path of single-child nodes for sparse keys.
// The node encodings follow Mathieu Desnoyers' RCU Judy arrays (rcuja,
// liburcu branches, 2012-2016), re-derived here, sized to cache lines with a
// 24-byte header (rcu_head, lock, kind, count):
//
//   kind      bytes  children  layout
//   lin4        64     1..4    sorted key bytes, then child words
//   lin11      128     3..11   "
//   lin25      256     8..25   "
//   pool       928    16..100  4 sorted segments of <= 25, chosen by the key
//                              byte's two high bits (b >> 6)
//   pigeon    2072    24..256  256 child words indexed by the key byte
//
// The overlapping ranges are the hysteresis: a node grows when its class is
// full and shrinks only when it falls well below the smaller class's
// capacity (lin11 -> lin4 below 3, lin25 -> lin11 below 8, pool -> lin25
// below 16, pigeon -> lin25 below 24), so alternating insert/erase at a
// boundary does not reallocate on every call.
//
// Invariants (checked by judy_array::check_invariants()):
//  (1) Key bytes and segment counts of lin*/pool nodes are immutable after the
//      node is published; only child words change in place (atomically), and
//      only to replace an existing child by another non-empty one.
//  (2) Pigeon nodes change in place: a slot is set or cleared with a release
//      store under the node lock; count_ is atomic.
//  (3) Keys are sorted inside every segment; a pool key sits in segment b>>6.
//  (4) A node's kind matches its child count (table above); no node is empty;
//      no node's children are all buckets with <= cap/2 keys in total (it
//      would have merged); buckets hold 1..cap sorted keys on their path.
//  (5) A node is never modified after dead_ is set (it has been replaced).
//
// Not supported here: path compression of inner-node chains (a long shared
// prefix over more than a bucket of keys costs one lin4 node per shared
// byte), key-suffix compression in buckets (keys are stored whole: 8 bytes).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "rcukit/rcu.hpp"

namespace rcukit::detail {

// ---------------------------------------------------------------------------
// Allocation hook. Every node and bucket of every judy_array is allocated here,
// so tests can make the n-th allocation of the calling thread fail.
// ---------------------------------------------------------------------------
struct judy_alloc {
  // Live allocations (all arrays): tests check it is 0 after rcu::barrier().
  // Relaxed: a statistic, read only after barrier()/join, which order it.
  static inline std::atomic<long> live{0};
  // Per-thread fault injection: -1 = never fail; n >= 0 = the (n+1)-th
  // allocation by this thread fails (and the countdown then disarms).
  static inline thread_local long fail_countdown = -1;

  static void fail_after(long n) noexcept { fail_countdown = n; }
  static void* allocate(std::size_t bytes) noexcept {
    if (fail_countdown >= 0) {
      if (fail_countdown == 0) {
        fail_countdown = -1;
        return nullptr;
      }
      --fail_countdown;
    }
    void* p = std::malloc(bytes);
    if (p != nullptr) live.fetch_add(1, std::memory_order_relaxed);
    return p;
  }
  static void deallocate(void* p) noexcept {
    if (p == nullptr) return;
    live.fetch_sub(1, std::memory_order_relaxed);
    std::free(p);
  }
};

// Statistics stripes: each thread updates one (chosen once per thread).
inline constexpr unsigned judy_stripes = 8;
inline unsigned judy_stripe_index() noexcept {
  static std::atomic<unsigned> next{0};
  // relaxed: only spreads threads over stripes; any value is correct.
  static thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % judy_stripes;
  return mine;
}

enum class judy_kind : std::uint8_t { lin4 = 0, lin11 = 1, lin25 = 2, pool = 3, pigeon = 4 };

struct judy_kind_info {
  unsigned nseg;          // segments (1 for linear, 4 for pool, 0 for pigeon)
  unsigned segcap;        // capacity of one segment
  unsigned min_count;     // hysteresis floor (see the essay)
  unsigned max_count;     // capacity
  std::size_t bytes;      // allocation size
  std::size_t child_off;  // offset of the child words
};

inline constexpr std::size_t judy_header_bytes = 24;
inline constexpr std::size_t judy_keys_off = judy_header_bytes + 4;  // after 4 segment counts
constexpr std::size_t judy_align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }
constexpr judy_kind_info judy_make_info(unsigned nseg, unsigned segcap, unsigned minc) {
  const std::size_t child_off = judy_align8(judy_keys_off + std::size_t{nseg} * segcap);
  return {nseg, segcap, minc, nseg * segcap, child_off + std::size_t{8} * nseg * segcap, child_off};
}
inline constexpr judy_kind_info judy_kinds[5] = {
    judy_make_info(1, 4, 1),
    judy_make_info(1, 11, 3),
    judy_make_info(1, 25, 8),
    judy_make_info(4, 25, 16),
    {0, 256, 24, 256, judy_header_bytes + 8 * 256, judy_header_bytes},
};
static_assert(judy_kinds[0].bytes == 64 && judy_kinds[1].bytes == 128 && judy_kinds[2].bytes == 256);
static_assert(judy_kinds[3].bytes == 928 && judy_kinds[4].bytes == 2072);

// Tagged child word: 0, a node, or a bucket (bit 0). Allocations are
// 16-byte aligned (malloc), so bits 1..3 are free for planning placeholders.
using judy_word = std::uintptr_t;
inline constexpr judy_word judy_leaf_tag = 1;
inline bool judy_is_leaf(judy_word w) noexcept { return (w & judy_leaf_tag) != 0; }

inline unsigned judy_byte(std::uint64_t key, unsigned depth) noexcept {
  return static_cast<unsigned>(key >> (56 - 8 * depth)) & 0xffu;
}

// A bucket: 1..cap keys (sorted) with their values, hung in a slot at depth
// s (its keys share bytes [0, s)); judy_array picks cap. Buckets are
// immutable after publication: every change builds a new one (copy-on-write),
// so readers never see a torn value. Layout: 32-byte header, the keys, then
// the values (memcpy'd: T is trivially copyable). A "narrow" bucket (slot
// depth 7: keys differ only in their last byte) stores the shared 7-byte
// prefix once and one byte per key; full, it is indexed directly by that
// byte (libJudy's bitmap/immediate leaves play this role there).
template <class T>
struct judy_bucket : rcu::retirable {
  std::uint32_t n = 0;       // immutable, >= 1
  std::uint32_t narrow = 0;  // immutable: 1 = one key byte each, after `prefix`
  std::uint64_t prefix = 0;  // narrow: the shared high 7 bytes (low byte 0)

  static constexpr std::size_t header = 32;
  static constexpr std::size_t values_off(std::size_t n, bool narrow) noexcept {
    return (header + (narrow ? n : 8 * n) + alignof(T) - 1) / alignof(T) * alignof(T);
  }
  static constexpr std::size_t bytes_for(std::size_t n, bool narrow) noexcept {
    return values_off(n, narrow) + sizeof(T) * n;
  }
  std::size_t bytes() const noexcept { return bytes_for(n, narrow != 0); }
  const char* key_base() const noexcept { return reinterpret_cast<const char*>(this) + header; }
  char* key_base() noexcept { return reinterpret_cast<char*>(this) + header; }

  std::uint64_t key_at(std::size_t i) const noexcept {
    if (narrow != 0) return prefix | static_cast<std::uint8_t>(key_base()[i]);
    std::uint64_t k;
    std::memcpy(&k, key_base() + 8 * i, 8);
    return k;
  }
  void set_key(std::size_t i, std::uint64_t k) noexcept {  // before publication only
    if (narrow != 0) {
      key_base()[i] = static_cast<char>(k & 0xff);
    } else {
      std::memcpy(key_base() + 8 * i, &k, 8);
    }
  }
  char* value_ptr(std::size_t i) noexcept {
    return reinterpret_cast<char*>(this) + values_off(n, narrow != 0) + sizeof(T) * i;
  }
  const char* value_ptr(std::size_t i) const noexcept {
    return reinterpret_cast<const char*>(this) + values_off(n, narrow != 0) + sizeof(T) * i;
  }
  T value(std::size_t i) const noexcept {
    T out;
    std::memcpy(static_cast<void*>(&out), value_ptr(i), sizeof(T));
    return out;
  }
  // First index whose key is >= k (n if none).
  std::uint32_t lower_index(std::uint64_t k) const noexcept {
    std::uint32_t lo = 0, hi = n;
    if (narrow != 0) {
      const std::uint64_t kp = k & ~std::uint64_t{0xff};
      if (kp != prefix) return kp < prefix ? 0 : n;
      const unsigned b = static_cast<unsigned>(k & 0xff);
      if (n == 256) return b;  // full: direct index
      const auto* kb = reinterpret_cast<const std::uint8_t*>(key_base());
      while (lo < hi) {
        const std::uint32_t mid = (lo + hi) / 2;
        if (kb[mid] < b) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo;
    }
    while (lo < hi) {
      const std::uint32_t mid = (lo + hi) / 2;
      if (key_at(mid) < k) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }
};
static_assert(sizeof(judy_bucket<char>) == 32, "judy_bucket header must stay 32 bytes");

// Inner node header; the key bytes and child words follow in the same
// allocation (offsets in judy_kinds).
struct judy_node : rcu::retirable {
  std::atomic<std::uint8_t> lock_{0};  // writers only; readers never touch it
  std::atomic<bool> dead_{false};      // set under lock_ when replaced (invariant 5)
  judy_kind kind_;                     // immutable
  std::uint8_t pad_ = 0;
  std::atomic<std::uint16_t> count_{0};  // children; changes in place only for pigeon

  explicit judy_node(judy_kind k) noexcept : kind_(k) {}

  const judy_kind_info& info() const noexcept { return judy_kinds[static_cast<unsigned>(kind_)]; }
  std::size_t bytes() const noexcept { return info().bytes; }
  char* raw() noexcept { return reinterpret_cast<char*>(this); }
  const char* raw() const noexcept { return reinterpret_cast<const char*>(this); }

  // Segment counts and key bytes (lin*/pool): immutable after publication.
  std::uint8_t* seg_counts() noexcept { return reinterpret_cast<std::uint8_t*>(raw() + judy_header_bytes); }
  const std::uint8_t* seg_counts() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(raw() + judy_header_bytes);
  }
  std::uint8_t* keys() noexcept { return reinterpret_cast<std::uint8_t*>(raw() + judy_keys_off); }
  const std::uint8_t* keys() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(raw() + judy_keys_off);
  }
  std::atomic<judy_word>* children() noexcept {
    return std::launder(reinterpret_cast<std::atomic<judy_word>*>(raw() + info().child_off));
  }
  const std::atomic<judy_word>* children() const noexcept {
    return std::launder(reinterpret_cast<const std::atomic<judy_word>*>(raw() + info().child_off));
  }
  unsigned count() const noexcept {
    // relaxed: pigeon counts change only under lock_ and are read by writers
    // holding it (or by quiescent invariant checks); others are immutable.
    return count_.load(std::memory_order_relaxed);
  }

  // Index of key byte b in the child words, or -1. Readers and writers.
  int index_of(unsigned b) const noexcept {
    if (kind_ == judy_kind::pigeon) return static_cast<int>(b);
    const judy_kind_info& in = info();
    const unsigned seg = in.nseg == 4 ? (b >> 6) : 0;
    const unsigned base = seg * in.segcap;
    const unsigned n = seg_counts()[seg];
    const std::uint8_t* k = keys() + base;
    for (unsigned i = 0; i < n; ++i) {
      if (k[i] == b) return static_cast<int>(base + i);
      if (k[i] > b) break;  // sorted (invariant 3)
    }
    return -1;
  }

  // Child word for key byte b (0 if none). acquire: pairs with the release
  // store that published the child (judy_array::commit() or a pigeon slot
  // store), so the child's contents are visible.
  judy_word child(unsigned b) const noexcept {
    const int i = index_of(b);
    return i < 0 ? 0 : children()[i].load(std::memory_order_acquire);
  }

  // Visits (byte, word) of non-empty children in ascending (Asc) or
  // descending byte order until f returns true; returns whether it did.
  template <bool Asc, class F>
  bool visit(unsigned from, unsigned to, F&& f) const {
    // Visits bytes in [from, to] (inclusive), in the chosen order.
    if (from > to) return false;
    if (kind_ == judy_kind::pigeon) {
      const std::atomic<judy_word>* c = children();
      if constexpr (Asc) {
        for (unsigned b = from; b <= to; ++b) {
          const judy_word w = c[b].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, w)) return true;
        }
      } else {
        for (unsigned b = to + 1; b-- > from;) {
          const judy_word w = c[b].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, w)) return true;
        }
      }
      return false;
    }
    const judy_kind_info& in = info();
    const std::uint8_t* k = keys();
    const std::atomic<judy_word>* c = children();
    if constexpr (Asc) {
      for (unsigned s = 0; s < in.nseg; ++s) {
        const unsigned base = s * in.segcap, n = seg_counts()[s];
        for (unsigned i = 0; i < n; ++i) {
          const unsigned b = k[base + i];
          if (b < from) continue;
          if (b > to) return false;
          const judy_word w = c[base + i].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, w)) return true;
        }
      }
    } else {
      for (unsigned s = in.nseg; s-- > 0;) {
        const unsigned base = s * in.segcap, n = seg_counts()[s];
        for (unsigned i = n; i-- > 0;) {
          const unsigned b = k[base + i];
          if (b > to) continue;
          if (b < from) return false;
          const judy_word w = c[base + i].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, w)) return true;
        }
      }
    }
    return false;
  }

  // --- writer side -------------------------------------------------------
  void lock() noexcept {
    for (unsigned spins = 0;; ++spins) {
      // acquire: pairs with the release in unlock(); orders this writer's
      // reads of the node after the previous holder's writes.
      if (lock_.exchange(1, std::memory_order_acquire) == 0) return;
      while (lock_.load(std::memory_order_relaxed) != 0) {
        if (++spins > 64) std::this_thread::yield();  // 2 cores: let the holder run
      }
    }
  }
  void unlock() noexcept { lock_.store(0, std::memory_order_release); }  // pairs with lock()
  bool is_dead() const noexcept {
    // relaxed: written and read only under lock_, which orders it.
    return dead_.load(std::memory_order_relaxed);
  }
};
static_assert(sizeof(judy_node) == judy_header_bytes, "judy_node header must stay 24 bytes");

// Allocates an empty node of kind k (count 0, all child words 0), or nullptr.
inline judy_node* judy_new_node(judy_kind k) noexcept {
  const judy_kind_info& in = judy_kinds[static_cast<unsigned>(k)];
  void* mem = judy_alloc::allocate(in.bytes);
  if (mem == nullptr) return nullptr;
  auto* n = new (mem) judy_node(k);
  char* raw = static_cast<char*>(mem);
  for (std::size_t i = judy_header_bytes; i < in.child_off; ++i) raw[i] = 0;
  for (unsigned i = 0; i < in.max_count; ++i) new (raw + in.child_off + 8 * i) std::atomic<judy_word>(0);
  return n;
}

inline void judy_free_node(judy_node* n) noexcept {
  n->~judy_node();
  judy_alloc::deallocate(n);
}

// Allocates a bucket for n entries (keys and values left for the caller).
// narrow: keys share `prefix` (the high 7 bytes of any of them).
template <class T>
judy_bucket<T>* judy_new_bucket(std::uint32_t n, bool narrow, std::uint64_t prefix) noexcept {
  void* mem = judy_alloc::allocate(judy_bucket<T>::bytes_for(n, narrow));
  if (mem == nullptr) return nullptr;
  auto* b = new (mem) judy_bucket<T>();
  b->n = n;
  b->narrow = narrow ? 1 : 0;
  b->prefix = narrow ? (prefix & ~std::uint64_t{0xff}) : 0;
  return b;
}

template <class T>
void judy_free_bucket(judy_bucket<T>* b) noexcept {
  b->~judy_bucket<T>();
  judy_alloc::deallocate(b);
}

// A sorted list of (byte, word) children, the input from which new nodes are
// built (copy-on-write).
struct judy_child_list {
  unsigned n = 0;
  std::uint8_t bytes[256];
  judy_word words[256];
  void push(unsigned b, judy_word w) noexcept {
    bytes[n] = static_cast<std::uint8_t>(b);
    words[n] = w;
    ++n;
  }
};

// Whether the sorted list fits kind k (pool: every segment <= segcap).
inline bool judy_fits(judy_kind k, const judy_child_list& l) noexcept {
  const judy_kind_info& in = judy_kinds[static_cast<unsigned>(k)];
  if (l.n > in.max_count) return false;
  if (k == judy_kind::pool) {
    unsigned seg[4] = {0, 0, 0, 0};
    for (unsigned i = 0; i < l.n; ++i) ++seg[l.bytes[i] >> 6];
    for (unsigned s = 0; s < 4; ++s) {
      if (seg[s] > in.segcap) return false;
    }
  }
  return true;
}

// Builds an unpublished node of kind k holding the sorted list l (which must
// fit). Relaxed stores: the node is published later by a release store.
inline judy_node* judy_build(judy_kind k, const judy_child_list& l) noexcept {
  judy_node* n = judy_new_node(k);
  if (n == nullptr) return nullptr;
  n->count_.store(static_cast<std::uint16_t>(l.n), std::memory_order_relaxed);
  std::atomic<judy_word>* c = n->children();
  if (k == judy_kind::pigeon) {
    for (unsigned i = 0; i < l.n; ++i) c[l.bytes[i]].store(l.words[i], std::memory_order_relaxed);
    return n;
  }
  const judy_kind_info& in = n->info();
  std::uint8_t* sc = n->seg_counts();
  std::uint8_t* keys = n->keys();
  for (unsigned i = 0; i < l.n; ++i) {
    const unsigned seg = in.nseg == 4 ? (l.bytes[i] >> 6) : 0;
    const unsigned at = seg * in.segcap + sc[seg]++;
    keys[at] = l.bytes[i];
    c[at].store(l.words[i], std::memory_order_relaxed);
  }
  return n;
}

// The kind a node of kind `cur` takes for the list l after a change
// (grow when full, shrink only below the hysteresis floor).
inline judy_kind judy_choose_kind(judy_kind cur, const judy_child_list& l) noexcept {
  unsigned k = static_cast<unsigned>(cur);
  // Shrink below the floor: to the smallest class whose floor admits n.
  while (k > 0 && l.n < judy_kinds[k].min_count) {
    k = (k == static_cast<unsigned>(judy_kind::pigeon)) ? static_cast<unsigned>(judy_kind::lin25) : k - 1;
  }
  // Grow until it fits.
  while (!judy_fits(static_cast<judy_kind>(k), l)) ++k;
  return static_cast<judy_kind>(k);
}

}  // namespace rcukit::detail
