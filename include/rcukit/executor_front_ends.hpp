// SPDX-License-Identifier: MIT
// rcukit/executor_front_ends.hpp -- the modern front ends on the ordered
// executor's engine: ordered_transform (a parallel map whose results are
// consumed in input order) and parallel_chunks (padata_do_multithreaded).
//
// Both only use the executor's public interface plus its batched submit
// (detail::submit_batch). <rcukit/ordered_executor.hpp> includes this
// header, so either include gives the whole API of API.md.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rcukit/cpu_set.hpp"
#include "rcukit/detail/executor_front_end.hpp"
#include "rcukit/ordered_executor.hpp"
#include "rcukit/ordered_job.hpp"

namespace rcukit {

// ser(par(*it)) for every it in [first, last): par runs in parallel on the
// executor's workers, ser runs one call at a time, in input order, on one
// callback CPU's thread. At most min(max_in_flight, max(1024, 256 x workers), input size)
// items are in flight; the calling thread only submits and waits. If par
// throws for an item, ser is skipped for that item; if ser throws, later ser
// calls are skipped; in both cases every item is still accounted for and the
// first exception (by input position) is rethrown here after all items
// finished. If the executor refuses work (stopped, CPU set emptied, or the
// call comes from one of its own threads), the remaining items run inline on
// the calling thread, in order. Blocking.
template <class It, class Par, class Ser>
void ordered_transform(ordered_executor& ex, It first, It last, Par par, Ser ser) {
  using ref = decltype(*first);
  using result = std::invoke_result_t<Par&, ref>;
  static_assert(!std::is_void_v<result>, "ordered_transform: par must return the value ser consumes");
  static_assert(std::forward_iterator<It>,
                "ordered_transform: workers dereference copies of the iterator later");

  struct state {
    Par* par;
    Ser* ser;
    detail::completion_counter finished;
    detail::first_error err;
    bool ser_failed = false;  // touched only by ser's serial() calls (one at a time, hb via the executor)
  };
  struct job final : ordered_job {
    state* st = nullptr;
    std::optional<It> it;
    std::uint64_t index = 0;
    std::optional<result> value;
    void parallel() override {
      try {
        value.emplace((*st->par)(**it));
      } catch (...) {
        st->err.record(index, std::current_exception());
      }
      done();
    }
    void serial() override {
      if (value.has_value() && !st->ser_failed) {
        try {
          (*st->ser)(std::move(*value));
        } catch (...) {
          st->ser_failed = true;
          st->err.record(index, std::current_exception());
        }
      }
      value.reset();
      st->finished.add_one();  // last touch of *st by this job (see completion_counter)
    }
  };

  state st{&par, &ser, {}, {}, false};
  auto run_inline = [&](It it, std::uint64_t index) {
    std::optional<result> v;
    try {
      v.emplace(par(*it));
    } catch (...) {
      st.err.record(index, std::current_exception());
    }
    if (v.has_value() && !st.ser_failed) {
      try {
        ser(std::move(*v));
      } catch (...) {
        st.ser_failed = true;
        st.err.record(index, std::current_exception());
      }
    }
  };
  auto pick_cb = [&]() -> int {  // -1: run inline
    cpu_set s = ex.cpus();
    return s.empty() ? -1 : *s.begin();
  };

  int cb = ex.on_worker_thread() ? -1 : pick_cb();
  const std::size_t workers = std::max<std::size_t>(1, ex.cpus().size());
  // Jobs in flight per call; when the window is full the submitter sleeps
  // until half of it has drained (one wake-up per window / 2 items).
  std::size_t window = std::max<std::size_t>(
      1, std::min<std::size_t>(ex.max_in_flight(), std::max<std::size_t>(1024, 256 * workers)));
  if constexpr (std::random_access_iterator<It>) {  // no bigger than the input
    window = std::max<std::size_t>(1, std::min<std::size_t>(window, static_cast<std::size_t>(last - first)));
  }
  std::vector<job> jobs(window);
  for (auto& j : jobs) j.st = &st;

  // Items are handed over in batches of up to kBatch (one submit_batch:
  // one reservation, one sequence fetch_add, one list push). A slot is
  // refilled only once its previous item is known finished; the count of
  // finished items is re-read only when the window looks full, not per item
  // (the serial thread writes it), and the batch is flushed before any wait
  // (we never wait for items we still hold).
  constexpr std::size_t kBatch = 16;
  ordered_job* batch[kBatch];
  std::size_t nbatch = 0;
  std::uint64_t submitted = 0;   // items handed to the executor
  std::uint64_t known_done = 0;  // a past value of st.finished.count
  auto flush = [&] {
    std::size_t i = 0;
    while (i < nbatch) {
      const std::size_t k = detail::submit_batch(ex, batch + i, nbatch - i, cb);
      submitted += k;
      i += k;
      if (i == nbatch) break;
      // Refused: submit() blocks if the executor is full (default policy) or
      // says why not. Our callback CPU went away, the executor stopped, or it
      // is full for us: let our own items finish, then retry once on the
      // current set; failing that, the rest runs inline, in order.
      job& j = static_cast<job&>(*batch[i]);
      absl::Status s = ex.submit(j, cb);
      if (!s.ok()) {
        st.finished.wait_for(submitted);
        cb = pick_cb();
        if (cb >= 0) s = ex.submit(j, cb);
      }
      if (s.ok()) {
        ++submitted;
        ++i;
        continue;
      }
      cb = -1;
      for (; i < nbatch; ++i) {
        job& r = static_cast<job&>(*batch[i]);
        run_inline(*r.it, r.index);
      }
    }
    nbatch = 0;
  };
  std::uint64_t index = 0;
  for (; first != last; ++first, ++index) {
    if (cb >= 0) {
      const std::uint64_t q = submitted + nbatch;  // this item's slot number
      if (q >= window && known_done < q - window + 1) {
        known_done = st.finished.count.load(std::memory_order_acquire);  // acquire: pairs with K1
        if (known_done < q - window + 1) {
          flush();  // never wait for items we still hold
          if (cb >= 0 && submitted >= window) {
            st.finished.wait_for(submitted - window / 2);  // the slot's previous job, and half the window
            known_done = st.finished.count.load(std::memory_order_acquire);  // acquire: pairs with K1
          }
        }
      }
    }
    if (cb < 0) {
      st.finished.wait_for(submitted);  // earlier items' ser calls come first
      run_inline(first, index);
      continue;
    }
    job& j = jobs[(submitted + nbatch) % window];
    j.it.emplace(first);
    j.index = index;
    batch[nbatch++] = &j;
    if (nbatch == kBatch) flush();
  }
  flush();
  st.finished.wait_all(submitted);
  st.err.rethrow_if_any();
}

// padata_do_multithreaded: calls fn(chunk_begin, chunk_end) over [begin, end)
// in chunks of max(ceil(size / (workers x 4)), min_chunk) elements, on the
// executor's workers and on the calling thread, which works too. Chunks run
// in no particular order. If fn throws, no new chunks start and the first
// exception is rethrown here once every running chunk has finished. Returns
// when every chunk has run; helper jobs clean themselves up in their serial
// step, so an unrelated stuck job delays only that clean-up. Blocking.
template <class Fn>
void parallel_chunks(ordered_executor& ex, std::uint64_t begin, std::uint64_t end, std::uint64_t min_chunk,
                     Fn fn) {
  if (end <= begin) return;
  const std::uint64_t size = end - begin;
  const cpu_set cpus = ex.on_worker_thread() ? cpu_set{} : ex.cpus();
  const std::uint64_t workers = cpus.size();
  std::uint64_t chunk = workers == 0 ? size : (size + workers * 4 - 1) / (workers * 4);
  chunk = std::max<std::uint64_t>(chunk, std::max<std::uint64_t>(min_chunk, 1));
  const std::uint64_t nchunks = (size + chunk - 1) / chunk;

  struct state {
    Fn* fn;
    std::uint64_t begin, end, chunk, nchunks;
    std::atomic<std::uint64_t> next{0};  // relaxed: a ticket counter; chunks are independent
    detail::first_error err;
    detail::completion_counter helpers_finished;
    void work() {
      for (;;) {
        const std::uint64_t c = next.fetch_add(1, std::memory_order_relaxed);
        if (c >= nchunks) return;
        const std::uint64_t b = begin + c * chunk;
        const std::uint64_t e = std::min(end, b + chunk);
        try {
          (*fn)(b, e);
        } catch (...) {
          err.record(c, std::current_exception());
          next.store(nchunks, std::memory_order_relaxed);  // relaxed: only stops further tickets early
        }
      }
    }
  };
  auto st = std::make_shared<state>();
  st->fn = &fn;
  st->begin = begin;
  st->end = end;
  st->chunk = chunk;
  st->nchunks = nchunks;

  struct helper final : ordered_job {
    std::shared_ptr<state> st;
    void parallel() override {
      st->work();
      st->helpers_finished.add_one();  // after this the caller may return; st stays alive through our pointer
      done();
    }
    void serial() override { delete this; }
  };

  std::uint64_t helpers = 0;
  const std::uint64_t want = std::min<std::uint64_t>(workers, nchunks > 0 ? nchunks - 1 : 0);
  for (std::uint64_t i = 0; i < want; ++i) {
    auto* h = new helper;
    h->st = st;
    const int cb = cpus.ids()[i % cpus.size()];
    if (!ex.submit(*h, cb).ok()) {
      delete h;
      break;
    }
    ++helpers;
  }
  st->work();
  st->helpers_finished.wait_all(helpers);
  st->err.rethrow_if_any();
}

}  // namespace rcukit
