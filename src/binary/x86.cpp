#include "gomaptrace/x86.hpp"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <iterator>

namespace gomaptrace {

namespace {
const ZydisDecoder& decoder() {
  static const ZydisDecoder d = [] {
    ZydisDecoder dec;
    ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    return dec;
  }();
  return d;
}

// [g+0x10] is g.stackguard0. Under the register ABI g lives in r14; the stack ABI (Go 1.16)
// first loads it from thread-local storage: mov rcx, fs:[-8].
bool is_stackguard(const ZydisDecodedOperand& op, ZydisRegister g_reg) {
  return op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.mem.base == g_reg &&
         op.mem.index == ZYDIS_REGISTER_NONE && op.mem.disp.has_displacement &&
         op.mem.disp.value == 0x10;
}
}  // namespace

std::vector<x86_insn> decode_linear(std::span<const std::byte> code, file_addr start) {
  std::vector<x86_insn> out;
  std::size_t off = 0;
  ZydisDecodedInstruction in;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  while (off < code.size()) {
    if (!ZYAN_SUCCESS(
            ZydisDecoderDecodeFull(&decoder(), code.data() + off, code.size() - off, &in, ops))) {
      break;
    }
    x86_insn x;
    x.addr = start + static_cast<std::int64_t>(off);
    x.length = in.length;
    switch (in.meta.category) {
      case ZYDIS_CATEGORY_RET:
        x.kind = insn_kind::ret;
        break;
      case ZYDIS_CATEGORY_CALL:
        x.kind = insn_kind::call;
        break;
      case ZYDIS_CATEGORY_UNCOND_BR:
        x.kind = insn_kind::jmp;
        break;
      case ZYDIS_CATEGORY_COND_BR:
        x.kind = insn_kind::jcc;
        break;
      default:
        break;
    }
    if (x.kind != insn_kind::other && in.operand_count_visible > 0 &&
        ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE && ops[0].imm.is_relative) {
      ZyanU64 abs = 0;
      if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&in, &ops[0], x.addr.value(), &abs))) {
        x.target = file_addr(abs);
      }
    }
    for (unsigned i = 0; i < in.operand_count_visible; ++i) {
      if (ops[i].type != ZYDIS_OPERAND_TYPE_MEMORY || ops[i].mem.base != ZYDIS_REGISTER_RIP)
        continue;
      ZyanU64 abs = 0;
      if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&in, &ops[i], x.addr.value(), &abs)))
        x.memory = file_addr(abs);
    }
    out.push_back(x);
    off += in.length;
  }
  return out;
}

file_addr after_stack_check(const std::vector<x86_insn>& insns, std::span<const std::byte> code,
                            file_addr entry) {
  // The check opens the function: cmp rsp,[r14+0x10]; or lea r12,[rsp-N] first; or, for
  // huge frames, mov r12,rsp; sub r12,N; jb; cmp r12,[r14+0x10]. Eight instructions cover all.
  ZydisDecodedInstruction in;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  ZydisRegister g_reg = ZYDIS_REGISTER_R14;
  for (std::size_t i = 0; i < insns.size() && i < 8; ++i) {
    std::size_t off = static_cast<std::size_t>(insns[i].addr - entry);
    if (!ZYAN_SUCCESS(
            ZydisDecoderDecodeFull(&decoder(), code.data() + off, code.size() - off, &in, ops))) {
      break;
    }
    if (in.mnemonic == ZYDIS_MNEMONIC_MOV && in.operand_count_visible == 2 &&
        ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER && ops[1].type == ZYDIS_OPERAND_TYPE_MEMORY &&
        ops[1].mem.segment == ZYDIS_REGISTER_FS) {
      g_reg = ops[0].reg.value;
      continue;
    }
    if (in.mnemonic == ZYDIS_MNEMONIC_CMP && in.operand_count_visible == 2 &&
        (is_stackguard(ops[0], g_reg) || is_stackguard(ops[1], g_reg)) && i + 1 < insns.size() &&
        insns[i + 1].kind == insn_kind::jcc) {
      const x86_insn& j = insns[i + 1];
      return j.addr + j.length;
    }
  }
  return entry;
}

entry_trap plan_entry_trap(const std::vector<x86_insn>& insns, std::span<const std::byte> code,
                           file_addr entry, file_addr at) {
  entry_trap t{at, 0};
  auto index =
      std::find_if(insns.begin(), insns.end(), [&](const x86_insn& x) { return x.addr == at; });
  auto landed_on = [&](file_addr a) {
    return std::any_of(insns.begin(), insns.end(),
                       [&](const x86_insn& x) { return x.target == a; });
  };
  ZydisDecodedInstruction in;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  for (; index != insns.end() && std::next(index) != insns.end(); ++index) {
    const x86_insn& next = *std::next(index);
    if (index->length != 1 || next.kind != insn_kind::other || landed_on(next.addr)) break;
    const std::size_t off = static_cast<std::size_t>(index->addr - entry);
    if (!ZYAN_SUCCESS(
            ZydisDecoderDecodeFull(&decoder(), code.data() + off, code.size() - off, &in, ops)) ||
        in.mnemonic != ZYDIS_MNEMONIC_PUSH || ops[0].type != ZYDIS_OPERAND_TYPE_REGISTER) {
      break;
    }
    t.pushed += in.operand_width / 8;
    t.addr = next.addr;
  }
  return t;
}

}  // namespace gomaptrace
