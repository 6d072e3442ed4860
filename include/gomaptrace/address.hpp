// layer: common
#pragma once
// Strong address types: a link-time address from the ELF file, a runtime address in the
// tracee and a byte offset into the file cannot be mixed by accident (as in sdb).
#include <compare>
#include <cstdint>
#include <functional>

namespace gomaptrace {

template <typename Tag>
class basic_address {
 public:
  constexpr basic_address() = default;
  constexpr explicit basic_address(std::uint64_t v) : v_(v) {}
  constexpr std::uint64_t value() const { return v_; }
  constexpr basic_address operator+(std::int64_t d) const { return basic_address(v_ + d); }
  constexpr basic_address operator-(std::int64_t d) const { return basic_address(v_ - d); }
  constexpr basic_address& operator+=(std::int64_t d) {
    v_ += d;
    return *this;
  }
  constexpr std::int64_t operator-(basic_address o) const {
    return static_cast<std::int64_t>(v_ - o.v_);
  }
  constexpr auto operator<=>(const basic_address&) const = default;

 private:
  std::uint64_t v_ = 0;
};

struct file_addr_tag {};
struct virt_addr_tag {};
struct file_offset_tag {};

// A virtual address as the ELF file states it (link time).
using file_addr = basic_address<file_addr_tag>;
// An address in the running process: file_addr + load bias (non-zero for PIE).
using virt_addr = basic_address<virt_addr_tag>;
// A byte offset into the file on disk.
using file_offset = basic_address<file_offset_tag>;

// The load bias turns one into the other; only this pair of functions crosses the line.
constexpr virt_addr to_virt(file_addr a, std::uint64_t load_bias) {
  return virt_addr(a.value() + load_bias);
}
constexpr file_addr to_file(virt_addr a, std::uint64_t load_bias) {
  return file_addr(a.value() - load_bias);
}

}  // namespace gomaptrace

template <typename Tag>
struct std::hash<gomaptrace::basic_address<Tag>> {
  std::size_t operator()(const gomaptrace::basic_address<Tag>& a) const noexcept {
    return std::hash<std::uint64_t>{}(a.value());
  }
};
