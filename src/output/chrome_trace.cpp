#include "gomaptrace/chrome_trace.hpp"

#include <fmt/format.h>

namespace gomaptrace {

void chrome_trace_output::on_event(const map_event& e) {
  using nlohmann::json;
  json args = json::object();
  args["map"] = fmt::format("{:#x}", e.map);
  if (e.hint) args["hint"] = *e.hint;
  for (const field_value& f : e.fields) args[f.name] = f.value;
  for (const field_value& f : e.before) args[f.name + "_before"] = f.value;
  if (!e.stack.empty()) {
    args["site"] = fmt::format("{} {}:{}", e.stack[0].function, e.stack[0].file, e.stack[0].line);
  }
  json ev = {{"name", fmt::format("{} {}", e.event, e.type.value_or("map[?]"))},
             {"cat", e.event},
             {"pid", e.pid ? e.pid : pid_},  // -f: one process per traced process
             // Goroutines are the lanes people reason about; g0 work goes on the thread's lane.
             {"tid", e.goid && *e.goid > 0 ? *e.goid : -static_cast<std::int64_t>(e.tid)},
             {"ts", e.time_ns / 1000.0},
             {"args", std::move(args)}};
  if (e.duration_ns) {
    ev["ph"] = "X";
    ev["dur"] = *e.duration_ns / 1000.0;
  } else {
    ev["ph"] = "i";
    ev["s"] = "t";
  }
  events_.push_back(std::move(ev));
}

void chrome_trace_output::write(std::ostream& out) const {
  nlohmann::json doc = {{"traceEvents", events_}, {"displayTimeUnit", "ns"}};
  out << doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

}  // namespace gomaptrace
