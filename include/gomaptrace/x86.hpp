// layer: binary
#pragma once
// Just enough x86-64 decoding (Zydis underneath) to place breakpoints in a Go function:
// where the stack-check prologue ends and where the function returns.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "gomaptrace/address.hpp"

namespace gomaptrace {

enum class insn_kind { other, ret, call, jmp, jcc };

struct x86_insn {
  file_addr addr;
  std::uint8_t length = 0;
  insn_kind kind = insn_kind::other;
  std::optional<file_addr> target;  // direct branch/call target
  std::optional<file_addr> memory;  // absolute address of a RIP-relative memory operand
};

// Decodes a function body linearly. Go emits no data inside function text, but padding
// (int3 / zero bytes) after the last instruction is possible: decoding stops at the end
// or at the first undecodable byte.
std::vector<x86_insn> decode_linear(std::span<const std::byte> code, file_addr start);

// Where the goroutine stack-size check ends. Go functions start with
//   cmp rsp, [r14+0x10]            (or lea r12,[rsp-N]; cmp r12,[r14+0x10])
//   jbe/jb <call morestack>        (the stub jumps back to the entry)
// so a breakpoint on the entry fires twice when the stack grows. Returns the address after
// the conditional jump, or the entry itself when the function has no check (NOSPLIT leaves).
file_addr after_stack_check(const std::vector<x86_insn>& insns, std::span<const std::byte> code,
                            file_addr entry);

// Where a function's entry int3 goes, and what the instructions it skipped did to the stack.
struct entry_trap {
  file_addr addr;
  // Bytes pushed between the end of the stack check and `addr`: there the return address is
  // at [RSP + pushed]; RBP is not written by what was skipped (still the caller's).
  std::uint32_t pushed = 0;
};

// The int3 for a function's entry, starting from `at` (after_stack_check). After a trap on a
// one-byte instruction, RIP = at+1 is also a real instruction boundary (a thread that ran
// that instruction out of line comes back there), so telling our trap from another SIGTRAP
// would take a PTRACE_GETSIGINFO per hit. Go's frame prologue opens with the one-byte
// `push rbp`: the int3 moves past one-byte pushes to the next instruction (`mov rbp, rsp`),
// where RIP-1 can only be our int3, as long as no branch of the function lands there and
// that instruction is no branch itself. The push sizes come from the decoded instructions.
entry_trap plan_entry_trap(const std::vector<x86_insn>& insns, std::span<const std::byte> code,
                           file_addr entry, file_addr at);

}  // namespace gomaptrace
