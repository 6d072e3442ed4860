// layer: debugger
#pragma once
// --bpf: uprobes that run a BPF program instead of stopping the program. The caller says, per
// probed instruction (a file offset of the traced ELF), what each hit must carry: registers
// (always), memory at register + offset, a pointer kept from the entry for the return sites,
// and how deep a call chain. Hits come back as records through a BPF ring buffer; hit counts
// are kept in per-CPU counters in the kernel, so they stay exact when records are dropped.
// Addresses and bytes only: what they mean is the trace layer's.
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/expected.hpp"

namespace gomaptrace {

// Registers as the trace layer orders them (hit_regs): rip rsp rbp r14 rax rbx rcx rdi rsi r8
// r9 r10 r11.
constexpr std::size_t bpf_reg_count = 13;

struct bpf_capture {
  enum class from { reg, saved };
  from base = from::reg;
  int reg = 0;  // index into the register order above (from::reg)
  std::int32_t offset = 0;
  std::uint8_t len = 0;  // at most bpf_max_capture bytes
};
constexpr std::size_t bpf_max_capture = 64;
constexpr std::size_t bpf_max_captures = 4;
constexpr std::size_t bpf_max_frames = 127;

struct bpf_site {
  file_offset offset;                 // of the probed instruction in the ELF file
  std::vector<bpf_capture> captures;  // at most bpf_max_captures
  // Pass a pointer from an entry to its returns, per goroutine (R14) and group.
  std::optional<int> save_reg;  // at an entry: keep this register
  bool load_saved = false;      // at a return: take what the entry kept (from::saved)
  std::uint32_t group = 0;
  // At an instruction before the frame is set up, [rsp] is the direct caller's return
  // address, which the frame-pointer chain does not hold yet: read it as the first frame.
  bool return_address_at_rsp = false;
  std::size_t frames = 0;  // return addresses wanted after it (0: no call chain)
  // The entry of a call that is timed: its record carries the time the BPF program ended, so
  // the program's own work is not counted in the call's duration.
  bool stamp_at_end = false;
  // Follow a directory of pointers found in the bytes of captures[capture]: the pointer at
  // ptr_offset, the count at len_offset (both 8 bytes); from each entry, 2 bytes at
  // entry + elem_offset (a Swiss map's tables and their capacities). Up to bpf_max_dir.
  struct directory {
    std::size_t capture = 0;
    std::uint16_t ptr_offset = 0, len_offset = 0, elem_offset = 0;
  };
  std::optional<directory> dir;
};
constexpr std::size_t bpf_max_dir = 1024;
// The ring buffer's size, a power of two: its pages are kernel memory, taken at load. 128 MiB
// holds ~300,000 records of an insert with its chain, so a reader that falls behind a burst
// (a loaded machine, a slow output) catches up before anything is dropped.
constexpr std::size_t bpf_default_ring_bytes = std::size_t{1} << 27;
constexpr std::size_t bpf_dir_elem_bytes = 2;

// One hit, valid during the callback only.
struct bpf_hit {
  std::uint32_t site = 0;
  pid_t tid = 0;
  std::uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  std::array<std::uint64_t, bpf_reg_count> regs{};
  struct memory {
    std::uint64_t addr;
    std::span<const std::byte> bytes;
  };
  std::vector<memory> captured;  // the reads that succeeded (a directory's too)
  // The directory's elements by address (bpf_dir_elem_bytes each): looked up, not scanned,
  // since a large map has a thousand of them.
  std::unordered_map<std::uint64_t, std::span<const std::byte>> dir_elems;
  // Return addresses, innermost first: [rsp] (when asked), then the frame-pointer chain.
  std::vector<std::uint64_t> chain;
};

struct bpf_site_counts {
  std::uint64_t hits = 0;
  std::uint64_t drops = 0;    // records lost to a full ring buffer
  std::uint64_t prog_ns = 0;  // time in the BPF program
};

class bpf_probes {
 public:
  // Loads the program and attaches one uprobe per site for process `pid` (every thread of
  // it, present and future: the kernel filters by address space). Throws fatal_error with one
  // line: bpf_not_permitted when the kernel refuses for lack of privilege (CAP_BPF,
  // CAP_PERFMON), trace_failed otherwise.
  static std::unique_ptr<bpf_probes> attach(const std::filesystem::path& elf, pid_t pid,
                                            const std::vector<bpf_site>& sites,
                                            std::size_t ring_bytes = bpf_default_ring_bytes);
  // Throws fatal_error(bpf_not_permitted) when the kernel refuses BPF to us: checked before a
  // program is launched, so that a refusal leaves nothing started.
  static void require_permission();
  ~bpf_probes();
  bpf_probes(const bpf_probes&) = delete;
  bpf_probes& operator=(const bpf_probes&) = delete;

  // Hands every record waiting (up to timeout_ms for the first) to `on_hit`, in the order the
  // hits were recorded. Returns how many, or the error.
  expected<std::size_t> poll(int timeout_ms, const std::function<void(const bpf_hit&)>& on_hit);
  // Removes the uprobes: nothing is counted or recorded after it; what was recorded before
  // can still be polled.
  void detach();
  // Records handed to poll()'s callback so far.
  [[nodiscard]] std::uint64_t records() const;
  // Per site, summed over CPUs.
  [[nodiscard]] std::vector<bpf_site_counts> counts() const;

 private:
  struct impl;
  explicit bpf_probes(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace gomaptrace
