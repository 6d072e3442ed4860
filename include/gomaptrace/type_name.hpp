// layer: golang
#pragma once
// A Go type's name ("map[string]int") from its runtime type descriptor, so the tracer can
// say which map type a makemap call creates without symbols. Works on plain addresses and a
// reader callback, so it is testable on a file as well as on a live process.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gomaptrace/expected.hpp"
#include "gomaptrace/runtime_layout.hpp"

namespace gomaptrace {

// Reads len bytes at addr (in whatever address space the caller chose), or says why not.
using memory_reader =
    std::function<expected<std::vector<std::byte>>(std::uint64_t addr, std::size_t len)>;

// The type's string as reflect prints it: name = types_base + type.Str (a nameOff), encoded as
// a flag byte, a uvarint length and the bytes (Go >= 1.17); a leading '*' is dropped when the
// type's tflag has TFlagExtraStar. types_base is the module's moduledata.types.
expected<std::string> decode_type_name(const memory_reader& read, std::uint64_t type_addr,
                                       std::uint64_t types_base, const runtime_layout& layout);

}  // namespace gomaptrace
