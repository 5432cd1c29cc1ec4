// SPDX-License-Identifier: MIT
// rcukit/extent.hpp -- the vocabulary every extent index and the IOVA domain
// share: extents, entries, hole requests, input validation, and the
// `extent_index` concept that names the common surface of
// `extent_skiplist`, `rbtree_extent_map` and `rbtree_extent_map_augmented`.
//
// An extent is the half-open range [start, start + size). It is valid when
// size > 0 and start + size does not overflow (so an extent may end exactly
// at UINT64_MAX, exclusive). Every index rejects an invalid extent with
// InvalidArgument and changes nothing.
//
// insert_hole() semantics are deterministic and identical for every index
// (see API.md); `detail::hole_*` below hold the arithmetic every
// implementation shares so the rounding rules live in one place.
#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/visit.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit {

// [start, start + size); size > 0; start + size must not overflow.
struct extent {
  uint64_t start;
  uint64_t size;

  // Exclusive end. Only meaningful for a valid extent.
  constexpr uint64_t end() const noexcept { return start + size; }
  friend constexpr bool operator==(const extent&, const extent&) = default;
};

template <class T>
struct extent_entry {
  extent range;
  T value;
  friend constexpr bool operator==(const extent_entry&, const extent_entry&) = default;
};

struct hole_request {
  uint64_t hint = 0;            // where to start looking
  uint64_t limit = UINT64_MAX;  // the hole must end at or below limit (exclusive end)
  uint64_t size = 1;
  uint64_t align = 1;                                     // power of two
  enum class direction { up, down } dir = direction::up;  // down = highest fitting hole first
  uint64_t floor = 0;                                     // the hole must start at or above floor
};

// True when [start, start + size) is a valid extent.
constexpr bool is_valid_extent(uint64_t start, uint64_t size) noexcept {
  return size != 0 && start <= std::numeric_limits<uint64_t>::max() - size;
}

// InvalidArgument (with the offending values) for an invalid extent.
inline absl::Status validate_extent(const extent& e) {
  if (e.size == 0) return absl::InvalidArgumentError("extent size must be > 0");
  if (!is_valid_extent(e.start, e.size)) {
    return absl::InvalidArgumentError("extent start + size overflows uint64_t");
  }
  return absl::OkStatus();
}

// A query range [key, key + size) as lookup() and erase() read it: clamped
// at the top of the key space, so a range whose end would overflow means
// "from key up" (no extent contains UINT64_MAX itself, so [key, UINT64_MAX)
// meets every extent a wider range could). The clamped size, or nullopt for
// an empty query (size == 0, or key == UINT64_MAX), which meets nothing.
constexpr std::optional<uint64_t> clamp_query(uint64_t key, uint64_t size) noexcept {
  constexpr uint64_t top = std::numeric_limits<uint64_t>::max();
  if (size > top - key) size = top - key;
  if (size == 0) return std::nullopt;
  return size;
}

// InvalidArgument for a hole request that can never be satisfied by shape.
inline absl::Status validate_hole_request(const hole_request& r) {
  if (r.size == 0) return absl::InvalidArgumentError("hole_request.size must be > 0");
  if (r.align == 0 || !std::has_single_bit(r.align)) {
    return absl::InvalidArgumentError("hole_request.align must be a power of two");
  }
  if (r.floor > r.limit || r.limit - r.floor < r.size) {
    return absl::InvalidArgumentError("hole_request: floor + size exceeds limit");
  }
  return absl::OkStatus();
}

namespace detail {

// Lowest multiple of `align` (a power of two) that is >= x, or nullopt if it
// would overflow.
constexpr std::optional<uint64_t> align_up(uint64_t x, uint64_t align) noexcept {
  const uint64_t mask = align - 1;
  if (x > std::numeric_limits<uint64_t>::max() - mask) return std::nullopt;
  return (x + mask) & ~mask;
}

// Highest multiple of `align` (a power of two) that is <= x.
constexpr uint64_t align_down(uint64_t x, uint64_t align) noexcept { return x & ~(align - 1); }

// Lowest aligned start s with lo <= s and s + size <= hi, inside the free
// gap [lo, hi); nullopt if none. Shared by every index's hole search.
constexpr std::optional<uint64_t> fit_lowest(uint64_t lo, uint64_t hi, uint64_t size,
                                             uint64_t align) noexcept {
  const auto s = align_up(lo, align);
  if (!s || *s > hi || hi - *s < size) return std::nullopt;
  return s;
}

// Highest aligned start s with lo <= s and s + size <= hi; nullopt if none.
constexpr std::optional<uint64_t> fit_highest(uint64_t lo, uint64_t hi, uint64_t size,
                                              uint64_t align) noexcept {
  if (hi < lo || hi - lo < size) return std::nullopt;
  const uint64_t s = align_down(hi - size, align);
  if (s < lo) return std::nullopt;
  return s;
}

// The two passes of insert_hole() (API.md): the first pass window and the
// wrap-around window, as [lo, hi) bounds on the hole itself.
struct hole_window {
  uint64_t lo;  // hole start >= lo
  uint64_t hi;  // hole end <= hi
};
constexpr hole_window first_pass(const hole_request& r) noexcept {
  if (r.dir == hole_request::direction::up) {
    return {r.hint > r.floor ? r.hint : r.floor, r.limit};
  }
  const uint64_t top = (r.hint == 0 || r.hint > r.limit) ? r.limit : r.hint;
  return {r.floor, top};
}
constexpr hole_window second_pass(const hole_request& r) noexcept { return {r.floor, r.limit}; }

}  // namespace detail

// The common surface of every extent index (API.md). Tests, the IOVA domain
// and the benchmarks are written once against it.
template <class M>
concept extent_index = requires(M& m, const M& cm, extent e, uint64_t k, const typename M::value_type& v,
                                const hole_request& hr, const rcu::read_guard<typename M::rcu_flavor>& g) {
  typename M::value_type;
  typename M::rcu_flavor;
  requires std::same_as<typename M::entry, extent_entry<typename M::value_type>>;
  { m.insert(e, v) } -> std::same_as<absl::Status>;
  { cm.lookup(k, k) } -> std::same_as<std::optional<typename M::entry>>;
  { cm.lookup(k) } -> std::same_as<std::optional<typename M::entry>>;
  { cm.lookup_rcu(g, k, k) } -> std::same_as<std::optional<typename M::entry>>;
  { m.erase(k, k) } -> std::same_as<std::optional<typename M::entry>>;
  { m.erase(k) } -> std::same_as<std::optional<typename M::entry>>;
  { m.insert_hole(hr, v) } -> std::same_as<absl::StatusOr<uint64_t>>;
  { m.assign(k, v) } -> std::same_as<absl::Status>;
  {cm.for_each(k, k, [](const typename M::entry&) {})};
  {cm.for_each(k, k, [](const typename M::entry&) { return false; })};
  { cm.range(g, k, k) } -> std::ranges::input_range;
  requires std::same_as<std::ranges::range_value_t<decltype(cm.range(g, k, k))>, typename M::entry>;
  { cm.lower_bound(k) } -> std::same_as<std::optional<typename M::entry>>;
  { cm.prev_extent(k) } -> std::same_as<std::optional<typename M::entry>>;
  { cm.size() } -> std::same_as<size_t>;
  { cm.empty() } -> std::same_as<bool>;
  {m.clear()};
};

}  // namespace rcukit
