#include "gomaptrace/registers.hpp"

namespace gomaptrace {

std::uint64_t registers::gpr(int number) const {
  switch (number) {
    case 0:
      return r_.rax;
    case 1:
      return r_.rcx;
    case 2:
      return r_.rdx;
    case 3:
      return r_.rbx;
    case 4:
      return r_.rsp;
    case 5:
      return r_.rbp;
    case 6:
      return r_.rsi;
    case 7:
      return r_.rdi;
    case 8:
      return r_.r8;
    case 9:
      return r_.r9;
    case 10:
      return r_.r10;
    case 11:
      return r_.r11;
    case 12:
      return r_.r12;
    case 13:
      return r_.r13;
    case 14:
      return r_.r14;
    case 15:
      return r_.r15;
  }
  return 0;
}

void registers::set_gpr(int number, std::uint64_t value) {
  unsigned long long* by_number[] = {&r_.rax, &r_.rcx, &r_.rdx, &r_.rbx, &r_.rsp, &r_.rbp,
                                     &r_.rsi, &r_.rdi, &r_.r8,  &r_.r9,  &r_.r10, &r_.r11,
                                     &r_.r12, &r_.r13, &r_.r14, &r_.r15};
  if (number >= 0 && number < 16) *by_number[number] = value;
}

}  // namespace gomaptrace
