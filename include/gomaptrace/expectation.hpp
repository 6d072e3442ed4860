// layer: trace
#pragma once
// --expect: assertions a CI job makes about a traced run, in a grammar modelled on PromQL
// label matchers:
//
//     METRIC[{LABEL=~"REGEX", LABEL="TEXT", ...}] OP NUMBER
//
// The parser only builds this tree and compiles the regular expressions (RE2, the syntax Go
// engineers write); what the metrics mean is decided where the events are (expect_checker).
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gomaptrace/expected.hpp"
#include "gomaptrace/regex.hpp"

namespace gomaptrace {

enum class expect_metric { maps, grows, inserts, evacuations, hits, grow_ns, init_ns };
// For grow_ns / init_ns: the sum over matching calls, or a percentile / the maximum.
enum class expect_stat { total, p50, p90, p99, max };
enum class expect_label { func, site, type, symbol };
enum class expect_op { eq, ne, lt, le, gt, ge };

struct label_matcher {
  expect_label label = expect_label::func;
  bool is_regex = false;
  std::string value;                  // the text, or the regex's source
  std::shared_ptr<regex_matcher> re;  // when is_regex
  [[nodiscard]] bool matches(std::string_view text) const;
};

struct expectation {
  std::string text;  // as the user wrote it, for reports
  expect_metric metric = expect_metric::grows;
  expect_stat stat = expect_stat::total;
  std::vector<label_matcher> labels;  // ANDed
  expect_op op = expect_op::le;
  double number = 0;

  // Labels that need each event's call chain or its map's creation site: refused where no
  // event is seen (--count).
  [[nodiscard]] bool needs_events() const;
  [[nodiscard]] bool needs_call_chain() const;
  [[nodiscard]] bool holds(double observed) const;
};

// Parses one expression. A failure's message names the 1-based column and what was expected
// there, e.g. `column 7: unknown label "fun" (labels: func, site, type)`.
[[nodiscard]] expected<expectation> parse_expectation(std::string_view text);

std::string_view to_string(expect_metric m);
std::string_view to_string(expect_op op);
std::string_view to_string(expect_label l);

// The grammar and metrics, for --help and the README.
extern const char* const expect_grammar_help;

}  // namespace gomaptrace
