#include "gomaptrace/event_output.hpp"

#include <fmt/format.h>

#include <algorithm>
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

// JSON text of a string as nlohmann::json writes it: plain printable ASCII is copied as it is;
// anything else (escapes, and names from the tracee's memory that may not be valid UTF-8,
// replaced as nlohmann's error_handler_t::replace does) goes through nlohmann itself.
void append_json_string(std::string& out, const std::string& s) {
  bool plain = true;
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (!plain) {
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
    if (is_pointer_field(sorted[i]->name))
      fmt::format_to(std::back_inserter(out), ":\"{:#x}\"", sorted[i]->value);
    else
      fmt::format_to(std::back_inserter(out), ":{}", sorted[i]->value);
  }
  out += '}';
}

}  // namespace

// Written directly rather than built as a nlohmann::json and dumped: at a million events
// (--bpf) building the object cost more than everything else gomaptrace does per event. The
// text is byte for byte what nlohmann wrote: keys sorted, the argument's name (bucket,
// oldbucket, newCapacity: never one of the fixed keys) among them, same escaping.
void json_event_output::on_event(const map_event& e) {
  static constexpr const char* keys[] = {
      "before", "duration_ns", "event", "fields",  "func",    "goid",      "hint", "map", "pid",
      "site",   "stack",       "system_stack",     "table",   "tid",       "time_ns",
      "traced_ns", "type"};
  std::string& o = line_;
  o.clear();
  auto out = std::back_inserter(o);
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
      fmt::format_to(out, "{}", *e.arg);
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
      fmt::format_to(out, "{}", *e.duration_ns);
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
        fmt::format_to(out, "{}", *e.goid);
      else
        o += "null";
    } else if (key == "hint" && e.hint) {
      put();
      fmt::format_to(out, "{}", *e.hint);
    } else if (key == "map") {
      put();
      fmt::format_to(out, "\"{:#x}\"", e.map);
    } else if (key == "pid") {
      put();
      fmt::format_to(out, "{}", e.pid);
    } else if (key == "site" && e.site) {
      put();
      o += "{\"file\":";
      append_json_string(o, e.site->file);
      o += ",\"func\":";
      append_json_string(o, e.site->function);
      o += ",\"kind\":";
      append_json_string(o, e.site_kind);
      fmt::format_to(out, ",\"line\":{}}}", e.site->line);
    } else if (key == "traced_ns" && e.traced_ns) {
      put();
      fmt::format_to(out, "{}", *e.traced_ns);
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
        fmt::format_to(out, ",\"line\":{}}}", f.line);
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
      fmt::format_to(out, "{}", e.tid);
    } else if (key == "time_ns") {
      put();
      fmt::format_to(out, "{}", e.time_ns);
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
    fmt::format_to(out, "{}", *e.arg);
  }
  o += "}\n";
  out_ << o;
}

}  // namespace gomaptrace
