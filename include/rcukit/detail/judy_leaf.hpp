// SPDX-License-Identifier: MIT
// rcukit/detail/judy_leaf.hpp -- leaves of the RCU Judy-style array, changed
// in place under a lock and read under a sequence count.
//
// The idea. A leaf holds the keys of one slot of the digital tree with their
// values. Most updates change the leaf in place, as libJudy does, under the
// leaf's lock; readers validate what they read with the leaf's sequence
// count (Lameter's seqcount, fence-free form of seqcount.hpp) and read again
// if a writer changed it meanwhile (docs/DESIGN.md: why not copy-on-write).
// A leaf is replaced (copy on write) only when its shape changes: it is
// full, it falls well below its capacity, or it turns from one encoding
// into the other. Two encodings:
//
//   sorted  24-byte header, cap keys (8 bytes each, ascending), cap values.
//           cap is a capacity class (judy_core's cap_for, up to the array's
//           BucketCap), so a leaf grows by three entries per copy and fills
//           in place in between.
//   bitmap  a leaf in a slot at depth 7, whose keys differ only in their last
//           byte: the shared 7-byte prefix, a 256-bit presence bitmap and 256
//           value slots indexed by that byte. Never full: dense keys
//           (sequential ones) fill it in place (libJudy's bitmap leaf).
//
// Invariants:
//  (L1) Only the holder of the leaf's lock writes the leaf, and only inside a
//       write section of seq (odd while open); every field readers look at is
//       stored with release and loaded with acquire (seqcount.hpp's
//       protocol), so a reader that saw any write of a section retries.
//  (L2) cap, prefix and the encoding are immutable after publication; n is
//       1..cap (sorted) or 1..256 (bitmap), never 0 once published.
//  (L3) Once dead (replaced by a copy, or removed), a leaf is never written
//       again: a reader that reaches a dead leaf reads its final contents,
//       which were current when it was last reachable.
//  (L4) Readers may read torn values between write sections; every index
//       they derive stays inside the leaf (n is clamped to the capacity), so
//       a torn read costs a retry, never a stray access.
// Not supported: T with alignment above 16 (the allocator's).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "rcukit/detail/backoff.hpp"
#include "rcukit/detail/judy_block_cache.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

// A 32-bit sequence count with seqcount.hpp's protocol (writers hold a lock;
// release stores of the fields, acquire loads by readers, no fences). 32
// bits keep the leaf header at 24 bytes; a reader would have to sleep
// through 2^31 write sections of one leaf to be fooled.
class judy_seq {
 public:
  // Waits (backoff.hpp) while a write section is open; returns the even value.
  std::uint32_t read_begin() const noexcept {
    std::uint32_t s;
    // acquire: pairs with the release in write_end().
    spin_until([&] { return ((s = s_.load(std::memory_order_acquire)) & 1) == 0; });
    return s;
  }
  // True if the fields read since read_begin() returned s may be torn.
  // relaxed: the caller's acquire loads of the fields keep it after them.
  bool retry(std::uint32_t s) const noexcept { return s_.load(std::memory_order_relaxed) != s; }
  // relaxed: the release stores of the fields that follow order it before
  // them (seqcount.hpp); only the lock holder writes.
  void write_begin() noexcept { s_.store(s_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  // release: pairs with the acquire in read_begin().
  void write_end() noexcept { s_.store(s_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

 private:
  std::atomic<std::uint32_t> s_{0};
};

// Copies of a T slot that readers may read while the lock holder writes it:
// chunk by chunk through std::atomic_ref (acquire loads, release stores),
// so a torn value is a retry (L4), not a data race.
template <class T>
struct judy_value_io {
  static constexpr std::size_t chunk = sizeof(T) % 8 == 0 ? 8 : sizeof(T) % 4 == 0 ? 4 : sizeof(T) % 2 == 0 ? 2 : 1;
  using word = std::conditional_t<
      chunk == 8, std::uint64_t,
      std::conditional_t<chunk == 4, std::uint32_t, std::conditional_t<chunk == 2, std::uint16_t, std::uint8_t>>>;
  static constexpr std::size_t words = sizeof(T) / chunk;

  static void load(T& out, const char* slot) noexcept {
    word tmp[words];
    auto* w = reinterpret_cast<word*>(const_cast<char*>(slot));
    for (std::size_t i = 0; i < words; ++i) {
      tmp[i] = std::atomic_ref<word>(w[i]).load(std::memory_order_acquire);  // (L1) pairs with store()
    }
    std::memcpy(static_cast<void*>(&out), tmp, sizeof(T));
  }
  static void store(char* slot, const T& v) noexcept {
    word tmp[words];
    std::memcpy(tmp, static_cast<const void*>(&v), sizeof(T));
    auto* w = reinterpret_cast<word*>(slot);
    for (std::size_t i = 0; i < words; ++i) {
      std::atomic_ref<word>(w[i]).store(tmp[i], std::memory_order_release);  // (L1) pairs with load()
    }
  }
  // Lock holder only: slot `from` to slot `to` of the same leaf.
  static void move(char* to, const char* from) noexcept {
    auto* t = reinterpret_cast<word*>(to);
    auto* f = reinterpret_cast<word*>(const_cast<char*>(from));
    for (std::size_t i = 0; i < words; ++i) {
      // relaxed load: only the lock holder writes; release store: (L1).
      std::atomic_ref<word>(t[i]).store(std::atomic_ref<word>(f[i]).load(std::memory_order_relaxed),
                                        std::memory_order_release);
    }
  }
};

template <class T>
struct judy_leaf : rcu::retirable {
  static_assert(alignof(T) <= 16, "rcukit::judy_array<T>: T's alignment must not exceed 16");
  judy_seq seq;                    // (L1)
  std::atomic<std::uint16_t> n{0};  // entries; stored inside write sections
  std::atomic<std::uint8_t> lock_{0};  // bit 0: locked; bit 1: dead (L3)
  std::uint8_t cap = 0;                // immutable: sorted capacity, 0 = bitmap

  static constexpr std::size_t header = 24;
  static constexpr std::size_t round_up(std::size_t x, std::size_t a) noexcept { return (x + a - 1) / a * a; }
  static constexpr std::size_t value_align = alignof(T) > 8 ? alignof(T) : 8;
  static constexpr std::size_t sorted_values_off(unsigned c) noexcept { return round_up(header + 8 * c, value_align); }
  static constexpr std::size_t bitmap_prefix_off = header;
  static constexpr std::size_t bitmap_bits_off = header + 8;
  static constexpr std::size_t bitmap_values_off = round_up(bitmap_bits_off + 32, value_align);
  static constexpr std::size_t sorted_bytes(unsigned c) noexcept { return sorted_values_off(c) + sizeof(T) * c; }
  static constexpr std::size_t bitmap_bytes = bitmap_values_off + sizeof(T) * 256;

  bool bitmap() const noexcept { return cap == 0; }
  std::size_t bytes() const noexcept { return bitmap() ? bitmap_bytes : sorted_bytes(cap); }
  char* raw() noexcept { return reinterpret_cast<char*>(this); }
  const char* raw() const noexcept { return reinterpret_cast<const char*>(this); }
  std::uint64_t* key_words() noexcept { return reinterpret_cast<std::uint64_t*>(raw() + header); }
  std::uint64_t* bit_words() noexcept { return reinterpret_cast<std::uint64_t*>(raw() + bitmap_bits_off); }
  std::uint64_t* mut(const std::uint64_t* p) const noexcept { return const_cast<std::uint64_t*>(p); }
  const std::uint64_t* key_words() const noexcept {
    return reinterpret_cast<const std::uint64_t*>(raw() + header);
  }
  const std::uint64_t* bit_words() const noexcept {
    return reinterpret_cast<const std::uint64_t*>(raw() + bitmap_bits_off);
  }
  // Bitmap leaves: the shared high 7 bytes (low byte 0). Immutable (L2).
  std::uint64_t prefix() const noexcept {
    std::uint64_t p;
    std::memcpy(&p, raw() + bitmap_prefix_off, 8);
    return p;
  }
  char* value_slot(unsigned i) noexcept {
    return raw() + (bitmap() ? bitmap_values_off : sorted_values_off(cap)) + sizeof(T) * i;
  }
  const char* value_slot(unsigned i) const noexcept {
    return raw() + (bitmap() ? bitmap_values_off : sorted_values_off(cap)) + sizeof(T) * i;
  }

  // ---- readers (inside a read side; validate with seq, (L1) and (L4)) ----
  // Entry count, clamped to the capacity (L4). acquire: (L1).
  unsigned count() const noexcept {
    const unsigned c = n.load(std::memory_order_acquire);
    const unsigned lim = bitmap() ? 256u : cap;
    return c < lim ? c : lim;
  }
  std::uint64_t key_at(unsigned i) const noexcept {  // sorted
    return std::atomic_ref<std::uint64_t>(*mut(key_words() + i)).load(std::memory_order_acquire);  // (L1)
  }
  std::uint64_t bits(unsigned w) const noexcept {  // bitmap
    return std::atomic_ref<std::uint64_t>(*mut(bit_words() + w)).load(std::memory_order_acquire);  // (L1)
  }
  bool test(unsigned b) const noexcept { return (bits(b >> 6) >> (b & 63)) & 1; }
  // Sorted: first index in [0, c) whose key is >= k (c if none).
  unsigned lower(std::uint64_t k, unsigned c) const noexcept {
    unsigned lo = 0, hi = c;
    while (lo < hi) {
      const unsigned mid = (lo + hi) / 2;
      if (key_at(mid) < k) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }
  // Bitmap: least set byte >= b (256 if none) / greatest set byte <= b (-1).
  int next_set(int b) const noexcept {
    if (b > 255) return 256;
    for (int w = b >> 6; w < 4; ++w) {
      std::uint64_t x = bits(static_cast<unsigned>(w));
      if (w == (b >> 6)) x &= ~std::uint64_t{0} << (b & 63);
      if (x != 0) return w * 64 + __builtin_ctzll(x);
    }
    return 256;
  }
  int prev_set(int b) const noexcept {
    if (b < 0) return -1;
    for (int w = b >> 6; w >= 0; --w) {
      std::uint64_t x = bits(static_cast<unsigned>(w));
      if (w == (b >> 6) && (b & 63) != 63) x &= (std::uint64_t{2} << (b & 63)) - 1;
      if (x != 0) return w * 64 + 63 - __builtin_clzll(x);
    }
    return -1;
  }
  void value(unsigned i, T& out) const noexcept { judy_value_io<T>::load(out, value_slot(i)); }

  // ---- writer side ----------------------------------------------------------
  // Blocking: spin_lock.hpp's protocol on bit 0 of lock_, which shares its
  // byte with the dead bit to keep the header at 24 bytes.
  void lock() noexcept {
    for (;;) {
      // acquire: pairs with the release store in unlock().
      if ((lock_.fetch_or(1, std::memory_order_acquire) & 1) == 0) return;
      // relaxed: a hint only; the fetch_or above orders.
      spin_until([&] { return (lock_.load(std::memory_order_relaxed) & 1) == 0; });
    }
  }
  // release: pairs with the acquire in lock(). Keeps the dead bit.
  void unlock() noexcept { lock_.store(lock_.load(std::memory_order_relaxed) & 2, std::memory_order_release); }
  // Under the lock (so relaxed: the lock orders it).
  bool is_dead() const noexcept { return (lock_.load(std::memory_order_relaxed) & 2) != 0; }
  void mark_dead() noexcept { lock_.store(3, std::memory_order_relaxed); }

  // In-place changes, lock held, each one write section (L1).
  void set_key(unsigned i, std::uint64_t k) noexcept {
    std::atomic_ref<std::uint64_t>(key_words()[i]).store(k, std::memory_order_release);  // (L1)
  }
  std::uint64_t own_key(unsigned i) const noexcept {  // lock holder: relaxed
    return std::atomic_ref<std::uint64_t>(*mut(key_words() + i)).load(std::memory_order_relaxed);
  }
  void sorted_insert(unsigned i, std::uint64_t k, const T& v) noexcept {
    const unsigned c = n.load(std::memory_order_relaxed);  // lock holder
    seq.write_begin();
    for (unsigned j = c; j > i; --j) {
      set_key(j, own_key(j - 1));
      judy_value_io<T>::move(value_slot(j), value_slot(j - 1));
    }
    set_key(i, k);
    judy_value_io<T>::store(value_slot(i), v);
    n.store(static_cast<std::uint16_t>(c + 1), std::memory_order_release);  // (L1)
    seq.write_end();
  }
  void sorted_erase(unsigned i) noexcept {
    const unsigned c = n.load(std::memory_order_relaxed);  // lock holder
    seq.write_begin();
    for (unsigned j = i; j + 1 < c; ++j) {
      set_key(j, own_key(j + 1));
      judy_value_io<T>::move(value_slot(j), value_slot(j + 1));
    }
    n.store(static_cast<std::uint16_t>(c - 1), std::memory_order_release);  // (L1)
    seq.write_end();
  }
  void assign(unsigned i, const T& v) noexcept {
    seq.write_begin();
    judy_value_io<T>::store(value_slot(i), v);
    seq.write_end();
  }
  void bitmap_set(unsigned b, const T& v) noexcept {
    const unsigned c = n.load(std::memory_order_relaxed);  // lock holder
    std::atomic_ref<std::uint64_t> w(bit_words()[b >> 6]);
    seq.write_begin();
    judy_value_io<T>::store(value_slot(b), v);
    w.store(w.load(std::memory_order_relaxed) | (std::uint64_t{1} << (b & 63)), std::memory_order_release);  // (L1)
    n.store(static_cast<std::uint16_t>(c + 1), std::memory_order_release);                                  // (L1)
    seq.write_end();
  }
  void bitmap_clear(unsigned b) noexcept {
    const unsigned c = n.load(std::memory_order_relaxed);  // lock holder
    std::atomic_ref<std::uint64_t> w(bit_words()[b >> 6]);
    seq.write_begin();
    w.store(w.load(std::memory_order_relaxed) & ~(std::uint64_t{1} << (b & 63)), std::memory_order_release);  // (L1)
    n.store(static_cast<std::uint16_t>(c - 1), std::memory_order_release);                                   // (L1)
    seq.write_end();
  }

  // Copies every entry, ascending, into keys/values (room for 256); returns
  // the count. Lock holder, or a leaf nobody else can reach yet.
  unsigned gather(std::uint64_t* keys, char* values) const noexcept {
    const unsigned c = n.load(std::memory_order_relaxed);
    if (!bitmap()) {
      std::memcpy(keys, key_words(), 8 * std::size_t{c});
      std::memcpy(values, value_slot(0), sizeof(T) * std::size_t{c});
      return c;
    }
    unsigned m = 0;
    const std::uint64_t p = prefix();
    for (unsigned w = 0; w < 4; ++w) {
      std::uint64_t x = bit_words()[w];
      while (x != 0) {
        const unsigned b = w * 64 + static_cast<unsigned>(__builtin_ctzll(x));
        x &= x - 1;
        keys[m] = p | b;
        std::memcpy(values + sizeof(T) * m, value_slot(b), sizeof(T));
        ++m;
      }
    }
    return m;
  }
};
static_assert(sizeof(judy_leaf<char>) == 24, "judy_leaf header must stay 24 bytes");

// Allocates an unpublished sorted leaf of capacity cap (n = 0), or nullptr.
template <class T>
judy_leaf<T>* judy_new_sorted_leaf(unsigned cap) noexcept {
  void* mem = judy_alloc::allocate(judy_leaf<T>::sorted_bytes(cap));
  if (mem == nullptr) return nullptr;
  auto* l = new (mem) judy_leaf<T>();
  l->cap = static_cast<std::uint8_t>(cap);
  return l;
}
// Allocates an unpublished empty bitmap leaf for keys sharing prefix's high
// 7 bytes, or nullptr.
template <class T>
judy_leaf<T>* judy_new_bitmap_leaf(std::uint64_t prefix) noexcept {
  void* mem = judy_alloc::allocate(judy_leaf<T>::bitmap_bytes);
  if (mem == nullptr) return nullptr;
  auto* l = new (mem) judy_leaf<T>();
  const std::uint64_t p = prefix & ~std::uint64_t{0xff};
  std::memcpy(l->raw() + judy_leaf<T>::bitmap_prefix_off, &p, 8);
  std::memset(l->raw() + judy_leaf<T>::bitmap_bits_off, 0, 32);
  return l;
}
// Frees an unpublished (or retired, past its grace period) leaf on the
// calling thread (cached).
template <class T>
void judy_free_leaf(judy_leaf<T>* l) noexcept {
  const std::size_t bytes = l->bytes();
  l->~judy_leaf<T>();
  judy_alloc::deallocate(l, bytes);
}
// Frees a leaf retired alone (RCU callback thread).
template <class T>
void judy_free_leaf_remote(judy_leaf<T>* l) noexcept {
  const std::size_t bytes = l->bytes();
  l->~judy_leaf<T>();
  judy_alloc::deallocate_retired_alone(l, bytes);
}

}  // namespace rcukit::detail
