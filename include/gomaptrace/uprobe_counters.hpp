// layer: debugger
#pragma once
// Exact hit counts with no stop at all: the kernel's uprobe PMU (perf_event_open with the
// type in /sys/bus/event_source/devices/uprobe/type) counts every execution of an
// instruction of an ELF file. Counters are opened per thread of the traced program
// (pid = tid, cpu = -1, no inherit): inherit=1 makes a Go program's clone fail (GO_MAPS.md),
// and a per-CPU counter (pid -1) counts every process that runs the same file. So every
// thread must be added before it runs its first instruction: the caller learns of new
// threads from ptrace (PTRACE_EVENT_CLONE), which holds them until they are added.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/expected.hpp"
#include "gomaptrace/fd.hpp"

namespace gomaptrace {

// Releasing a uprobe waits for the kernel's grace periods, one release after another (~90 ms
// each here): a few dozen would hold gomaptrace's exit up for seconds after the program ended.
// This hands copies of `fds` to a detached grandchild that closes them after we are gone; the
// caller's own closes are then cheap (not the last reference). It keeps no other descriptor
// (stdout, a pipe to go test), so nobody waiting for our output or our exit waits for it.
void release_in_background(const std::vector<int>& fds);

class uprobe_counters {
 public:
  // One counter per offset per thread; offsets are file offsets of instructions in `elf`.
  uprobe_counters(std::filesystem::path elf, std::vector<file_offset> offsets);
  ~uprobe_counters();
  uprobe_counters(const uprobe_counters&) = delete;
  uprobe_counters& operator=(const uprobe_counters&) = delete;

  // Why the uprobe PMU cannot be used here (not in this kernel), or nullopt. Permission is
  // only known when the first counter is opened (add_thread).
  [[nodiscard]] static std::optional<std::string> unavailable_reason();

  // Opens and enables one counter per offset for `tid`. Fails with the kernel's reason
  // (permission, a bad offset); a thread that already exited is not an error.
  [[nodiscard]] expected<void> add_thread(pid_t tid);

  // Per offset, summed over every thread added so far (live or exited).
  [[nodiscard]] std::vector<std::uint64_t> totals() const;
  [[nodiscard]] std::size_t threads() const { return threads_; }

 private:
  std::filesystem::path elf_;
  std::vector<file_offset> offsets_;
  std::uint32_t pmu_type_ = 0;
  std::vector<std::vector<unique_fd>> fds_;  // [offset][thread]
  std::size_t threads_ = 0;
};

}  // namespace gomaptrace
