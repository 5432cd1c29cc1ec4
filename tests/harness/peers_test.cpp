// SPDX-License-Identifier: MIT
// The benchmark peers (src/harness/peers.hpp) answer extent queries exactly
// as the reference model does: a peer that returned other results than the
// index it is compared with would make every comparison meaningless.
// Random inserts, lookups, erases and walks over a small key space, plus
// extents at the top of the 64-bit space, against tests/support/extent_model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "harness/peers.hpp"
#include "support/extent_model.hpp"

namespace {

using rcukit::extent;

template <class Peer>
class PeerTest : public ::testing::Test {};
using Peers = ::testing::Types<rcukit::harness::btree_mutex<uint64_t>, rcukit::harness::std_map_spinlock<uint64_t>>;
TYPED_TEST_SUITE(PeerTest, Peers);

TYPED_TEST(PeerTest, AgreesWithTheModel) {
  constexpr uint64_t kTop = std::numeric_limits<uint64_t>::max();
  TypeParam peer;
  rcukit::testing::extent_model<uint64_t> model;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const bool high = rng() % 8 == 0;  // near the top of the key space
    const uint64_t key = high ? kTop - rng() % 256 : rng() % 4096;
    const uint64_t size = rng() % 16 == 0 ? kTop - rng() % 512 : 1 + rng() % 64;
    const unsigned op = static_cast<unsigned>(rng() % 10);
    if (op < 4) {
      const extent e{key, size};  // some overflow: both must refuse them alike
      const absl::Status a = peer.insert(e, i), b = model.insert(e, i);
      ASSERT_EQ(a.code(), b.code()) << "insert " << key << "+" << e.size;
    } else if (op < 7) {
      const auto a = peer.lookup(key, size), b = model.lookup(key, size);
      ASSERT_EQ(a.has_value(), b.has_value()) << "lookup " << key << "+" << size;
      if (a) {
        ASSERT_EQ(a->range.start, b->range.start);
        ASSERT_EQ(a->range.size, b->range.size);
        ASSERT_EQ(a->value, b->value);
      }
    } else if (op < 9) {
      const auto a = peer.erase(key, size), b = model.erase(key, size);
      ASSERT_EQ(a.has_value(), b.has_value()) << "erase " << key << "+" << size;
      if (a) {
        ASSERT_EQ(a->range.start, b->range.start);
      }
    } else {
      std::vector<uint64_t> got, want;
      const uint64_t hi = key > kTop - 512 ? kTop : key + 512;
      peer.for_each(key, hi, [&](const auto& e) { got.push_back(e.range.start); });
      model.for_each(key, hi, [&](const auto& e) { want.push_back(e.range.start); });
      ASSERT_EQ(got, want) << "for_each " << key;
    }
    ASSERT_EQ(peer.size(), model.size());
  }
}

}  // namespace
