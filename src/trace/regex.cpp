#include "gomaptrace/regex.hpp"

#include <re2/re2.h>

namespace gomaptrace {

expected<regex_matcher> regex_matcher::compile(const std::string& pattern) {
  RE2::Options opts;
  opts.set_log_errors(false);  // the error goes to the user once, as a usage error
  auto re = std::make_shared<const re2::RE2>(pattern, opts);
  if (!re->ok()) return unexpected(re->error());
  regex_matcher m;
  m.pattern_ = pattern;
  m.re_ = std::move(re);
  return m;
}

bool regex_matcher::search(std::string_view text) const {
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

}  // namespace gomaptrace
