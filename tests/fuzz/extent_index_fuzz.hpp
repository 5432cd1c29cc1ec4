// SPDX-License-Identifier: MIT
// Differential fuzzing of an extent index against tests/support's
// extent_model: the byte stream picks operations and arguments; one opcode
// arms an allocation failure. Every result must equal the model's; a failed
// allocation must surface as ResourceExhausted with the contents unchanged;
// check_invariants() runs after every mutation.
#pragma once

#include "fuzz_input.hpp"
#include "rcukit/extent.hpp"
#include "tests/support/extent_model.hpp"

namespace rcukit::fuzz {

template <class Index>
void run_extent_index(const uint8_t* data, size_t size) {
  input in(data, size);
  Index idx;
  testing::extent_model<uint64_t> model;
  fail_countdown = -1;
  uint64_t value = 1;
  auto same = [](const auto& a, const auto& b) {
    if (a.has_value() != b.has_value()) return false;
    return !a || (a->range == b->range && a->value == b->value);
  };
  auto same_contents = [&] {
    std::vector<extent_entry<uint64_t>> got;
    idx.for_each(0, UINT64_MAX, [&](const extent_entry<uint64_t>& e) { got.push_back(e); });
    return got == model.all() && idx.size() == model.size();
  };
  // True when an armed allocation failure fired during the last operation.
  bool armed = false;
  auto fired = [&] { return armed && fail_countdown == -1; };
  for (int steps = 0; !in.empty() && steps < 2000; ++steps) {
    const uint8_t op = in.byte() % 11;
    armed = fail_countdown >= 0;
    switch (op) {
      case 0:
      case 1: {  // insert
        const extent e{in.key(), in.u64(1) % 40};
        const absl::Status got = idx.insert(e, value);
        if (fired() && absl::IsResourceExhausted(got)) {
          RCUKIT_FUZZ_CHECK(same_contents());  // failed cleanly: nothing changed
        } else {
          const absl::Status want = model.insert(e, value);
          RCUKIT_FUZZ_CHECK(got.code() == want.code());
        }
        ++value;
        break;
      }
      case 2: {  // lookup
        const uint64_t k = in.key(), n = in.u64(1) % 64;
        RCUKIT_FUZZ_CHECK(same(idx.lookup(k, n), model.lookup(k, n)));
        break;
      }
      case 3: {  // erase
        const uint64_t k = in.key(), n = in.u64(1) % 64;
        RCUKIT_FUZZ_CHECK(same(idx.erase(k, n), model.erase(k, n)));
        break;
      }
      case 4:
      case 5: {  // insert_hole
        hole_request r;
        r.hint = in.key();
        r.limit = (in.byte() & 1) ? UINT64_MAX - in.u64(1) : in.key();
        r.size = in.u64(1) % 48;
        r.align = uint64_t{1} << (in.byte() % 8);
        if (in.byte() == 7) r.align = 3;  // bad input now and then
        r.dir = (in.byte() & 1) ? hole_request::direction::down : hole_request::direction::up;
        r.floor = (in.byte() & 3) == 0 ? in.key() : 0;
        auto got = idx.insert_hole(r, value);
        if (fired() && absl::IsResourceExhausted(got.status())) {
          RCUKIT_FUZZ_CHECK(same_contents());  // failed cleanly: nothing changed
        } else {
          auto want = model.insert_hole(r, value);
          RCUKIT_FUZZ_CHECK(got.status().code() == want.status().code());
          if (got.ok()) RCUKIT_FUZZ_CHECK(*got == *want);
        }
        ++value;
        break;
      }
      case 6: {
        const uint64_t k = in.key();
        RCUKIT_FUZZ_CHECK(same(idx.lower_bound(k), model.lower_bound(k)));
        RCUKIT_FUZZ_CHECK(same(idx.prev_extent(k), model.prev_extent(k)));
        break;
      }
      case 7: {  // for_each over a window
        const uint64_t lo = in.key(), hi = in.key();
        std::vector<extent_entry<uint64_t>> a, b;
        idx.for_each(lo, hi, [&](const extent_entry<uint64_t>& e) { a.push_back(e); });
        model.for_each(lo, hi, [&](const extent_entry<uint64_t>& e) { b.push_back(e); });
        RCUKIT_FUZZ_CHECK(a == b);
        break;
      }
      case 8: {  // lookup_rcu inside the caller's read side
        const uint64_t k = in.key();
        rcu::read_guard<typename Index::rcu_flavor> g;
        RCUKIT_FUZZ_CHECK(same(idx.lookup_rcu(g, k, 1), model.lookup(k, 1)));
        break;
      }
      case 9:  // arm an allocation failure a few allocations from now
        fail_countdown = in.byte() % 4;
        break;
      case 10:
        if (in.byte() == 0) {
          fail_countdown = -1;
          idx.clear();
          model.clear();
        }
        break;
    }
    RCUKIT_FUZZ_CHECK(idx.check_invariants().ok());
    RCUKIT_FUZZ_CHECK(idx.size() == model.size());
  }
  fail_countdown = -1;
  RCUKIT_FUZZ_CHECK(same_contents());
}

}  // namespace rcukit::fuzz
