// .gopclntab (src/binary/pclntab.cpp): header, function table, pc-value tables, file names,
// inline trees and the moduledata search. Inputs are whole ELF files; the corpus script
// makes small ones holding only the sections the parser reads.
#include <cstdint>

#include "fuzz_support.hpp"
#include "gomaptrace/elf.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/pclntab.hpp"

using namespace gomaptrace;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::memory_file file(data, size);
  try {
    auto elf = elf_file::open(file.path());
    auto pcln = pclntab::parse(*elf);
    const auto& funcs = pcln->functions();
    // Every function would be slow on real tables; a spread of them reaches every format path.
    const std::size_t step = funcs.size() / 64 + 1;
    for (std::size_t i = 0; i < funcs.size(); i += step) {
      const go_func& f = funcs[i];
      for (file_addr pc :
           {f.entry, f.entry + static_cast<std::int64_t>((f.end - f.entry) / 2), f.end - 1}) {
        pcln->symbolize(pc);
        pcln->line_at(pc);
        pcln->function_at(pc);
      }
      if (pcln->find(f.name) == nullptr) __builtin_trap();
    }
    pcln->inlined_into({"runtime.makemap", "runtime.mapassign", "runtime.makemap_small",
                        "internal/runtime/maps.(*table).grow"});
    (void)pcln->gofunc();
    (void)pcln->text_start();
  } catch (const fatal_error&) {
  }
  return 0;
}
