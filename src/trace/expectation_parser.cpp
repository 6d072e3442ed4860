// A recursive-descent parser for --expect. The grammar is five rules; a generator or a
// parser library would be larger than the parser.
//
//   expr     := metric [ '{' [ matcher { ',' matcher } [ ',' ] ] '}' ] op number
//   metric   := maps | grows | inserts | evacuations | hits
//             | (grow_ns | init_ns) [ _p50 | _p90 | _p99 | _max ]
//   matcher  := label ( '=' | '=~' ) string
//   string   := "..." | '...' (\\ \" \' \n \t escapes; any other \x is kept as \x, so
//               "^main\." and "^main\\." mean the same regex) | `...` (raw)
//   op       := '==' | '!=' | '<=' | '<' | '>=' | '>'
#include <fmt/core.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "gomaptrace/expectation.hpp"

namespace gomaptrace {

bool label_matcher::matches(std::string_view text) const {
  return is_regex ? re->search(text) : text == value;
}

bool expectation::needs_events() const {
  if (metric == expect_metric::grow_ns || metric == expect_metric::init_ns) return true;
  for (const label_matcher& l : labels)
    if (l.label != expect_label::symbol) return true;
  return false;
}

bool expectation::needs_call_chain() const {
  for (const label_matcher& l : labels)
    if (l.label == expect_label::func) return true;
  return false;
}

bool expectation::holds(double v) const {
  switch (op) {
    case expect_op::eq:
      return v == number;
    case expect_op::ne:
      return v != number;
    case expect_op::lt:
      return v < number;
    case expect_op::le:
      return v <= number;
    case expect_op::gt:
      return v > number;
    case expect_op::ge:
      return v >= number;
  }
  return false;
}

std::string_view to_string(expect_metric m) {
  switch (m) {
    case expect_metric::maps:
      return "maps";
    case expect_metric::grows:
      return "grows";
    case expect_metric::inserts:
      return "inserts";
    case expect_metric::evacuations:
      return "evacuations";
    case expect_metric::hits:
      return "hits";
    case expect_metric::grow_ns:
      return "grow_ns";
    case expect_metric::init_ns:
      return "init_ns";
  }
  return "?";
}

std::string_view to_string(expect_op op) {
  switch (op) {
    case expect_op::eq:
      return "==";
    case expect_op::ne:
      return "!=";
    case expect_op::lt:
      return "<";
    case expect_op::le:
      return "<=";
    case expect_op::gt:
      return ">";
    case expect_op::ge:
      return ">=";
  }
  return "?";
}

std::string_view to_string(expect_label l) {
  switch (l) {
    case expect_label::func:
      return "func";
    case expect_label::site:
      return "site";
    case expect_label::type:
      return "type";
    case expect_label::symbol:
      return "symbol";
  }
  return "?";
}

const char* const expect_grammar_help =
    "EXPR is METRIC[{LABEL=~\"REGEX\", LABEL=\"TEXT\", ...}] OP NUMBER, e.g.\n"
    "  --expect 'grows{func=~\"^main\\\\.\"} == 0'   --expect 'maps{site=~\"cache.go:\"} <= 3'\n"
    "  METRIC: maps, grows, inserts, evacuations, hits{symbol=\"runtime.hashGrow\"},\n"
    "          grow_ns, init_ns (sum of durations; _p50 _p90 _p99 _max for one call)\n"
    "  LABEL:  func (any function of the call chain), site (\"file:line function\" where\n"
    "          the map was made), type (\"map[string]int\"); hits takes symbol only.\n"
    "          = is exact, =~ is an unanchored RE2 regex (Go's syntax); labels are ANDed.\n"
    "  OP:     == != < <= > >=";

namespace {

class parser {
 public:
  explicit parser(std::string_view s) : s_(s) {}

  expected<expectation> parse() {
    expectation e;
    e.text = std::string(s_);
    if (!metric(e)) return fail();
    const std::size_t metric_end = pos_;
    skip_space();
    if (peek() == '{' && !labels(e)) return fail();
    if (e.metric == expect_metric::hits && e.labels.empty()) {
      // Every probe's hits added up is a number nobody asks for.
      error_at(metric_end, "hits needs a symbol, e.g. hits{symbol=\"runtime.hashGrow\"}");
      return fail();
    }
    if (!op(e) || !number(e)) return fail();
    skip_space();
    if (pos_ != s_.size()) {
      error_here("unexpected \"" + std::string(s_.substr(pos_)) + "\" after the number");
      return fail();
    }
    return e;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool error(std::string what) {
    if (message_.empty()) message_ = fmt::format("column {}: {}", err_pos_ + 1, what);
    return false;
  }
  bool error_at(std::size_t pos, std::string what) {
    err_pos_ = pos;
    return error(std::move(what));
  }
  bool error_here(std::string what) { return error_at(pos_, std::move(what)); }
  unexpected fail() const { return unexpected(message_); }

  std::string_view identifier() {
    std::size_t start = pos_;
    while (pos_ < s_.size() &&
           (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      ++pos_;
    return s_.substr(start, pos_ - start);
  }

  bool metric(expectation& e);
  bool labels(expectation& e);
  bool matcher(expectation& e);
  bool string_literal(std::string& out);
  bool op(expectation& e);
  bool number(expectation& e);

  std::string_view s_;
  std::size_t pos_ = 0;
  std::size_t err_pos_ = 0;
  std::string message_;
};

constexpr const char* metric_list =
    "maps, grows, inserts, evacuations, hits, grow_ns, init_ns, grow_ns_p99, ...";

bool parser::metric(expectation& e) {
  skip_space();
  const std::size_t start = pos_;
  std::string_view id = identifier();
  if (id.empty()) return error_here(fmt::format("expected a metric ({})", metric_list));
  static const std::pair<std::string_view, expect_metric> counts[] = {
      {"maps", expect_metric::maps},
      {"grows", expect_metric::grows},
      {"inserts", expect_metric::inserts},
      {"evacuations", expect_metric::evacuations},
      {"hits", expect_metric::hits}};
  for (const auto& [name, m] : counts) {
    if (id == name) {
      e.metric = m;
      return true;
    }
  }
  static const std::pair<std::string_view, expect_stat> stats[] = {{"", expect_stat::total},
                                                                   {"_p50", expect_stat::p50},
                                                                   {"_p90", expect_stat::p90},
                                                                   {"_p99", expect_stat::p99},
                                                                   {"_max", expect_stat::max}};
  for (auto [base, m] : {std::pair{std::string_view("grow_ns"), expect_metric::grow_ns},
                         std::pair{std::string_view("init_ns"), expect_metric::init_ns}}) {
    if (!id.starts_with(base)) continue;
    for (const auto& [suffix, st] : stats) {
      if (id.substr(base.size()) == suffix) {
        e.metric = m;
        e.stat = st;
        return true;
      }
    }
  }
  return error_at(start, fmt::format("unknown metric \"{}\" ({})", id, metric_list));
}

bool parser::labels(expectation& e) {
  ++pos_;  // '{'
  for (;;) {
    skip_space();
    if (peek() == '}') break;
    if (!matcher(e)) return false;
    skip_space();
    if (peek() == ',') {
      ++pos_;
      continue;
    }
    if (peek() != '}') return error_here("expected \",\" or \"}\" after a label matcher");
  }
  ++pos_;  // '}'
  return true;
}

bool parser::matcher(expectation& e) {
  const std::size_t start = pos_;
  std::string_view id = identifier();
  if (id.empty()) return error_here("expected a label (func, site, type, symbol)");
  label_matcher m;
  if (id == "func") {
    m.label = expect_label::func;
  } else if (id == "site") {
    m.label = expect_label::site;
  } else if (id == "type") {
    m.label = expect_label::type;
  } else if (id == "symbol") {
    m.label = expect_label::symbol;
  } else {
    return error_at(start, fmt::format("unknown label \"{}\" (func, site, type, symbol)", id));
  }
  if ((m.label == expect_label::symbol) != (e.metric == expect_metric::hits)) {
    return error_at(start, e.metric == expect_metric::hits
                               ? fmt::format("hits takes the label symbol only, not \"{}\"", id)
                               : std::string("the label symbol belongs to hits only"));
  }
  skip_space();
  if (peek() != '=') return error_here("expected = or =~ after the label");
  ++pos_;
  if (peek() == '~') {
    m.is_regex = true;
    ++pos_;
  }
  skip_space();
  const std::size_t value_pos = pos_;
  if (!string_literal(m.value)) return false;
  if (m.is_regex) {
    auto re = regex_matcher::compile(m.value);
    if (!re) {
      return error_at(value_pos,
                      fmt::format("bad regular expression \"{}\": {}", m.value, re.error()));
    }
    m.re = std::make_shared<regex_matcher>(std::move(*re));
  }
  e.labels.push_back(std::move(m));
  return true;
}

bool parser::string_literal(std::string& out) {
  const char quote = peek();
  if (quote != '"' && quote != '\'' && quote != '`') {
    return error_here("expected a quoted string (\"...\", '...' or `...`)");
  }
  const std::size_t start = pos_++;
  while (pos_ < s_.size() && s_[pos_] != quote) {
    char c = s_[pos_++];
    if (c != '\\' || quote == '`') {
      out += c;
      continue;
    }
    if (pos_ == s_.size()) break;
    char n = s_[pos_++];
    switch (n) {
      case '\\':
      case '"':
      case '\'':
        out += n;
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      default:  // a regex escape such as \. or \d: keep it for RE2
        out += '\\';
        out += n;
    }
  }
  if (pos_ >= s_.size()) return error_at(start, "unterminated string");
  ++pos_;  // closing quote
  return true;
}

bool parser::op(expectation& e) {
  skip_space();
  static const std::pair<std::string_view, expect_op> ops[] = {
      {"==", expect_op::eq}, {"!=", expect_op::ne}, {"<=", expect_op::le},
      {">=", expect_op::ge}, {"<", expect_op::lt},  {">", expect_op::gt}};
  for (const auto& [text, o] : ops) {
    if (s_.substr(pos_).starts_with(text)) {
      pos_ += text.size();
      e.op = o;
      return true;
    }
  }
  if (peek() == '\0') return error_here("expected an operator (==, !=, <, <=, >, >=)");
  return error_here(fmt::format("expected an operator (==, !=, <, <=, >, >=), not \"{}\"",
                                std::string(s_.substr(pos_, 2))));
}

bool parser::number(expectation& e) {
  skip_space();
  const std::size_t start = pos_;
  if (peek() == '+' || peek() == '-') ++pos_;
  bool digits = false;
  while (std::isdigit(static_cast<unsigned char>(peek())) || peek() == '.' || peek() == 'e' ||
         peek() == 'E' ||
         ((peek() == '+' || peek() == '-') && pos_ > start &&
          (s_[pos_ - 1] == 'e' || s_[pos_ - 1] == 'E'))) {
    digits = digits || std::isdigit(static_cast<unsigned char>(peek()));
    ++pos_;
  }
  std::string text(s_.substr(start, pos_ - start));
  if (!digits) return error_at(start, "expected a number");
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v)) {
    return error_at(start, fmt::format("\"{}\" is not a number", text));
  }
  e.number = v;
  return true;
}

}  // namespace

expected<expectation> parse_expectation(std::string_view text) {
  return parser(text).parse();
}

}  // namespace gomaptrace
