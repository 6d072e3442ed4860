// layer: binary
#pragma once
// The Go build information a linker leaves in the binary (src/debug/buildinfo/buildinfo.go).
#include <optional>
#include <string>
#include <vector>

#include "gomaptrace/elf.hpp"
#include "gomaptrace/pclntab.hpp"

namespace gomaptrace {

// The Go version string ("go1.23.12") from .go.buildinfo (both the pre-1.18 pointer form and
// the 1.18+ inline varint form), falling back to the runtime.buildVersion symbol. nullopt
// when not found.
std::optional<std::string> read_go_version_string(const elf_file& elf);

struct go_version_string {
  std::string text;    // as the binary spells it: "go1.23.12", "go1.24.13 X:noswissmap"
  std::string source;  // where it was found, for inspect
};

// The Go version string, looked for in this order: .go.buildinfo; the runtime.buildVersion
// symbol; the string header runtime.schedinit tests (`if buildVersion == ""`, in every
// release 1.16-1.27), found through .gopclntab and the instruction's RIP-relative operand,
// so stripped binaries without .go.buildinfo keep it. nullopt if none holds a release string.
std::optional<go_version_string> find_go_version_string(const elf_file& elf, const pclntab& pcln);

// The settings of the 1.18+ module info ("build\tKEY=VALUE" lines), as "KEY=VALUE", e.g.
// "GOEXPERIMENT=noswissmap"; empty if there are none.
std::vector<std::string> read_build_settings(const elf_file& elf);

}  // namespace gomaptrace
