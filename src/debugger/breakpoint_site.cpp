#include "gomaptrace/breakpoint_site.hpp"

#include <Zydis/Zydis.h>
#include <fmt/core.h>

#include <cstring>
#include <limits>

namespace gomaptrace {

namespace {

int condition_of(ZydisMnemonic m) {
  switch (m) {
    case ZYDIS_MNEMONIC_JO:
      return 0;
    case ZYDIS_MNEMONIC_JNO:
      return 1;
    case ZYDIS_MNEMONIC_JB:
      return 2;
    case ZYDIS_MNEMONIC_JNB:
      return 3;
    case ZYDIS_MNEMONIC_JZ:
      return 4;
    case ZYDIS_MNEMONIC_JNZ:
      return 5;
    case ZYDIS_MNEMONIC_JBE:
      return 6;
    case ZYDIS_MNEMONIC_JNBE:
      return 7;
    case ZYDIS_MNEMONIC_JS:
      return 8;
    case ZYDIS_MNEMONIC_JNS:
      return 9;
    case ZYDIS_MNEMONIC_JP:
      return 10;
    case ZYDIS_MNEMONIC_JNP:
      return 11;
    case ZYDIS_MNEMONIC_JL:
      return 12;
    case ZYDIS_MNEMONIC_JNL:
      return 13;
    case ZYDIS_MNEMONIC_JLE:
      return 14;
    case ZYDIS_MNEMONIC_JNLE:
      return 15;
    default:
      return -1;
  }
}

std::string format_insn(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops,
                        std::uint64_t addr) {
  ZydisFormatter f;
  ZydisFormatterInit(&f, ZYDIS_FORMATTER_STYLE_INTEL);
  char buf[128];
  if (ZYAN_FAILED(ZydisFormatterFormatInstruction(&f, &insn, ops, insn.operand_count_visible, buf,
                                                  sizeof buf, addr, nullptr)))
    return "?";
  return buf;
}

}  // namespace

expected<displaced_instruction> plan_displacement(virt_addr addr, std::span<const std::byte> code) {
  ZydisDecoder dec;
  ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code.data(), code.size(), &insn, ops)))
    return unexpected(fmt::format("no valid instruction at {:#x}", addr.value()));

  displaced_instruction d;
  d.length = insn.length;
  std::memcpy(d.bytes.data(), code.data(), insn.length);
  d.text = format_insn(insn, ops, addr.value());
  auto fail = [&](const char* why) {
    return unexpected(fmt::format("cannot break at {:#x} ({}): {}", addr.value(), d.text, why));
  };
  if (insn.mnemonic == ZYDIS_MNEMONIC_INT3) return fail("there is an int3 already");
  // A thread caught at a slot's start is single-stepped while the tracer waits for it alone;
  // a system call there could block on a thread that is stopped, and the tracer with it.
  if (insn.meta.category == ZYDIS_CATEGORY_SYSCALL || insn.mnemonic == ZYDIS_MNEMONIC_INT ||
      insn.mnemonic == ZYDIS_MNEMONIC_SYSENTER)
    return fail("system call instruction");

  const ZydisDecodedOperand* rel_imm = nullptr;
  for (int i = 0; i < insn.operand_count; ++i)
    if (ops[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE && ops[i].imm.is_relative) rel_imm = &ops[i];

  switch (insn.meta.category) {
    case ZYDIS_CATEGORY_RET:
      if (insn.mnemonic != ZYDIS_MNEMONIC_RET) return fail("far/interrupt return");
      d.how = displaced_instruction::kind::emulate_ret;
      if (insn.operand_count_visible > 0 && ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
        d.ret_pop = static_cast<std::uint16_t>(ops[0].imm.value.u);
      return d;
    case ZYDIS_CATEGORY_UNCOND_BR:
    case ZYDIS_CATEGORY_COND_BR:
    case ZYDIS_CATEGORY_CALL: {
      const bool is_call = insn.meta.category == ZYDIS_CATEGORY_CALL;
      if (rel_imm) {
        ZyanU64 target = 0;
        if (ZYAN_FAILED(ZydisCalcAbsoluteAddress(&insn, rel_imm, addr.value(), &target)))
          return fail("cannot compute the branch target");
        d.target = target;
        if (is_call) {
          d.how = displaced_instruction::kind::emulate_call;
        } else if (insn.mnemonic == ZYDIS_MNEMONIC_JMP) {
          d.how = displaced_instruction::kind::emulate_jmp;
        } else {
          d.condition = condition_of(insn.mnemonic);
          if (d.condition < 0) return fail("loop/jrcxz-style branch is not supported");
          d.how = displaced_instruction::kind::emulate_jcc;
        }
        return d;
      }
      if (is_call) {
        // call through a register: the pushed return address would point into the slot.
        if (insn.mnemonic == ZYDIS_MNEMONIC_CALL && ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
            ops[0].size == 64) {
          d.how = displaced_instruction::kind::emulate_call_reg;
          d.reg = ZydisRegisterGetId(ops[0].reg.value);
          return d;
        }
        return fail("indirect call through memory is not supported");
      }
      if (insn.meta.category == ZYDIS_CATEGORY_COND_BR) return fail("conditional branch form");
      break;  // jmp reg / jmp [mem]: position independent, runs out of line (relocated)
    }
    default:
      break;
  }
  auto gpr64 = [&](const ZydisDecodedOperand& op) {
    return op.type == ZYDIS_OPERAND_TYPE_REGISTER &&
           ZydisRegisterGetClass(op.reg.value) == ZYDIS_REGCLASS_GPR64;
  };
  if (insn.mnemonic == ZYDIS_MNEMONIC_MOV && insn.operand_count_visible == 2 && gpr64(ops[0]) &&
      gpr64(ops[1])) {
    d.how = displaced_instruction::kind::emulate_mov_reg;
    d.dst_reg = ZydisRegisterGetId(ops[0].reg.value);
    d.reg = ZydisRegisterGetId(ops[1].reg.value);
    return d;
  }
  if (rel_imm) return fail("relative operand that cannot be relocated");
  for (int i = 0; i < insn.operand_count; ++i) {
    if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.base == ZYDIS_REGISTER_RIP) {
      if (insn.raw.disp.size != 32) return fail("RIP-relative operand without disp32");
      d.rip_relative = true;
      d.disp_offset = insn.raw.disp.offset;
    }
  }
  d.how = displaced_instruction::kind::out_of_line;
  return d;
}

expected<std::vector<std::byte>> build_slot(const displaced_instruction& d, virt_addr addr,
                                            virt_addr slot) {
  if (d.emulated()) return unexpected("an emulated instruction has no slot");
  std::vector<std::byte> out(d.bytes.begin(), d.bytes.begin() + d.length);
  if (d.rip_relative) {
    std::int32_t disp;
    std::memcpy(&disp, out.data() + d.disp_offset, 4);
    // Same absolute target: addr + len + disp == slot + len + new_disp.
    const std::int64_t moved = static_cast<std::int64_t>(disp) + (addr - slot);
    if (moved < std::numeric_limits<std::int32_t>::min() ||
        moved > std::numeric_limits<std::int32_t>::max())
      return unexpected(
          fmt::format("slot {:#x} is out of rel32 reach of {:#x}", slot.value(), addr.value()));
    const auto nd = static_cast<std::int32_t>(moved);
    std::memcpy(out.data() + d.disp_offset, &nd, 4);
  }
  // jmp qword ptr [rip+0]; dq next: reaches anywhere, needs no scratch register.
  const std::uint8_t jmp[6] = {0xff, 0x25, 0, 0, 0, 0};
  for (auto b : jmp) out.push_back(std::byte{b});
  const std::uint64_t next = addr.value() + d.length;
  for (int i = 0; i < 8; ++i) out.push_back(std::byte(static_cast<std::uint8_t>(next >> (8 * i))));
  return out;
}

bool condition_holds(int cc, std::uint64_t f) {
  const bool cf = f & (1u << 0), pf = f & (1u << 2), zf = f & (1u << 6), sf = f & (1u << 7),
             of = f & (1u << 11);
  bool r = false;
  switch (cc >> 1) {
    case 0:
      r = of;
      break;
    case 1:
      r = cf;
      break;
    case 2:
      r = zf;
      break;
    case 3:
      r = cf || zf;
      break;
    case 4:
      r = sf;
      break;
    case 5:
      r = pf;
      break;
    case 6:
      r = sf != of;
      break;
    case 7:
      r = zf || (sf != of);
      break;
  }
  return (cc & 1) ? !r : r;
}

expected<void> emulate(const displaced_instruction& d, virt_addr addr, registers& regs,
                       const emulation_memory& mem) {
  auto& r = regs.raw();
  const std::uint64_t next = addr.value() + d.length;
  using k = displaced_instruction::kind;
  switch (d.how) {
    case k::emulate_ret: {
      auto ra = mem.read_u64(virt_addr(r.rsp));
      if (!ra) return unexpected(ra.error());
      r.rip = *ra;
      r.rsp += 8 + d.ret_pop;
      return {};
    }
    case k::emulate_jmp:
      r.rip = d.target;
      return {};
    case k::emulate_jcc:
      r.rip = condition_holds(d.condition, r.eflags) ? d.target : next;
      return {};
    case k::emulate_call:
    case k::emulate_call_reg: {
      // Read the register before RSP moves (call rsp uses the old value).
      const std::uint64_t target = d.how == k::emulate_call ? d.target : regs.gpr(d.reg);
      auto w = mem.write_u64(virt_addr(r.rsp - 8), next);
      if (!w) return w;
      r.rsp -= 8;
      r.rip = target;
      return {};
    }
    case k::emulate_mov_reg:
      regs.set_gpr(d.dst_reg, regs.gpr(d.reg));
      r.rip = next;
      return {};
    case k::out_of_line:
      break;
  }
  return unexpected("instruction is not emulated");
}

}  // namespace gomaptrace
