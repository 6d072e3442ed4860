#include "gomaptrace/go_version.hpp"

#include <cctype>
#include <charconv>

namespace gomaptrace {

std::string_view to_string(map_impl m) {
  return m == map_impl::classic ? "classic" : "swiss";
}
std::string_view to_string(go_abi a) {
  return a == go_abi::regabi ? "register" : "stack";
}

namespace {
bool read_int(std::string_view& s, int& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc{} || p == s.data()) return false;
  s.remove_prefix(p - s.data());
  return true;
}
}  // namespace

std::optional<go_version> go_version::parse(std::string_view s) {
  go_version v;
  v.raw = std::string(s);
  // "devel go1.27-abcdef Tue ..." names the release it will become.
  if (auto pos = s.find("go1."); pos != std::string_view::npos) {
    s.remove_prefix(pos + 2);
  } else {
    return std::nullopt;
  }
  if (!read_int(s, v.major) || s.empty() || s.front() != '.') return std::nullopt;
  s.remove_prefix(1);
  if (!read_int(s, v.minor)) return std::nullopt;
  if (!s.empty() && s.front() == '.') {
    s.remove_prefix(1);
    if (!read_int(s, v.patch)) return std::nullopt;
  }
  // Anything after (rc1, beta2, -abcdef, " X:..." experiments) does not change the layout.
  return v;
}

}  // namespace gomaptrace
