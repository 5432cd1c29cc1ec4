// SPDX-License-Identifier: MIT
// libFuzzer target: judy_array against std::map<uint64_t, uint64_t>, with
// the array's own allocation hook failing the Nth allocation on demand.
#include <cstddef>
#include <cstdint>
#include <map>
#include <new>

#include "fuzz_input.hpp"
#include "rcukit/judy_array.hpp"

namespace {
using judy =
    rcukit::judy_array<uint64_t, rcukit::rcu::memb, 2>;  // tiny buckets: deep trees, every node class
using alloc = rcukit::detail::judy_alloc;

uint64_t judy_key(rcukit::fuzz::input& in) {
  const uint8_t sel = in.byte();
  if (sel < 120) return in.u64(1);                             // dense
  if (sel < 180) return (in.u64(1) << 56) | (in.u64(1) << 8);  // sparse, shared bytes
  if (sel < 220) return 0xABCDEF0123456700ull | in.u64(1);     // long shared prefix
  if (sel < 240) return UINT64_MAX - in.u64(1);                // top edge
  return in.u64(8);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using rcukit::fuzz::input;
  input in(data, size);
  {
    judy j;
    std::map<uint64_t, uint64_t> m;
    uint64_t value = 1;
    for (int steps = 0; !in.empty() && steps < 3000; ++steps) {
      const uint8_t op = in.byte() % 9;
      const uint64_t k = judy_key(in);
      switch (op) {
        case 0:
        case 1: {
          auto s = j.insert(k, value);
          if (absl::IsResourceExhausted(s)) break;  // injected: checked by the comparison below
          RCUKIT_FUZZ_CHECK(s.ok() == (m.count(k) == 0));
          m.emplace(k, value);
          break;
        }
        case 2:
          RCUKIT_FUZZ_CHECK(j.find(k) == (m.count(k) ? std::optional<uint64_t>(m[k]) : std::nullopt));
          break;
        case 3: {
          auto r = j.try_erase(k);
          if (!r.ok()) {
            RCUKIT_FUZZ_CHECK(absl::IsResourceExhausted(r.status()));
            break;
          }
          auto it = m.find(k);
          RCUKIT_FUZZ_CHECK(r->has_value() == (it != m.end()));
          if (it != m.end()) {
            RCUKIT_FUZZ_CHECK(**r == it->second);
            m.erase(it);
          }
          break;
        }
        case 4: {
          auto got = j.lower_equal(k);
          auto it = m.upper_bound(k);
          if (it == m.begin()) {
            RCUKIT_FUZZ_CHECK(!got);
          } else {
            --it;
            RCUKIT_FUZZ_CHECK(got && got->first == it->first && got->second == it->second);
          }
          auto up = j.upper_equal(k);
          auto it2 = m.lower_bound(k);
          RCUKIT_FUZZ_CHECK(up.has_value() == (it2 != m.end()));
          if (up) RCUKIT_FUZZ_CHECK(up->first == it2->first && up->second == it2->second);
          break;
        }
        case 5: {
          const uint64_t hi = judy_key(in);
          std::vector<std::pair<uint64_t, uint64_t>> a, b;
          j.for_each(k, hi, [&](uint64_t key, const uint64_t& v) { a.emplace_back(key, v); });
          if (k <= hi) {
            for (auto it = m.lower_bound(k); it != m.end() && it->first <= hi; ++it) b.emplace_back(*it);
          }
          RCUKIT_FUZZ_CHECK(a == b);
          break;
        }
        case 6:
          alloc::fail_after(in.byte() % 4);
          break;
        case 7: {
          // insert_or_assign throws std::bad_alloc on allocation failure
          // (armed by case 6) and then must have changed nothing.
          try {
            const bool inserted = j.insert_or_assign(k, value);
            RCUKIT_FUZZ_CHECK(inserted == (m.count(k) == 0));
            m[k] = value;
          } catch (const std::bad_alloc&) {
            auto it = m.find(k);
            auto got = j.find(k);
            RCUKIT_FUZZ_CHECK(got.has_value() == (it != m.end()));
            if (got) RCUKIT_FUZZ_CHECK(*got == it->second);
            RCUKIT_FUZZ_CHECK(j.size() == m.size());
          }
          break;
        }
        case 8:
          RCUKIT_FUZZ_CHECK(j.size() == m.size());
          // One array and one thread: memory_bytes() is all the judy
          // allocator holds, which it also counts at its malloc/free calls
          // (RCU callbacks of a live thread's batches change neither).
          RCUKIT_FUZZ_CHECK(j.memory_bytes() == alloc::malloc_bytes());
          break;
      }
      ++value;
      RCUKIT_FUZZ_CHECK(j.check_invariants().ok());
    }
    alloc::fail_after(-1);
    RCUKIT_FUZZ_CHECK(j.size() == m.size());
    for (const auto& [k, v] : m) RCUKIT_FUZZ_CHECK(j.find(k) == v);
  }
  // Every node and bucket is freed once the retired ones have been reclaimed.
  rcukit::fuzz::periodic_barrier([] { RCUKIT_FUZZ_CHECK(alloc::live.load() == 0); });
  return 0;
}
