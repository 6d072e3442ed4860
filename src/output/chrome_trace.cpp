#include "gomaptrace/chrome_trace.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace gomaptrace {

namespace {
template <typename Frame>  // stack_frame or creation_site
std::string frame_text(const Frame& f) {
  return fmt::format("{} {}:{}", f.function, f.file, f.line);
}
}  // namespace

chrome_trace_output::chrome_trace_output(std::ostream& out, int pid, const std::string& program)
    : out_(out), pid_(pid) {
  out_ << "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  nlohmann::json meta = {{"name", "process_name"},
                         {"ph", "M"},
                         {"pid", pid_},
                         {"tid", 0},
                         {"args", {{"name", fmt::format("{} (pid {})", program, pid_)}}}};
  write(meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

chrome_trace_output::~chrome_trace_output() {
  try {
    close();
  } catch (...) {  // a destructor never throws; the stream keeps its error state
  }
}

void chrome_trace_output::write(const std::string& json_object) {
  out_ << (first_ ? "" : ",\n") << json_object;
  first_ = false;
}

// Perfetto shows a lane's name instead of its number: "goroutine 7", or "thread 1234" for
// work on a thread's system stack (g0), which has no goroutine.
void chrome_trace_output::name_lane(int pid, std::int64_t lane, const map_event& e) {
  if (!lanes_.insert({pid, lane}).second) return;
  std::string name = lane > 0 ? fmt::format("goroutine {}", lane)
                     : e.goid ? fmt::format("thread {} (system stack)", e.tid)
                              : fmt::format("thread {}", e.tid);
  nlohmann::json meta = {{"name", "thread_name"},
                         {"ph", "M"},
                         {"pid", pid},
                         {"tid", lane},
                         {"args", {{"name", name}}}};
  write(meta.dump());
  // Goroutines first, in id order; thread lanes after them.
  nlohmann::json order = {{"name", "thread_sort_index"},
                          {"ph", "M"},
                          {"pid", pid},
                          {"tid", lane},
                          {"args", {{"sort_index", lane > 0 ? lane : 1'000'000'000 - lane}}}};
  write(order.dump());
}

void chrome_trace_output::on_event(const map_event& e) {
  if (closed_) return;
  using nlohmann::json;
  // Goroutines are the lanes people reason about; g0 work goes on the thread's lane.
  const std::int64_t lane = e.goid && *e.goid > 0 ? *e.goid : -static_cast<std::int64_t>(e.tid);
  const int pid = e.pid ? e.pid : pid_;
  name_lane(pid, lane, e);
  json args = json::object();
  args["map"] = fmt::format("{:#x}", e.map);
  // The user's line, whatever runtime function the call chain starts in.
  if (e.site) {
    args["site"] = frame_text(*e.site);
    args["site_kind"] = e.site_kind;
  }
  if (!e.stack.empty()) args["caller"] = frame_text(e.stack[0]);
  args["tid"] = e.tid;
  if (e.hint) args["hint"] = *e.hint;
  if (e.arg) args[e.arg_name] = *e.arg;
  for (const field_value& f : e.fields) args[f.name] = f.value;
  for (const field_value& f : e.before) args[f.name + "_before"] = f.value;
  if (e.traced_ns) args["traced_ns"] = *e.traced_ns;
  json ev = {{"name", fmt::format("{} {}", e.event, e.type.value_or("map[?]"))},
             {"cat", e.event},
             {"pid", pid},  // -f: one process per traced process
             {"tid", lane},
             {"ts", e.time_ns / 1000.0},
             {"args", std::move(args)}};
  if (e.duration_ns) {
    ev["ph"] = "X";
    // At least 1 ns, so a span corrected to zero still shows where it was.
    ev["dur"] = std::max<std::uint64_t>(*e.duration_ns, 1) / 1000.0;
  } else {
    ev["ph"] = "i";
    ev["s"] = "t";
  }
  // Type names and paths come from the tracee's memory: never let one bad byte throw.
  write(ev.dump(-1, ' ', false, json::error_handler_t::replace));
}

void chrome_trace_output::close() {
  if (closed_) return;
  closed_ = true;
  out_ << "\n]}\n";
  out_.flush();
}

}  // namespace gomaptrace
