#include "gomaptrace/event_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string_view>

namespace gomaptrace {

namespace {

bool is_pointer_field(const std::string& n) {
  return n == "buckets" || n == "oldbuckets" || n == "dirPtr" || n == "extra";
}

std::string value_text(const std::string& name, std::uint64_t v) {
  return is_pointer_field(name) ? fmt::format("{:#x}", v) : fmt::format("{}", v);
}

const field_value* find(const std::vector<field_value>& fs, const std::string& n) {
  for (const field_value& f : fs)
    if (f.name == n) return &f;
  return nullptr;
}

// "B=2 count=0" or, with a before state, "B 2→3 count=26" (changes shown with arrows).
std::string fields_text(const std::vector<field_value>& now,
                        const std::vector<field_value>& before) {
  std::string s;
  for (const field_value& f : now) {
    if (!s.empty()) s += ' ';
    const field_value* b = find(before, f.name);
    if (b && b->value != f.value) {
      s += fmt::format("{} {}→{}", f.name, value_text(f.name, b->value),
                       value_text(f.name, f.value));
    } else {
      s += fmt::format("{}={}", f.name, value_text(f.name, f.value));
    }
  }
  return s;
}

}  // namespace

std::string format_duration(std::uint64_t ns) {
  if (ns < 1000) return fmt::format("{}ns", ns);
  if (ns < 1000000) return fmt::format("{:.1f}µs", ns / 1e3);
  if (ns < 1000000000) return fmt::format("{:.2f}ms", ns / 1e6);
  return fmt::format("{:.3f}s", ns / 1e9);
}

void text_event_output::on_event(const map_event& e) {
  std::string g = !e.goid          ? "g=?"
                  : e.system_stack ? "g0(system stack)"
                                   : fmt::format("g={}", *e.goid);
  const std::string thread =
      show_pid_ ? fmt::format("pid={} tid={}", e.pid, e.tid) : fmt::format("tid={}", e.tid);
  out_ << fmt::format("{:>10.3f}ms {:<14} {:<24} {:#x} {} {}", e.time_ns / 1e6, e.event,
                      e.type.value_or("map[?]"), e.map, thread, g);
  if (e.duration_ns) out_ << " took " << format_duration(*e.duration_ns);
  out_ << '\n';
  std::string detail;
  if (e.hint) detail += fmt::format("hint={} ", *e.hint);
  if (e.arg) detail += fmt::format("{}={} ", e.arg_name, *e.arg);
  detail += fields_text(e.fields, e.before);
  if (!e.table.empty()) detail += "  table: " + fields_text(e.table, {});
  out_ << "             " << detail << '\n';
  if (e.site) {
    out_ << fmt::format("             map {} {} {}:{}\n",
                        e.site_kind == "made" ? "made at" : "first seen at", e.site->function,
                        e.site->file, e.site->line);
  }
  bool first = true;
  for (const stack_frame& f : e.stack) {
    out_ << fmt::format("             {} {}{} {}:{}\n", first ? "at" : "  ", f.function,
                        f.inlined ? " (inlined)" : "", f.file, f.line);
    first = false;
  }
  out_.flush();
}

namespace {

// Decimal and "0x..." text appended without fmt's format-string parsing: at a million events
// (--bpf) parsing "{}" for every number was a third of the writer's time (perf, session 6).
template <class Int>
void append_int(std::string& out, Int v) {
  const fmt::format_int f(v);
  out.append(f.data(), f.size());
}

void append_hex(std::string& out, std::uint64_t v) {
  char buf[16];
  const auto r = std::to_chars(std::begin(buf), std::end(buf), v, 16);
  out += "0x";
  out.append(buf, r.ptr);
}

// Whether any of the 8 bytes of w is < 0x20, >= 0x7f, '"' or '\\' (the classic "has zero
// byte" tests: a byte b of w ^ c is zero where b == c; w - 0x20.. borrows where b < 0x20).
constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
constexpr bool has_zero_byte(std::uint64_t w) {
  return ((w - ones) & ~w & highs) != 0;
}
constexpr bool needs_escape(std::uint64_t w) {
  return (w & highs) != 0 || ((w - 0x20 * ones) & ~w & highs) != 0 ||
         has_zero_byte(w ^ (0x7f * ones)) || has_zero_byte(w ^ ('"' * ones)) ||
         has_zero_byte(w ^ ('\\' * ones));
}

bool plain_json(std::string_view s) {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {  // file paths and function names run to 50-100 bytes
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (needs_escape(w)) return false;
  }
  for (; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

// JSON text of a string as nlohmann::json writes it: plain printable ASCII is copied as it is;
// anything else (escapes, and names from the tracee's memory that may not be valid UTF-8,
// replaced as nlohmann's error_handler_t::replace does) goes through nlohmann itself.
void append_json_string(std::string& out, const std::string& s) {
  if (!plain_json(s)) {
    out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return;
  }
  out += '"';
  out += s;
  out += '"';
}

// {"name":value,...} with the names sorted, as a nlohmann object (a std::map) has them.
void append_fields(std::string& out, const std::vector<field_value>& fs) {
  std::vector<const field_value*> sorted;
  sorted.reserve(fs.size());
  for (const field_value& f : fs) sorted.push_back(&f);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const field_value* a, const field_value* b) { return a->name < b->name; });
  out += '{';
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    // A name given twice keeps its last value, as assigning into a json object does.
    if (i + 1 < sorted.size() && sorted[i + 1]->name == sorted[i]->name) continue;
    if (out.back() != '{') out += ',';
    append_json_string(out, sorted[i]->name);
    // Every address is written one way in JSON, "0x..." like `map`: pointer fields too.
    out += ':';
    if (is_pointer_field(sorted[i]->name)) {
      out += '"';
      append_hex(out, sorted[i]->value);
      out += '"';
    } else {
      append_int(out, sorted[i]->value);
    }
  }
  out += '}';
}

}  // namespace

// Written directly rather than built as a nlohmann::json and dumped: at a million events
// (--bpf) building the object cost more than everything else gomaptrace does per event. The
// text is byte for byte what nlohmann wrote: keys sorted, the argument's name (bucket,
// oldbucket, newCapacity: never one of the fixed keys) among them, same escaping.
void json_event_output::on_event(const map_event& e) {
  static constexpr const char* keys[] = {"before",    "duration_ns",  "event", "fields", "func",
                                         "goid",      "hint",         "map",   "pid",    "site",
                                         "stack",     "system_stack", "table", "tid",    "time_ns",
                                         "traced_ns", "type"};
  std::string& o = line_;
  o.clear();
  bool arg_pending = e.arg.has_value();
  auto open = [&](const std::string& k) {
    o += o.empty() ? "{" : ",";
    append_json_string(o, k);
    o += ':';
  };
  for (const char* k : keys) {
    const std::string_view key(k);
    if (arg_pending && e.arg_name < key) {
      open(e.arg_name);
      append_int(o, *e.arg);
      arg_pending = false;
    }
    auto put = [&] {
      o += o.empty() ? "{\"" : ",\"";
      o += key;
      o += "\":";
    };
    if (key == "before" && !e.before.empty()) {
      put();
      append_fields(o, e.before);
    } else if (key == "duration_ns" && e.duration_ns) {
      put();
      append_int(o, *e.duration_ns);
    } else if (key == "event") {
      put();
      append_json_string(o, e.event);
    } else if (key == "fields") {
      put();
      append_fields(o, e.fields);
    } else if (key == "func") {
      put();
      append_json_string(o, e.func);
    } else if (key == "goid") {
      put();
      if (e.goid)
        append_int(o, *e.goid);
      else
        o += "null";
    } else if (key == "hint" && e.hint) {
      put();
      append_int(o, *e.hint);
    } else if (key == "map") {
      put();
      o += '"';
      append_hex(o, e.map);
      o += '"';
    } else if (key == "pid") {
      put();
      append_int(o, e.pid);
    } else if (key == "site" && e.site) {
      put();
      o += "{\"file\":";
      append_json_string(o, e.site->file);
      o += ",\"func\":";
      append_json_string(o, e.site->function);
      o += ",\"kind\":";
      append_json_string(o, e.site_kind);
      o += ",\"line\":";
      append_int(o, e.site->line);
      o += '}';
    } else if (key == "traced_ns" && e.traced_ns) {
      put();
      append_int(o, *e.traced_ns);
    } else if (key == "stack") {
      put();
      o += '[';
      for (std::size_t i = 0; i < e.stack.size(); ++i) {
        const stack_frame& f = e.stack[i];
        o += i ? ",{\"file\":" : "{\"file\":";
        append_json_string(o, f.file);
        o += ",\"func\":";
        append_json_string(o, f.function);
        if (f.inlined) o += ",\"inlined\":true";
        o += ",\"line\":";
        append_int(o, f.line);
        o += '}';
      }
      o += ']';
    } else if (key == "system_stack" && e.system_stack) {
      put();
      o += "true";
    } else if (key == "table" && !e.table.empty()) {
      put();
      append_fields(o, e.table);
    } else if (key == "tid") {
      put();
      append_int(o, e.tid);
    } else if (key == "time_ns") {
      put();
      append_int(o, e.time_ns);
    } else if (key == "type") {
      put();
      if (e.type)
        append_json_string(o, *e.type);
      else
        o += "null";
    }
  }
  if (arg_pending) {
    open(e.arg_name);
    append_int(o, *e.arg);
  }
  o += "}\n";
  out_ << o;
}

}  // namespace gomaptrace
