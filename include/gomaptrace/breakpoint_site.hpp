// layer: debugger
#pragma once
// How the instruction under a breakpoint is carried out while its int3 stays in place, so each
// hit costs exactly one stop: either it runs out of line in a slot (relocated if RIP-relative,
// followed by an absolute jump back), or the tracer emulates it on the registers because its
// effect depends on where it runs (relative branches, calls, returns).
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/expected.hpp"
#include "gomaptrace/registers.hpp"

namespace gomaptrace {

struct displaced_instruction {
  enum class kind {
    out_of_line,       // copied into a slot and executed there
    emulate_ret,       // ret / ret imm16: pop RIP (+imm16)
    emulate_jmp,       // jmp rel8/rel32: RIP = target
    emulate_jcc,       // jcc rel8/rel32: RIP = condition ? target : next
    emulate_call,      // call rel32: push next, RIP = target
    emulate_call_reg,  // call r64: push next, RIP = register
    // mov r64, r64 (Go's `mov rbp, rsp`, where the entry int3 goes): dst = src, RIP = next.
    // Costs the hit nothing (its registers are written anyway) and keeps the thread out of
    // slots, so a signal that waited for the stop needs no fix-up when it is delivered.
    emulate_mov_reg,
  };
  kind how = kind::out_of_line;
  std::uint8_t length = 0;
  std::array<std::byte, 16> bytes{};  // the original encoding (first `length` bytes)
  bool rip_relative = false;          // out_of_line with a disp32 relative to RIP
  std::uint8_t disp_offset = 0;       // where that disp32 sits in the encoding
  std::uint64_t target = 0;           // absolute branch target (emulate_jmp/jcc/call)
  int condition = 0;                  // x86 condition code 0..15 (emulate_jcc)
  int reg = 0;                        // register number 0..15 (emulate_call_reg, mov source)
  int dst_reg = 0;                    // register number 0..15 (emulate_mov_reg destination)
  std::uint16_t ret_pop = 0;          // imm16 of `ret imm16`
  std::string text;                   // disassembly, for messages

  bool emulated() const { return how != kind::out_of_line; }
};

// Decodes the instruction at `addr` from `code` (its bytes as read from the tracee, at least
// the instruction's length) and decides how to displace it. Fails for encodings that can
// neither run out of line nor be emulated exactly (loop/jrcxz/xbegin, call through memory,
// anything that is not a valid instruction).
expected<displaced_instruction> plan_displacement(virt_addr addr, std::span<const std::byte> code);

// Size a slot needs: the instruction plus `jmp [rip+0]` (6 bytes) and its 8-byte target.
constexpr std::size_t slot_size(const displaced_instruction& d) {
  return d.length + 14u;
}

// The slot's bytes when placed at `slot`: the instruction (disp32 rewritten so it still
// reaches the same absolute address) then an absolute jump to addr + length. Fails when a
// RIP-relative target is out of rel32 reach from the slot.
expected<std::vector<std::byte>> build_slot(const displaced_instruction& d, virt_addr addr,
                                            virt_addr slot);

// x86 condition code `cc` (the low nibble of the Jcc opcode) evaluated on RFLAGS.
bool condition_holds(int cc, std::uint64_t eflags);

// Memory access the emulator needs (the stack slot of a return address).
struct emulation_memory {
  std::function<expected<std::uint64_t>(virt_addr)> read_u64;
  std::function<expected<void>(virt_addr, std::uint64_t)> write_u64;
};

// Carries out an emulated instruction that was at `addr`: updates RIP/RSP in `regs` and the
// stack through `mem`, exactly as the CPU would have.
expected<void> emulate(const displaced_instruction& d, virt_addr addr, registers& regs,
                       const emulation_memory& mem);

}  // namespace gomaptrace
