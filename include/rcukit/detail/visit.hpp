// SPDX-License-Identifier: MIT
// rcukit/detail/visit.hpp -- what every for_each() and range() shares:
// calling a visitor that may stop the walk, and presenting a walk as a
// C++20 input range.
//
// Visitors (API.md, "Common rules"): f returns void (visit everything) or
// something convertible to bool, where false stops the walk after this
// element.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <iterator>
#include <ranges>
#include <type_traits>
#include <utility>

namespace rcukit::detail {

// Calls f(args...); true if the walk goes on.
template <class F, class... A>
constexpr bool visit_continues(F& f, A&&... args) {
  using R = std::invoke_result_t<F&, A...>;
  if constexpr (std::is_void_v<R>) {
    std::invoke(f, std::forward<A>(args)...);
    return true;
  } else {
    static_assert(std::is_convertible_v<R, bool>,
                  "rcukit for_each: the visitor must return void, or bool (false stops the walk)");
    return static_cast<bool>(std::invoke(f, std::forward<A>(args)...));
  }
}

// A single-pass view over a cursor, the shape of std::ranges::istream_view:
// the view owns the cursor, its iterator points back at the view, and the
// end is std::default_sentinel. The cursor C provides
//   const value_type* get() const noexcept;  // the current element, null at the end
//   void next();                             // step to the next element
// The view is movable (not copyable); moving it after begin() ends the
// iterators obtained before.
template <class C>
class cursor_view : public std::ranges::view_base {
 public:
  using value_type = std::remove_cvref_t<decltype(*std::declval<const C&>().get())>;

  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = cursor_view::value_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(cursor_view* v) noexcept : v_(v) {}
    const value_type& operator*() const noexcept { return *v_->cursor_.get(); }
    const value_type* operator->() const noexcept { return v_->cursor_.get(); }
    iterator& operator++() {
      v_->cursor_.next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.at_end(); }

   private:
    bool at_end() const noexcept { return v_->cursor_.get() == nullptr; }
    cursor_view* v_ = nullptr;
  };

  explicit cursor_view(C c) : cursor_(std::move(c)) {}
  cursor_view(cursor_view&&) = default;
  cursor_view& operator=(cursor_view&&) = default;
  cursor_view(const cursor_view&) = delete;
  cursor_view& operator=(const cursor_view&) = delete;

  iterator begin() noexcept { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  C cursor_;
};

}  // namespace rcukit::detail
