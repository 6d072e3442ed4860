// Where the entry int3 goes, on prologues as Go emits them (bytes from `go tool objdump` of
// runtime.mapassign_fast64 in Go 1.26 and 1.19 builds; the e2e test
// inspect.probes_match_go_objdump_for_every_build checks every build of the matrix).
#include "gomaptrace/x86.hpp"
#include "support/bytes.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace gomaptrace {
namespace {

using testing::bytes;

const file_addr entry(0x40f0c0);

entry_trap plan(const std::vector<std::byte>& code) {
  const auto insns = decode_linear(code, entry);
  return plan_entry_trap(insns, code, entry, after_stack_check(insns, code, entry));
}

// cmp rsp,[r14+0x10]; jbe +0x40; push rbp; mov rbp,rsp; sub rsp,0x28; ...
const std::vector<std::byte> go126 = bytes({0x49, 0x3b, 0x66, 0x10, 0x76, 0x40, 0x55, 0x48, 0x89,
                                            0xe5, 0x48, 0x83, 0xec, 0x28, 0x90, 0x90});

TEST(X86, EntryInt3GoesPastTheOneBytePushRbp) {
  const entry_trap t = plan(go126);
  EXPECT_EQ(t.addr, entry + 7);  // mov rbp, rsp
  EXPECT_EQ(t.pushed, 8u);       // one 64-bit push: the return address is at [rsp+8]
}

TEST(X86, EntryInt3StaysOnAMultiByteInstruction) {
  // Go 1.17-1.20: cmp rsp,[r14+0x10]; jbe; sub rsp,0x58; mov [rsp+0x50],rbp; lea rbp,[rsp+0x50]
  const auto go119 = bytes({0x49, 0x3b, 0x66, 0x10, 0x76, 0x40, 0x48, 0x83, 0xec, 0x58,
                            0x48, 0x89, 0x6c, 0x24, 0x50, 0x48, 0x8d, 0x6c, 0x24, 0x50});
  const entry_trap t = plan(go119);
  EXPECT_EQ(t.addr, entry + 6);
  EXPECT_EQ(t.pushed, 0u);
}

TEST(X86, EntryInt3StaysOnThePushWhenABranchLandsAfterIt) {
  // A thread jumping to the mov would hit the int3 there with a different stack: stay.
  auto code = go126;
  code[5] = std::byte{0x01};  // jbe +1: lands on the mov
  const entry_trap t = plan(code);
  EXPECT_EQ(t.addr, entry + 6);
  EXPECT_EQ(t.pushed, 0u);
}

TEST(X86, EntryInt3StaysOnThePushWhenABranchFollowsIt) {
  // push rbp; ret: a branch after the push is no place for the entry int3.
  const auto code = bytes({0x49, 0x3b, 0x66, 0x10, 0x76, 0x40, 0x55, 0xc3});
  const entry_trap t = plan(code);
  EXPECT_EQ(t.addr, entry + 6);
  EXPECT_EQ(t.pushed, 0u);
}

}  // namespace
}  // namespace gomaptrace
