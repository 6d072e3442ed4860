// Type names decoded from tracee memory (src/golang/type_name.cpp) through a fake reader over
// the input. Input: byte 0 picks the Go release's layout and whether reads past the image
// fail or come back short, bytes 1-4 the type descriptor's and the types base's offsets, the
// rest is the memory image at `base`.
#include <cstdint>
#include <cstring>

#include "gomaptrace/error.hpp"
#include "gomaptrace/runtime_layout.hpp"
#include "gomaptrace/type_name.hpp"

using namespace gomaptrace;

namespace {
constexpr std::uint64_t base = 0x10000;

const runtime_layout& layout_for(std::uint8_t pick) {
  // One layout per shape of the type descriptor: runtime._type (1.17-1.20) and abi.Type.
  static const runtime_layout layouts[] = {
      table_layout(go_version{1, 17, 0, "go1.17"}, map_impl::classic),
      table_layout(go_version{1, 20, 0, "go1.20"}, map_impl::classic),
      table_layout(go_version{1, 23, 0, "go1.23"}, map_impl::classic),
      table_layout(go_version{1, 26, 0, "go1.26"}, map_impl::swiss),
  };
  return layouts[pick % std::size(layouts)];
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 5) return 0;
  const std::uint8_t pick = data[0];
  const bool short_reads = pick & 0x80;
  std::uint16_t type_off, types_off;
  std::memcpy(&type_off, data + 1, 2);
  std::memcpy(&types_off, data + 3, 2);
  const std::uint8_t* image = data + 5;
  const std::size_t image_size = size - 5;
  memory_reader read = [&](std::uint64_t addr,
                           std::size_t len) -> expected<std::vector<std::byte>> {
    if (addr < base || addr - base >= image_size) return unexpected(std::string("unmapped"));
    const std::size_t off = addr - base;
    if (len > image_size - off) {
      if (!short_reads) return unexpected(std::string("partial"));
      len = image_size - off;  // process_vm_readv stops at the end of a mapping
    }
    std::vector<std::byte> out(len);
    std::memcpy(out.data(), image + off, len);
    return out;
  };
  try {
    (void)decode_type_name(read, base + type_off, base + types_off, layout_for(pick));
  } catch (const fatal_error&) {
  }
  return 0;
}
