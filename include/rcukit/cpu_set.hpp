// SPDX-License-Identifier: MIT
// rcukit/cpu_set.hpp -- a set of CPU ids: the vocabulary of CPU placement
// (which CPUs an ordered_executor runs on, which CPU runs a job's serial()).
//
// A value type. Any int may be stored; whether the process may use a CPU is
// checked where the set is used (ordered_executor). cpu_set::all() asks the
// kernel and is compiled once (src/cpu_topology.cpp, in rcukit::runtime,
// which rcukit::executor and rcukit::rcukit link).
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <vector>

namespace rcukit {

class cpu_set {
 public:
  cpu_set() = default;
  cpu_set(std::initializer_list<int> cpus) {
    for (int c : cpus) insert(c);
  }
  // The CPUs this process may run on (the union of the calling thread's and
  // the main thread's affinity masks). Never empty on a working system.
  // Blocking (two system calls).
  static cpu_set all();

  void insert(int cpu) {
    auto it = std::lower_bound(cpus_.begin(), cpus_.end(), cpu);
    if (it == cpus_.end() || *it != cpu) cpus_.insert(it, cpu);
  }
  bool erase(int cpu) {
    auto it = std::lower_bound(cpus_.begin(), cpus_.end(), cpu);
    if (it == cpus_.end() || *it != cpu) return false;
    cpus_.erase(it);
    return true;
  }
  bool contains(int cpu) const { return std::binary_search(cpus_.begin(), cpus_.end(), cpu); }
  std::size_t size() const { return cpus_.size(); }
  bool empty() const { return cpus_.empty(); }
  // Sorted ascending, no duplicates.
  const std::vector<int>& ids() const { return cpus_; }
  auto begin() const { return cpus_.begin(); }
  auto end() const { return cpus_.end(); }
  friend bool operator==(const cpu_set&, const cpu_set&) = default;

 private:
  std::vector<int> cpus_;
};

}  // namespace rcukit
