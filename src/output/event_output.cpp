#include "gomaptrace/event_output.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

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
  bool first = true;
  for (const stack_frame& f : e.stack) {
    out_ << fmt::format("             {} {}{} {}:{}\n", first ? "at" : "  ", f.function,
                        f.inlined ? " (inlined)" : "", f.file, f.line);
    first = false;
  }
  out_.flush();
}

void json_event_output::on_event(const map_event& e) {
  using nlohmann::json;
  auto obj = [](const std::vector<field_value>& fs) {
    json o = json::object();
    for (const field_value& f : fs) o[f.name] = f.value;
    return o;
  };
  json j;
  j["event"] = e.event;
  j["func"] = e.func;
  j["time_ns"] = e.time_ns;
  j["pid"] = e.pid;
  j["tid"] = e.tid;
  j["goid"] = e.goid ? json(*e.goid) : json(nullptr);
  if (e.system_stack) j["system_stack"] = true;
  j["map"] = fmt::format("{:#x}", e.map);
  j["type"] = e.type ? json(*e.type) : json(nullptr);
  if (e.hint) j["hint"] = *e.hint;
  if (e.arg) j[e.arg_name] = *e.arg;
  j["fields"] = obj(e.fields);
  if (!e.before.empty()) j["before"] = obj(e.before);
  if (!e.table.empty()) j["table"] = obj(e.table);
  if (e.duration_ns) j["duration_ns"] = *e.duration_ns;
  json st = json::array();
  for (const stack_frame& f : e.stack) {
    json fr = {{"func", f.function}, {"file", f.file}, {"line", f.line}};
    if (f.inlined) fr["inlined"] = true;
    st.push_back(std::move(fr));
  }
  j["stack"] = std::move(st);
  // Type names and paths come from the tracee's memory: never let one bad byte throw.
  out_ << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

}  // namespace gomaptrace
