#include "gomaptrace/ool_page.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <sstream>

namespace gomaptrace {

std::vector<memory_region> parse_proc_maps(std::string_view text) {
  std::vector<memory_region> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    memory_region r;
    std::istringstream ls(line);
    std::string range, offset, dev, inode;
    if (!(ls >> range >> r.perms >> offset >> dev >> inode)) continue;
    auto dash = range.find('-');
    if (dash == std::string::npos) continue;
    r.start = std::strtoull(range.substr(0, dash).c_str(), nullptr, 16);
    r.end = std::strtoull(range.substr(dash + 1).c_str(), nullptr, 16);
    std::getline(ls >> std::ws, r.path);
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const memory_region& a, const memory_region& b) { return a.start < b.start; });
  return out;
}

bool within_rel32(virt_addr from, virt_addr to) {
  const std::int64_t d = to - from;
  // A little margin: the displacement is taken from the end of a (<= 15 byte) instruction.
  return d > -(std::int64_t{1} << 31) + 64 && d < (std::int64_t{1} << 31) - 64;
}

std::vector<virt_addr> ool_page_candidates(const std::vector<memory_region>& maps, virt_addr near,
                                           std::size_t size) {
  constexpr std::uint64_t min_addr = 0x10000;  // vm.mmap_min_addr default
  std::vector<virt_addr> out;
  auto reach = [&](std::uint64_t a) {
    return a >= min_addr && within_rel32(near, virt_addr(a)) &&
           within_rel32(near, virt_addr(a + size));
  };
  // Best: right below the lowest mapping of the object containing `near`.
  std::size_t obj = maps.size();
  for (std::size_t i = 0; i < maps.size(); ++i)
    if (near.value() >= maps[i].start && near.value() < maps[i].end) obj = i;
  if (obj < maps.size() && !maps[obj].path.empty()) {
    std::size_t lo = obj;
    for (std::size_t i = 0; i < obj; ++i)
      if (maps[i].path == maps[obj].path) {
        lo = i;
        break;
      }
    const std::uint64_t below = lo ? maps[lo - 1].end : 0;
    if (maps[lo].start >= size && maps[lo].start - size >= below && reach(maps[lo].start - size))
      out.push_back(virt_addr(maps[lo].start - size));
  }
  // Then every other hole in reach, nearest first, keeping clear of brk and stack growth.
  std::vector<virt_addr> rest;
  for (std::size_t i = 0; i <= maps.size(); ++i) {
    const std::uint64_t lo = i ? maps[i - 1].end : min_addr;
    if (i == maps.size()) break;  // nothing above the last mapping (vsyscall/stack area)
    const std::uint64_t hi = maps[i].start;
    if (hi <= lo || hi - lo < size * 2) continue;
    if (maps[i].path != "[stack]" && reach(hi - size)) rest.push_back(virt_addr(hi - size));
    if ((i == 0 || maps[i - 1].path != "[heap]") && reach(lo)) rest.push_back(virt_addr(lo));
  }
  std::sort(rest.begin(), rest.end(),
            [&](virt_addr a, virt_addr b) { return std::llabs(a - near) < std::llabs(b - near); });
  for (auto a : rest)
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  return out;
}

std::optional<virt_addr> ool_page::allocate(std::size_t n) {
  const std::size_t at = (used_ + 15) & ~std::size_t{15};
  if (at + n > size_) return std::nullopt;
  used_ = at + n;
  return base_ + static_cast<std::int64_t>(at);
}

}  // namespace gomaptrace
