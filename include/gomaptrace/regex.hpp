// layer: trace
#pragma once
// Regular expressions for --filter and --expect labels: RE2, the syntax Go engineers write
// (`(?i)main`, `\pL`), linear-time on every function name of every event.
#include <memory>
#include <string>
#include <string_view>

#include "gomaptrace/expected.hpp"

namespace re2 {
class RE2;
}

namespace gomaptrace {

// Compiled once; copies share the compiled form.
class regex_matcher {
 public:
  // Fails with RE2's own message for a malformed pattern.
  [[nodiscard]] static expected<regex_matcher> compile(const std::string& pattern);
  // Unanchored, like Go's regexp.MatchString (PromQL anchors; we do not): `site=~"cache.go:"`
  // must match "/src/app/cache.go:12 main.load".
  [[nodiscard]] bool search(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace gomaptrace
