// SPDX-License-Identifier: MIT
// tests/support/extent_model.hpp -- the sequential reference every extent
// index is tested against: a std::map of extents with the API.md semantics
// written as plainly as possible (linear scans, no cleverness), so that a
// disagreement points at the index under test, not at the model.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/extent.hpp"

namespace rcukit::testing {

template <class T>
class extent_model {
 public:
  using entry = extent_entry<T>;

  absl::Status insert(extent e, const T& v) {
    if (auto s = validate_extent(e); !s.ok()) return s;
    if (overlaps(e.start, e.size)) return absl::AlreadyExistsError("overlap");
    map_.emplace(e.start, entry{e, v});
    return absl::OkStatus();
  }

  // Lowest extent overlapping [key, key + size), the range taken as the
  // mathematical interval (a size that would overflow reaches the top of
  // the key space): written without the library's clamp_query.
  std::optional<entry> lookup(uint64_t key, uint64_t size = 1) const {
    if (size == 0) return std::nullopt;
    auto it = map_.upper_bound(key);
    if (it != map_.begin()) {
      auto p = std::prev(it);
      if (p->second.range.end() > key) return p->second;
    }
    if (it != map_.end() && it->first - key < size) return it->second;  // it->first > key
    return std::nullopt;
  }

  absl::Status assign(uint64_t start, const T& v) {
    auto it = map_.find(start);
    if (it == map_.end()) return absl::NotFoundError("no extent starts there");
    it->second.value = v;
    return absl::OkStatus();
  }

  std::optional<entry> erase(uint64_t key, uint64_t size = 1) {
    auto e = lookup(key, size);
    if (e) map_.erase(e->range.start);
    return e;
  }

  absl::StatusOr<uint64_t> insert_hole(const hole_request& r, const T& v) {
    if (auto s = validate_hole_request(r); !s.ok()) return s;
    std::optional<uint64_t> s = find_hole(detail::first_pass(r), r);
    if (!s) s = find_hole(detail::second_pass(r), r);
    if (!s) return absl::ResourceExhaustedError("no hole");
    map_.emplace(*s, entry{extent{*s, r.size}, v});
    return *s;
  }

  // f returns void, or bool where false stops the walk (API.md).
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    if (lo >= hi) return;  // [lo, hi) is empty: nothing overlaps it
    for (const auto& [start, e] : map_) {
      if (e.range.end() <= lo || start >= hi) continue;
      if constexpr (std::is_void_v<decltype(f(e))>) {
        f(e);
      } else if (!f(e)) {
        return;
      }
    }
  }

  std::optional<entry> lower_bound(uint64_t key) const {
    auto it = map_.lower_bound(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }

  std::optional<entry> prev_extent(uint64_t key) const {
    auto it = map_.lower_bound(key);
    if (it == map_.begin()) return std::nullopt;
    return std::prev(it)->second;
  }

  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  void clear() { map_.clear(); }
  std::vector<entry> all() const {
    std::vector<entry> v;
    for (const auto& [k, e] : map_) v.push_back(e);
    return v;
  }

 private:
  bool overlaps(uint64_t start, uint64_t size) const { return lookup(start, size).has_value(); }

  // Free gaps in ascending order as [lo, hi) pairs; the last gap ends at
  // UINT64_MAX (exclusive), matching "hole end <= limit".
  std::vector<std::pair<uint64_t, uint64_t>> gaps() const {
    std::vector<std::pair<uint64_t, uint64_t>> g;
    uint64_t cursor = 0;
    for (const auto& [start, e] : map_) {
      if (start > cursor) g.emplace_back(cursor, start);
      cursor = e.range.end();
    }
    if (cursor < UINT64_MAX) g.emplace_back(cursor, UINT64_MAX);
    return g;
  }

  std::optional<uint64_t> find_hole(detail::hole_window w, const hole_request& r) const {
    if (w.hi < w.lo) return std::nullopt;
    const auto g = gaps();
    if (r.dir == hole_request::direction::up) {
      for (const auto& [glo, ghi] : g) {
        const uint64_t lo = std::max(glo, w.lo);
        const uint64_t hi = std::min(ghi, w.hi);
        if (lo >= hi) continue;
        if (auto s = detail::fit_lowest(lo, hi, r.size, r.align)) return s;
      }
    } else {
      for (auto it = g.rbegin(); it != g.rend(); ++it) {
        const uint64_t lo = std::max(it->first, w.lo);
        const uint64_t hi = std::min(it->second, w.hi);
        if (lo >= hi) continue;
        if (auto s = detail::fit_highest(lo, hi, r.size, r.align)) return s;
      }
    }
    return std::nullopt;
  }

  std::map<uint64_t, entry> map_;
};

}  // namespace rcukit::testing
