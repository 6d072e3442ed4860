#pragma once
// An independent counter for end-to-end tests: the kernel's uprobe PMU counts how often an
// instruction in an ELF file runs, with no ptrace involved. The ELF and x86 helpers here
// use libelf and Zydis directly, not the tool's own readers, so they can serve as truth.
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/expected.hpp"

namespace gomaptrace::testing {

// The link-time address of a symbol from .symtab (absent in stripped binaries).
expected<file_addr> elf_symbol_address(const std::filesystem::path& elf, const std::string& name);

// Where the byte at a link-time address lies in the file: through the PT_LOAD that maps it
// (vaddr - segment vaddr + segment offset).
expected<file_offset> elf_file_offset(const std::filesystem::path& elf, file_addr addr);

// The address of the instruction that follows the one at `at`, whose bytes start `code`.
expected<file_addr> next_instruction(std::span<const std::uint8_t> code, file_addr at);

// The same, reading the instruction from the file.
expected<file_addr> instruction_after(const std::filesystem::path& elf, file_addr at);

// The first instruction after a Go function's stack-check prologue (`cmp rsp,[r14+16]` or
// `lea r12,[rsp-N]; cmp r12,[r14+16]`, then `jbe`/`jb` to morestack): where the tracer puts
// its int3. Fails when no such conditional jump is among the first few instructions.
expected<file_addr> after_stack_check(const std::filesystem::path& elf, file_addr entry);

// A uniquely named copy of a binary, deleted again on destruction. Per-CPU uprobes count
// every process running the same inode, so each test probes its own copy.
class private_copy {
 public:
  explicit private_copy(const std::filesystem::path& src);
  ~private_copy();
  private_copy(const private_copy&) = delete;
  private_copy& operator=(const private_copy&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
};

// Why uprobes cannot be used here (no PMU, no permission), or empty when they can.
std::string uprobes_unavailable_reason();

// Counts hits of instructions of one ELF file, one event per online CPU (pid -1) per probe,
// summed: inherit=1 would break Go's clone (see GO_MAPS.md). Add every probe before the
// program starts, then enable(); read() any time after.
class uprobe_counter {
 public:
  explicit uprobe_counter(std::filesystem::path elf);
  ~uprobe_counter();
  uprobe_counter(const uprobe_counter&) = delete;
  uprobe_counter& operator=(const uprobe_counter&) = delete;

  // Throws std::runtime_error when the kernel refuses the probe.
  void add(const std::string& name, file_offset offset);
  void enable();
  void disable();
  // Throws std::out_of_range for a name that was never added.
  std::uint64_t read(const std::string& name) const;

 private:
  std::filesystem::path elf_;
  std::map<std::string, std::vector<int>> fds_;  // one fd per online CPU
};

}  // namespace gomaptrace::testing
