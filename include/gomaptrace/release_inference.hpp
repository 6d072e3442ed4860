// layer: golang
#pragma once
// The Go release a binary was built with, told from the runtime's own functions when no
// version string survives (stripped, .go.buildinfo removed, runtime.buildVersion overwritten
// or gone): the .gopclntab format names the family, and a function each release added to the
// runtime (linked into every program) narrows it to one release, or to a range of releases.
#include <optional>
#include <string>

namespace gomaptrace {

class pclntab;

struct go_release_range {
  int lo = 0;  // minor versions of Go 1.x, inclusive
  int hi = 0;
  std::string evidence;  // what decided it, for inspect and error messages
};

// nullopt when the signs contradict each other (a later release's function without an
// earlier one's): then the release is unknown, not guessed.
[[nodiscard]] std::optional<go_release_range> infer_release(const pclntab& pcln);

}  // namespace gomaptrace
