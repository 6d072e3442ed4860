// layer: binary
#pragma once
// The Go build information a linker leaves in the binary (src/debug/buildinfo/buildinfo.go).
#include <optional>
#include <string>
#include <vector>

#include "gomaptrace/elf.hpp"

namespace gomaptrace {

// The Go version string ("go1.23.12") from .go.buildinfo (both the pre-1.18 pointer form and
// the 1.18+ inline varint form), falling back to the runtime.buildVersion symbol. nullopt
// when not found.
std::optional<std::string> read_go_version_string(const elf_file& elf);

// The settings of the 1.18+ module info ("build\tKEY=VALUE" lines), as "KEY=VALUE", e.g.
// "GOEXPERIMENT=noswissmap"; empty if there are none.
std::vector<std::string> read_build_settings(const elf_file& elf);

}  // namespace gomaptrace
