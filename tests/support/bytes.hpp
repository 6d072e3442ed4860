#pragma once
// Machine code written out in tests: bytes({0x48, 0x89, 0xe5}) is `mov rbp, rsp`.
#include <cstddef>
#include <initializer_list>
#include <vector>

namespace gomaptrace::testing {

inline std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(std::byte(b));
  return out;
}

}  // namespace gomaptrace::testing
