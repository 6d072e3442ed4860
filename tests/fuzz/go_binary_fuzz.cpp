// The whole analysis gomaptrace runs before tracing (src/golang/go_binary.cpp): ELF, version,
// map implementation, pclntab, moduledata, DWARF or table layouts, probe resolution with the
// x86 decoder. Inputs are whole ELF files.
#include <cstdint>

#include "fuzz_support.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/go_binary.hpp"

using namespace gomaptrace;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::memory_file file(data, size);
  try {
    auto bin = go_binary::open(file.path());
    std::string why;
    bin->traceable(&why);
  } catch (const fatal_error&) {
  }
  return 0;
}
