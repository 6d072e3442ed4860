// layer: debugger
#pragma once
// The page(s) mapped into the tracee that hold out-of-line slots. Placement matters: a
// relocated RIP-relative instruction only reaches ±2 GiB, so the page goes right below the
// mapping that holds the code, in a hole of the tracee's address space.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gomaptrace/address.hpp"

namespace gomaptrace {

struct memory_region {
  std::uint64_t start = 0;
  std::uint64_t end = 0;  // exclusive
  std::string perms;      // "r-xp"
  std::string path;       // may be empty or "[heap]"
};

// Parses the text of /proc/PID/maps.
std::vector<memory_region> parse_proc_maps(std::string_view text);

// Free page-aligned addresses for a mapping of `size` bytes within rel32 reach of `near`, best
// first: below the lowest mapping of the object that contains `near` (away from brk and stack
// growth), then any other hole in reach, nearest first.
std::vector<virt_addr> ool_page_candidates(const std::vector<memory_region>& maps, virt_addr near,
                                           std::size_t size);

// True if every byte of [from, from + len) and `to` are within a signed 32-bit displacement.
bool within_rel32(virt_addr from, virt_addr to);

// Bump allocation of slots inside one mapped page. Slots are never freed while tracing:
// a thread may be inside any slot at any time.
class ool_page {
 public:
  ool_page(virt_addr base, std::size_t size) : base_(base), size_(size) {}
  virt_addr base() const { return base_; }
  std::size_t size() const { return size_; }
  // A slot of `n` bytes (16-byte aligned), or nothing when the page is full.
  std::optional<virt_addr> allocate(std::size_t n);
  bool contains(virt_addr a) const { return a >= base_ && a < base_ + size_; }

 private:
  virt_addr base_;
  std::size_t size_;
  std::size_t used_ = 0;
};

}  // namespace gomaptrace
