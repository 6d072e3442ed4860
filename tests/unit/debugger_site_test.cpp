// Pure parts of the breakpoint machinery: instruction planning, slot relocation, condition
// codes (checked against the CPU itself) and slot page placement.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gomaptrace/breakpoint_site.hpp"
#include "gomaptrace/ool_page.hpp"
#include "gomaptrace/site_table.hpp"
#include "support/bytes.hpp"

namespace gomaptrace {
namespace {

using testing::bytes;

using kind = displaced_instruction::kind;

TEST(DebuggerSite, PlansEmulationForPositionDependentInstructions) {
  const virt_addr at(0x401000);
  auto ret = plan_displacement(at, bytes({0xc3}));
  ASSERT_TRUE(ret) << ret.error();
  EXPECT_EQ(ret->how, kind::emulate_ret);
  EXPECT_EQ(ret->length, 1);

  auto ret_imm = plan_displacement(at, bytes({0xc2, 0x10, 0x00}));
  ASSERT_TRUE(ret_imm);
  EXPECT_EQ(ret_imm->ret_pop, 16);

  // call rel32 -0x100: target = next (0x401005) - 0x100
  auto call = plan_displacement(at, bytes({0xe8, 0x00, 0xff, 0xff, 0xff}));
  ASSERT_TRUE(call);
  EXPECT_EQ(call->how, kind::emulate_call);
  EXPECT_EQ(call->target, 0x401005u - 0x100u);

  // jne rel8 +0x12 (opcode 0x75: condition code 5)
  auto jne = plan_displacement(at, bytes({0x75, 0x12}));
  ASSERT_TRUE(jne);
  EXPECT_EQ(jne->how, kind::emulate_jcc);
  EXPECT_EQ(jne->condition, 5);
  EXPECT_EQ(jne->target, 0x401002u + 0x12u);

  // jbe rel32 (0f 86): condition code 6
  auto jbe = plan_displacement(at, bytes({0x0f, 0x86, 0x10, 0x00, 0x00, 0x00}));
  ASSERT_TRUE(jbe);
  EXPECT_EQ(jbe->condition, 6);
  EXPECT_EQ(jbe->target, 0x401006u + 0x10u);

  auto jmp = plan_displacement(at, bytes({0xeb, 0xfe}));
  ASSERT_TRUE(jmp);
  EXPECT_EQ(jmp->how, kind::emulate_jmp);
  EXPECT_EQ(jmp->target, 0x401000u);

  auto call_r11 = plan_displacement(at, bytes({0x41, 0xff, 0xd3}));
  ASSERT_TRUE(call_r11);
  EXPECT_EQ(call_r11->how, kind::emulate_call_reg);
  EXPECT_EQ(call_r11->reg, 11);
}

TEST(DebuggerSite, RejectsWhatCannotBeDisplaced) {
  const virt_addr at(0x401000);
  EXPECT_FALSE(plan_displacement(at, bytes({0xcc})));                    // int3
  EXPECT_FALSE(plan_displacement(at, bytes({0xe2, 0x10})));              // loop
  EXPECT_FALSE(plan_displacement(at, bytes({0xe3, 0x10})));              // jrcxz
  EXPECT_FALSE(plan_displacement(at, bytes({0xff, 0x15, 0, 0, 0, 0})));  // call [rip+0]
  EXPECT_FALSE(plan_displacement(at, bytes({0x0f, 0xff})));              // ud0 without modrm
  EXPECT_FALSE(plan_displacement(at, bytes({0x0f, 0x05})));              // syscall
  EXPECT_FALSE(plan_displacement(at, bytes({0xcd, 0x80})));              // int 0x80
}

TEST(DebuggerSite, RelocatesRipRelativeOperandToTheSameAbsoluteAddress) {
  // lock add qword ptr [rip+0x2a77], 1 at 0x401740 -> target 0x4041c0 (from objdump)
  const virt_addr at(0x401740);
  auto d = plan_displacement(at, bytes({0xf0, 0x48, 0x83, 0x05, 0x77, 0x2a, 0x00, 0x00, 0x01}));
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->how, kind::out_of_line);
  EXPECT_TRUE(d->rip_relative);
  EXPECT_EQ(d->length, 9);
  const virt_addr slot(0x3ff000);
  auto s = build_slot(*d, at, slot);
  ASSERT_TRUE(s) << s.error();
  ASSERT_EQ(s->size(), slot_size(*d));
  std::int32_t disp;
  std::memcpy(&disp, s->data() + d->disp_offset, 4);
  EXPECT_EQ(slot.value() + 9 + static_cast<std::int64_t>(disp), 0x4041c0u);
  // Everything but the displacement is unchanged, then jmp [rip+0]; dq next.
  EXPECT_EQ((*s)[0], std::byte{0xf0});
  EXPECT_EQ((*s)[8], std::byte{0x01});
  EXPECT_EQ((*s)[9], std::byte{0xff});
  EXPECT_EQ((*s)[10], std::byte{0x25});
  std::uint64_t next;
  std::memcpy(&next, s->data() + 15, 8);
  EXPECT_EQ(next, 0x401749u);

  EXPECT_FALSE(build_slot(*d, at, virt_addr(0x401740 + (std::uint64_t{3} << 30))));
}

TEST(DebuggerSite, PlainInstructionKeepsItsBytes) {
  const virt_addr at(0x401000);
  auto d = plan_displacement(at, bytes({0x48, 0x83, 0xec, 0x28}));  // sub rsp, 0x28
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->rip_relative);
  auto s = build_slot(*d, at, virt_addr(0x7f0000000000));
  ASSERT_TRUE(s);
  EXPECT_EQ(std::vector<std::byte>(s->begin(), s->begin() + 4), bytes({0x48, 0x83, 0xec, 0x28}));
}

// The CPU is the truth for condition codes: evaluate every cc with setcc on real flags.
bool cpu_condition(int cc, std::uint64_t flags) {
  unsigned char r = 0;
#define SETCC(n, insn)                                                             \
  case n:                                                                          \
    asm volatile("push %1\n\tpopfq\n\t" insn " %0" : "=q"(r) : "r"(flags) : "cc"); \
    break;
  switch (cc) {
    SETCC(0, "seto")
    SETCC(1, "setno")
    SETCC(2, "setb") SETCC(3, "setae") SETCC(4, "sete") SETCC(5, "setne") SETCC(6, "setbe")
        SETCC(7, "seta") SETCC(8, "sets") SETCC(9, "setns") SETCC(10, "setp") SETCC(11, "setnp")
            SETCC(12, "setl") SETCC(13, "setge") SETCC(14, "setle") SETCC(15, "setg")
  }
#undef SETCC
  return r != 0;
}

TEST(DebuggerSite, ConditionCodesMatchTheCpu) {
  const std::uint64_t bits[] = {1u << 0, 1u << 2, 1u << 6, 1u << 7, 1u << 11};  // CF PF ZF SF OF
  for (int m = 0; m < 32; ++m) {
    std::uint64_t flags = 0x202;  // IF and the always-one bit
    for (int b = 0; b < 5; ++b)
      if (m & (1 << b)) flags |= bits[b];
    for (int cc = 0; cc < 16; ++cc)
      EXPECT_EQ(condition_holds(cc, flags), cpu_condition(cc, flags))
          << "cc " << cc << " flags " << flags;
  }
}

TEST(DebuggerSite, EmulatesCallAndRetOnRegistersAndStack) {
  std::uint64_t stack[4] = {0, 0, 0, 0x401234};
  const std::uint64_t base = 0x7ff000;  // pretend address of stack[0]
  emulation_memory mem{
      [&](virt_addr a) -> expected<std::uint64_t> { return stack[(a.value() - base) / 8]; },
      [&](virt_addr a, std::uint64_t v) -> expected<void> {
        stack[(a.value() - base) / 8] = v;
        return {};
      }};
  registers regs;
  regs.raw().rsp = base + 24;
  auto ret = plan_displacement(virt_addr(0x500000), bytes({0xc3}));
  ASSERT_TRUE(emulate(*ret, virt_addr(0x500000), regs, mem));
  EXPECT_EQ(regs.rip(), 0x401234u);
  EXPECT_EQ(regs.rsp(), base + 32);

  regs.raw().rsp = base + 24;
  auto call = plan_displacement(virt_addr(0x500000), bytes({0xe8, 0x10, 0, 0, 0}));
  ASSERT_TRUE(emulate(*call, virt_addr(0x500000), regs, mem));
  EXPECT_EQ(regs.rip(), 0x500015u);
  EXPECT_EQ(regs.rsp(), base + 16);
  EXPECT_EQ(stack[2], 0x500005u);

  // call rsp: the target is RSP before the push.
  regs.raw().rsp = base + 24;
  auto call_rsp = plan_displacement(virt_addr(0x500000), bytes({0xff, 0xd4}));
  ASSERT_TRUE(call_rsp);
  ASSERT_TRUE(emulate(*call_rsp, virt_addr(0x500000), regs, mem));
  EXPECT_EQ(regs.rip(), base + 24);
}

// Go's `mov rbp, rsp` (where an entry int3 goes since Go 1.21) and every other 64-bit
// register-to-register mov are carried out on the registers: no slot, no memory. Narrower
// moves (they zero or keep upper bits) and moves from memory still run out of line.
TEST(DebuggerSite, EmulatesRegisterToRegisterMoves) {
  emulation_memory no_memory{
      [](virt_addr) -> expected<std::uint64_t> { return unexpected("no memory access"); },
      [](virt_addr, std::uint64_t) -> expected<void> { return unexpected("no memory access"); }};
  registers regs;
  regs.raw().rsp = 0xc000123450;
  regs.raw().rbp = 0xc000999990;
  auto mov = plan_displacement(virt_addr(0x40f0cb), bytes({0x48, 0x89, 0xe5}));  // mov rbp,rsp
  ASSERT_TRUE(mov) << mov.error();
  EXPECT_EQ(mov->how, kind::emulate_mov_reg);
  ASSERT_TRUE(emulate(*mov, virt_addr(0x40f0cb), regs, no_memory));
  EXPECT_EQ(regs.rbp(), 0xc000123450u);
  EXPECT_EQ(regs.rsp(), 0xc000123450u);
  EXPECT_EQ(regs.rip(), 0x40f0ceu);
  // mov r11, rax in the other encoding (8b /r): r11 = rax.
  regs.raw().rax = 42;
  auto mov_r11 = plan_displacement(virt_addr(0x1000), bytes({0x4c, 0x8b, 0xd8}));
  ASSERT_TRUE(mov_r11) << mov_r11.error();
  EXPECT_EQ(mov_r11->how, kind::emulate_mov_reg);
  ASSERT_TRUE(emulate(*mov_r11, virt_addr(0x1000), regs, no_memory));
  EXPECT_EQ(regs.r11(), 42u);
  EXPECT_EQ(regs.rip(), 0x1003u);
  EXPECT_EQ(plan_displacement(virt_addr(0x1000), bytes({0x89, 0xe5}))->how,  // mov ebp, esp
            kind::out_of_line);
  EXPECT_EQ(plan_displacement(virt_addr(0x1000), bytes({0x48, 0x8b, 0x28}))->how,  // [rax]
            kind::out_of_line);
}

TEST(DebuggerSite, SlotPageGoesBelowTheCodeWithinReach) {
  const char* maps =
      "00400000-00401000 r--p 00000000 08:01 1 /bin/prog\n"
      "00401000-00480000 r-xp 00001000 08:01 1 /bin/prog\n"
      "00480000-00490000 rw-p 00080000 08:01 1 /bin/prog\n"
      "00490000-004b0000 rw-p 00000000 00:00 0 [heap]\n"
      "7ffff7dd0000-7ffff7df0000 r-xp 00000000 08:01 2 /lib/ld.so\n"
      "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]\n";
  auto regions = parse_proc_maps(maps);
  ASSERT_EQ(regions.size(), 6u);
  EXPECT_EQ(regions[3].path, "[heap]");
  auto c = ool_page_candidates(regions, virt_addr(0x401740), 0x1000);
  ASSERT_FALSE(c.empty());
  EXPECT_EQ(c[0], virt_addr(0x3ff000));
  for (auto a : c) {
    EXPECT_TRUE(within_rel32(virt_addr(0x401740), a));
    EXPECT_NE(a, virt_addr(0x4b0000));  // never right above the heap (brk grows there)
    for (auto& r : regions) EXPECT_FALSE(a.value() < r.end && a.value() + 0x1000 > r.start);
  }
  ool_page page(virt_addr(0x3ff000), 0x1000);
  auto s1 = page.allocate(23), s2 = page.allocate(23);
  ASSERT_TRUE(s1 && s2);
  EXPECT_EQ(*s1, virt_addr(0x3ff000));
  EXPECT_EQ(*s2, virt_addr(0x3ff020));
  int n = 2;
  while (page.allocate(23)) ++n;
  EXPECT_EQ(n, 0x1000 / 32);
}

// The table a fork child adopts: lookups by int3 and by slot, original bytes patched into
// reads and written back through a file descriptor standing in for /proc/PID/mem, and a copy
// that keeps every id.
TEST(DebuggerSite, SiteTableFindsPatchesRestoresAndCopies) {
  site_table t;
  auto sub = plan_displacement(virt_addr(0x1010), bytes({0x48, 0x83, 0xec, 0x28}));  // sub rsp
  auto ret = plan_displacement(virt_addr(0x1020), bytes({0xc3}));
  ASSERT_TRUE(sub && ret);
  auto slot = t.allocate_slot(virt_addr(0x1010), slot_size(*sub));
  EXPECT_FALSE(slot);  // no page yet: the process maps one
  slot = t.add_page(ool_page(virt_addr(0x3000), 0x1000), slot_size(*sub));
  ASSERT_TRUE(slot);
  EXPECT_EQ(t.add(virt_addr(0x1010), *sub, *slot, std::byte{0x48}), 1u);
  EXPECT_EQ(t.add(virt_addr(0x1020), *ret, virt_addr(0), std::byte{0xc3}), 2u);
  ASSERT_NE(t.at(virt_addr(0x1020)), nullptr);
  EXPECT_EQ(t.at(virt_addr(0x1020))->id, 2u);
  EXPECT_EQ(t.at(virt_addr(0x1011)), nullptr);
  EXPECT_EQ(t.of_slot(*slot + 5)->id, 1u);
  EXPECT_EQ(t.of_slot(*slot + slot_size(*sub)), nullptr);
  EXPECT_EQ(t.of_slot(virt_addr(0x1020)), nullptr);  // emulated: no slot

  std::vector<std::byte> read(0x20, std::byte{0xcc});
  t.patch_reads(virt_addr(0x1008), read);
  EXPECT_EQ(read[0x08], std::byte{0x48});
  EXPECT_EQ(read[0x18], std::byte{0xc3});
  EXPECT_EQ(read[0x07], std::byte{0xcc});  // not ours: left as read
  EXPECT_EQ(read[0x1f], std::byte{0xcc});

  const site_table child = t;  // what a follower of a fork child starts from
  t.clear();
  EXPECT_TRUE(t.empty());
  EXPECT_TRUE(t.pages().empty());
  ASSERT_EQ(child.size(), 2u);
  EXPECT_EQ(child.at(virt_addr(0x1010))->id, 1u);
  EXPECT_EQ(child.of_slot(*slot)->id, 1u);
  EXPECT_EQ(child.pages().size(), 1u);

  const int fd = ::memfd_create("mem", 0);
  ASSERT_GE(fd, 0);
  std::vector<std::byte> image(0x1100, std::byte{0xcc});
  ASSERT_EQ(::pwrite(fd, image.data(), image.size(), 0), static_cast<ssize_t>(image.size()));
  EXPECT_TRUE(child.restore_originals(fd));
  ASSERT_EQ(::pread(fd, image.data(), image.size(), 0), static_cast<ssize_t>(image.size()));
  EXPECT_EQ(image[0x1010], std::byte{0x48});
  EXPECT_EQ(image[0x1020], std::byte{0xc3});
  EXPECT_EQ(image[0x1011], std::byte{0xcc});
  ::close(fd);
  EXPECT_FALSE(child.restore_originals(-1));
}

}  // namespace
}  // namespace gomaptrace
