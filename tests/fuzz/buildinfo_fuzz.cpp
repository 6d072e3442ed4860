// .go.buildinfo (src/binary/buildinfo.cpp): the pre-1.18 pointer form, the 1.18+ varint form,
// the runtime.buildVersion fallback, the module info's settings, and the version parser.
#include <cstdint>

#include "fuzz_support.hpp"
#include "gomaptrace/buildinfo.hpp"
#include "gomaptrace/elf.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/go_version.hpp"

using namespace gomaptrace;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::memory_file file(data, size);
  try {
    auto elf = elf_file::open(file.path());
    if (auto v = read_go_version_string(*elf)) go_version::parse(*v);
    read_build_settings(*elf);
  } catch (const fatal_error&) {
  }
  return 0;
}
