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

}  // namespace gomaptrace
