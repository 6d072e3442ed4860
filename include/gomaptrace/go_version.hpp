// layer: golang
#pragma once
// A Go release as a binary names it ("go1.23.12", "go1.24rc1", "devel go1.27-abcdef ...")
// and the facts that follow from it.
#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace gomaptrace {

enum class map_impl { classic, swiss };
enum class go_abi { stack, regabi };

std::string_view to_string(map_impl m);
std::string_view to_string(go_abi a);

struct go_version {
  int major = 0;
  int minor = 0;
  int patch = 0;
  std::string raw;  // as found in the binary

  static std::optional<go_version> parse(std::string_view s);

  // Go 1.17 introduced the register ABI on amd64.
  go_abi abi() const { return at_least(1, 17) ? go_abi::regabi : go_abi::stack; }
  // The default map implementation of the release; 1.24/1.25 may be built with
  // GOEXPERIMENT=noswissmap, so the binary's functions have the last word.
  map_impl default_map_impl() const {
    return at_least(1, 24) ? map_impl::swiss : map_impl::classic;
  }
  bool at_least(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
  auto operator<=>(const go_version& o) const {
    if (auto c = major <=> o.major; c != 0) return c;
    if (auto c = minor <=> o.minor; c != 0) return c;
    return patch <=> o.patch;
  }
  bool operator==(const go_version& o) const {
    return major == o.major && minor == o.minor && patch == o.patch;
  }
};

}  // namespace gomaptrace
