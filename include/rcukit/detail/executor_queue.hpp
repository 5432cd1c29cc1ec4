// SPDX-License-Identifier: MIT
// rcukit/detail/executor_queue.hpp -- the intrusive hand-off list between
// the executor's threads.
//
// The idea. Every queue in the executor has many producers (submitters push
// parallel work; the reorder step pushes serial work) and exactly one
// consumer (the worker thread that owns the queue). Such a queue needs no
// lock: producers push onto a Treiber stack with one compare-exchange, and
// the consumer detaches the whole stack with one exchange and reverses it,
// which restores push order. Because elements are never popped one by one,
// there is no ABA problem.
//
// Invariants:
//  (1) An element is on at most one list at a time; its `next_` link belongs
//      to the list it is on (the executor guarantees this: a job is on the
//      parallel list of one worker, then in the reorder ring, then on the
//      serial list of its callback worker, strictly in that order).
//  (2) take_all() returns elements in push order for pushes ordered by
//      happens-before (in particular for a single producer at a time).
//  (3) The consumer reads an element's `next_` before it hands the element
//      to user code, which may free or resubmit it.
//
// Not supported: more than one consumer, removal of single elements.
#pragma once

#include <atomic>

namespace rcukit::detail {

template <class Node>  // Node has a `Node* next_` member and befriends mpsc_list
class mpsc_list {
 public:
  // Lock-free (one CAS loop). Returns true if the list was empty before the
  // push, which the caller may use as a wake-up hint.
  bool push(Node* n) noexcept {
    Node* head = head_.load(std::memory_order_relaxed);  // relaxed: only a guess for the CAS
    do {
      n->next_ = head;
      // (Q1) seq_cst success: release publishes n's fields (pairs with Q2) and
      // the total order makes the push visible to a worker that announces
      // sleep (pairs with the seq_cst loads in the worker's sleep check, W2).
    } while (!head_.compare_exchange_weak(head, n, std::memory_order_seq_cst, std::memory_order_relaxed));
    return head == nullptr;
  }

  // Pushes the chain first -> ... -> last, already linked through next_ in
  // reverse push order (last->next_ == ... == first; first->next_ is set
  // here), as one element: one CAS loop for the whole chain, and take_all()
  // returns first ... last in that order, after the elements pushed before.
  bool push_chain(Node* first, Node* last) noexcept {
    Node* head = head_.load(std::memory_order_relaxed);  // relaxed: only a guess for the CAS
    do {
      first->next_ = head;
      // (Q1) seq_cst success, as in push().
    } while (!head_.compare_exchange_weak(head, last, std::memory_order_seq_cst, std::memory_order_relaxed));
    return head == nullptr;
  }

  // Consumer only. Wait-free. Returns the detached elements in push order.
  Node* take_all() noexcept {
    if (head_.load(std::memory_order_relaxed) == nullptr) return nullptr;  // relaxed: a hint; Q2 decides
    // (Q2) acquire: pairs with Q1, so every pushed element's fields are visible.
    Node* n = head_.exchange(nullptr, std::memory_order_acquire);
    Node* fifo = nullptr;
    while (n != nullptr) {
      Node* next = n->next_;
      n->next_ = fifo;
      fifo = n;
      n = next;
    }
    return fifo;
  }

  // seq_cst: the worker's sleep check (W2) must be ordered after its sleep
  // announcement in the single total order (pairs with Q1).
  bool empty_seq_cst() const noexcept { return head_.load(std::memory_order_seq_cst) == nullptr; }
  // relaxed: a polling hint only; the consumer re-checks with take_all().
  bool maybe_nonempty() const noexcept { return head_.load(std::memory_order_relaxed) != nullptr; }

 private:
  alignas(64) std::atomic<Node*> head_{nullptr};
};

}  // namespace rcukit::detail
