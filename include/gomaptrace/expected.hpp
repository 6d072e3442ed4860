// layer: common
#pragma once
// A minimal expected<T>: g++ 12 has std::expected only in C++23 mode and Debian 12 packages
// no tl::expected, so this small subset stands in until the project moves to C++23.
#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace gomaptrace {

struct error_info {
  std::string message;
};

class unexpected {
 public:
  explicit unexpected(std::string message) : e_{std::move(message)} {}
  const error_info& error() const { return e_; }

 private:
  error_info e_;
};

template <typename T>
class expected {
 public:
  expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  expected(unexpected u) : v_(std::in_place_index<1>, u.error()) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }
  const std::string& error() const {
    assert(!has_value());
    return std::get<1>(v_).message;
  }

 private:
  std::variant<T, error_info> v_;
};

template <>
class expected<void> {
 public:
  expected() = default;
  expected(unexpected u) : err_(u.error()), ok_(false) {}
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const std::string& error() const { return err_.message; }

 private:
  error_info err_;
  bool ok_ = true;
};

}  // namespace gomaptrace
