// layer: debugger
#pragma once
// The breakpoint sites of one address space (models: sdb's stoppoint_collection, rr's
// AddressSpace): where each int3 is, the byte it replaced, how the displaced instruction runs
// (in a slot, or emulated) and the slot pages. It holds no pid and no file descriptor: a fork
// child's copy of the code carries the same int3s and slots at the same addresses, so a process
// that follows the child adopts a copy of its parent's table (same ids) and writes through its
// own /proc/PID/mem. The table only records: planting (reading the code, mapping pages by an
// injected mmap, writing int3s) needs a stopped thread and is the process's job.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/breakpoint_site.hpp"
#include "gomaptrace/expected.hpp"
#include "gomaptrace/ool_page.hpp"

namespace gomaptrace {

class site_table {
 public:
  struct site {
    std::uint64_t id = 0;
    virt_addr addr;
    displaced_instruction insn;
    virt_addr slot;  // out_of_line only
    std::byte original{};
  };

  bool empty() const { return sites_.empty(); }
  std::size_t size() const { return sites_.size(); }
  const std::vector<site>& all() const { return sites_; }

  // The site whose int3 is at `addr`, if any.
  const site* at(virt_addr addr) const;
  // The site whose slot holds `rip` (a thread running a displaced instruction), if any.
  const site* of_slot(virt_addr rip) const;

  // Records a site whose int3 (and slot, if out of line) are written. Ids count from 1 in the
  // order sites were added; the caller checks at() first, an address has one site.
  std::uint64_t add(virt_addr addr, const displaced_instruction& insn, virt_addr slot,
                    std::byte original);

  // Slot space within rel32 reach of `near` in the pages already mapped, if there is some.
  std::optional<virt_addr> allocate_slot(virt_addr near, std::size_t size);
  // A page just mapped into the tracee; its first slot, if `size` fits.
  std::optional<virt_addr> add_page(ool_page page, std::size_t size);
  const std::vector<ool_page>& pages() const { return pages_; }

  // Memory as the program sees it: the original byte wherever `out` (read at `addr`) shows
  // one of our int3s (what read_memory and read_memory_many return).
  void patch_reads(virt_addr addr, std::span<std::byte> out) const;
  // Writes every original byte back through `mem_fd`, an open /proc/PID/mem of this address
  // space or of a fork child's copy of it. Keeps going past a failed write; says whether all
  // went in.
  bool restore_originals(int mem_fd) const;
  // Forgets every site and page: the one place that does (exec took them with the old image;
  // detach restored the bytes and unmapped the pages first).
  void clear();

 private:
  std::vector<site> sites_;
  // Ordered: patch_reads covers a range with one lower_bound.
  std::map<std::uint64_t, std::size_t> by_addr_;
  std::map<std::uint64_t, std::size_t> by_slot_;  // slot start -> index in sites_
  std::vector<ool_page> pages_;
};

}  // namespace gomaptrace
