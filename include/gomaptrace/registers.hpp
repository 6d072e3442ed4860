// layer: debugger
#pragma once
// The general-purpose registers of one stopped thread (x86-64), as PTRACE_GETREGS gives them.
// Named accessors keep callers away from the raw kernel struct's field names.
#include <sys/user.h>

#include <cstdint>

#include "gomaptrace/address.hpp"

namespace gomaptrace {

class registers {
 public:
  registers() = default;
  explicit registers(const user_regs_struct& r) : r_(r) {}

  virt_addr pc() const { return virt_addr(r_.rip); }
  void set_pc(virt_addr a) { r_.rip = a.value(); }

  std::uint64_t rip() const { return r_.rip; }
  std::uint64_t rsp() const { return r_.rsp; }
  std::uint64_t rbp() const { return r_.rbp; }
  std::uint64_t rax() const { return r_.rax; }
  std::uint64_t rbx() const { return r_.rbx; }
  std::uint64_t rcx() const { return r_.rcx; }
  std::uint64_t rdx() const { return r_.rdx; }
  std::uint64_t rdi() const { return r_.rdi; }
  std::uint64_t rsi() const { return r_.rsi; }
  std::uint64_t r8() const { return r_.r8; }
  std::uint64_t r9() const { return r_.r9; }
  std::uint64_t r10() const { return r_.r10; }
  std::uint64_t r11() const { return r_.r11; }
  std::uint64_t r12() const { return r_.r12; }
  std::uint64_t r13() const { return r_.r13; }
  std::uint64_t r14() const { return r_.r14; }
  std::uint64_t r15() const { return r_.r15; }
  std::uint64_t eflags() const { return r_.eflags; }
  std::uint64_t fs_base() const { return r_.fs_base; }

  // Register by Zydis-independent x86 encoding number (0 = rax ... 15 = r15), as used in
  // ModRM/REX; lets the instruction emulator read the register a `call reg` names.
  std::uint64_t gpr(int number) const;
  void set_gpr(int number, std::uint64_t value);

  const user_regs_struct& raw() const { return r_; }
  user_regs_struct& raw() { return r_; }

 private:
  user_regs_struct r_{};
};

}  // namespace gomaptrace
