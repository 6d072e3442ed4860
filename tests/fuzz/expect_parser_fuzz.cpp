// --expect expressions (src/trace/expectation_parser.cpp): what a user types, so anything at
// all. Input: the expression's bytes. A parse either succeeds (then its matchers and
// comparison run on the input itself) or fails with a message naming a column inside the
// input or just past its end; anything else (a crash, a hang, an exception, a column
// outside the text) is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gomaptrace/expectation.hpp"

using namespace gomaptrace;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto e = parse_expectation(text);
  if (!e) {
    const std::string& m = e.error();
    if (!m.starts_with("column ")) std::abort();
    const long column = std::strtol(m.c_str() + 7, nullptr, 10);
    if (column < 1 || static_cast<std::size_t>(column) > size + 1) std::abort();
    return 0;
  }
  if (e->text != text) std::abort();
  for (const label_matcher& l : e->labels) (void)l.matches(text);
  (void)e->holds(static_cast<double>(size));
  (void)e->needs_events();
  return 0;
}
