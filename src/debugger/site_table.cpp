#include "gomaptrace/site_table.hpp"

#include <unistd.h>

namespace gomaptrace {

const site_table::site* site_table::at(virt_addr addr) const {
  auto it = by_addr_.find(addr.value());
  return it == by_addr_.end() ? nullptr : &sites_[it->second];
}

const site_table::site* site_table::of_slot(virt_addr rip) const {
  auto it = by_slot_.upper_bound(rip.value());
  if (it == by_slot_.begin()) return nullptr;
  --it;
  const site& s = sites_[it->second];
  return rip.value() < s.slot.value() + slot_size(s.insn) ? &s : nullptr;
}

std::uint64_t site_table::add(virt_addr addr, const displaced_instruction& insn, virt_addr slot,
                              std::byte original) {
  const std::size_t index = sites_.size();
  sites_.push_back({index + 1, addr, insn, slot, original});
  by_addr_[addr.value()] = index;
  if (!insn.emulated()) by_slot_[slot.value()] = index;
  return sites_.back().id;
}

std::optional<virt_addr> site_table::allocate_slot(virt_addr near, std::size_t size) {
  for (auto& pg : pages_) {
    if (!within_rel32(near, pg.base()) || !within_rel32(near, pg.base() + pg.size())) continue;
    if (auto s = pg.allocate(size)) return s;
  }
  return std::nullopt;
}

std::optional<virt_addr> site_table::add_page(ool_page page, std::size_t size) {
  pages_.push_back(page);
  return pages_.back().allocate(size);
}

void site_table::patch_reads(virt_addr addr, std::span<std::byte> out) const {
  const std::uint64_t end = addr.value() + out.size();
  for (auto it = by_addr_.lower_bound(addr.value()); it != by_addr_.end() && it->first < end; ++it)
    out[it->first - addr.value()] = sites_[it->second].original;
}

bool site_table::restore_originals(int mem_fd) const {
  bool all = true;
  for (const site& s : sites_)
    all = ::pwrite(mem_fd, &s.original, 1, static_cast<off_t>(s.addr.value())) == 1 && all;
  return all;
}

void site_table::clear() {
  sites_.clear();
  by_addr_.clear();
  by_slot_.clear();
  pages_.clear();
}

}  // namespace gomaptrace
