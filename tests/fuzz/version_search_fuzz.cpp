// The Go version search (src/binary/buildinfo.cpp find_go_version_string): .go.buildinfo, the
// runtime.buildVersion symbol, and, for binaries without either, the string header that
// runtime.schedinit tests, found by decoding schedinit's code through .gopclntab and
// following its RIP-relative operand into the data (a PIE's pointer via its relocation); with
// none of those, the release inferred from the runtime's functions (release_inference.cpp).
#include <cstdint>

#include "fuzz_support.hpp"
#include "gomaptrace/buildinfo.hpp"
#include "gomaptrace/elf.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/go_version.hpp"
#include "gomaptrace/pclntab.hpp"
#include "gomaptrace/release_inference.hpp"

using namespace gomaptrace;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::memory_file file(data, size);
  try {
    auto elf = elf_file::open(file.path());
    auto pcln = pclntab::parse(*elf);
    if (auto v = find_go_version_string(*elf, *pcln))
      go_version::parse(v->text);
    else
      (void)infer_release(*pcln);
  } catch (const fatal_error&) {
  }
  return 0;
}
