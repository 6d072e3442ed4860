// ELF and section handling (src/binary/elf.cpp): any bytes as an executable. A bad file must
// end in fatal_error; every span and read it hands out must stay inside the mapping.
#include <cstdint>

#include "fuzz_support.hpp"
#include "gomaptrace/elf.hpp"
#include "gomaptrace/error.hpp"

using namespace gomaptrace;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::memory_file file(data, size);
  try {
    auto elf = elf_file::open(file.path());
    unsigned sum = 0;  // touch the bytes so the sanitizers see every access
    for (const elf_section& s : elf->sections()) {
      auto d = elf->section_data(s);
      if (!d.empty())
        sum += std::to_integer<unsigned>(d.front()) + std::to_integer<unsigned>(d.back());
      if (elf->find_section(s.name) == nullptr) __builtin_trap();
      elf->section_at(s.addr);
      if (auto b = elf->read(s.addr, 8)) sum += std::to_integer<unsigned>((*b)[7]);
      elf->read(s.addr + static_cast<std::int64_t>(s.size ? s.size - 1 : 0), 2);
      elf->read_u64(s.addr + static_cast<std::int64_t>(s.size / 2));
    }
    std::size_t n = 0;
    for (const elf_symbol& sym : elf->symbols()) {
      if (++n > 256) break;
      if (elf->find_symbol(sym.name) == nullptr) __builtin_trap();
      elf->read(sym.addr, sym.size < 64 ? sym.size : 64);
    }
    for (const elf_relative_reloc& r : elf->relative_relocs()) {
      if (++n > 512) break;
      elf->read_u64(r.where);
    }
    elf->read_u64(elf->entry());
    return static_cast<int>(sum & 0);
  } catch (const fatal_error&) {
    return 0;  // the one way a bad file may end
  }
}
