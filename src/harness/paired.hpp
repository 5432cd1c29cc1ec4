// SPDX-License-Identifier: MIT
// harness/paired.hpp -- statistics of paired measurements: two sides timed in
// alternating rounds, one ratio per round, so that a drift of the machine
// hits both sides of each ratio alike (bench/skiplist lookup_paired,
// bench/judy readers_paired).
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace rcukit::harness {

// The median of v (the mean of the middle two for an even count); v non-empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Sets the counters <name>_median, <name>_min and <name>_max of the
// per-round ratios r (non-empty) on a Google Benchmark state; scripts/report.py
// shows them as the benchmark's figure.
template <class State>
void set_ratio_counters(State& st, const std::string& name, const std::vector<double>& r) {
  st.counters[name + "_median"] = median(r);
  st.counters[name + "_min"] = *std::min_element(r.begin(), r.end());
  st.counters[name + "_max"] = *std::max_element(r.begin(), r.end());
}

}  // namespace rcukit::harness
