// DWARF struct layouts (src/binary/dwarf.cpp through libdwarf, and the layout checks in
// src/golang/runtime_layout.cpp that consume them). Inputs are ELF files holding the
// .debug_* (or compressed .zdebug_*) sections of a Go build.
#include <cstdint>

#include "fuzz_support.hpp"
#include "gomaptrace/dwarf.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/runtime_layout.hpp"

using namespace gomaptrace;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::memory_file file(data, size);
  try {
    auto loaded = dwarf_info::load(file.path());
    if (!loaded || !*loaded) return 0;
    const dwarf_info& d = **loaded;
    d.producer();
    for (const char* name :
         {"runtime.hmap", "internal/runtime/maps.Map", "internal/runtime/maps.table", "runtime.g",
          "internal/abi.Type", "runtime._type", "runtime.moduledata"}) {
      if (auto s = d.find_struct(name)) s->field("count");
    }
    // The consumer: what the tracer would build from these structs for a classic and a Swiss
    // release (fatal_error when the DWARF does not fit and the table has no such version).
    for (auto [minor, impl] : {std::pair{23, map_impl::classic}, std::pair{26, map_impl::swiss}}) {
      go_version v{1, minor, 0, "go1." + std::to_string(minor)};
      resolve_runtime_layout(v, impl, &d);
    }
  } catch (const fatal_error&) {
  }
  return 0;
}
