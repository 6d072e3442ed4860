// layer: output
#pragma once
// A picture of map activity over time: Chrome trace-event JSON, opened by Perfetto
// (ui.perfetto.dev) or chrome://tracing. One lane per goroutine (work on a system stack goes
// on its thread's lane), each named by a metadata event; makemap and growth calls are spans
// with their corrected durations, other events instants; every event names the map's site
// in the user's code. Written as the program runs: memory stays flat however long the trace.
#include <cstdint>
#include <ostream>
#include <string>
#include <set>
#include <utility>

#include "gomaptrace/map_tracer.hpp"

namespace gomaptrace {

class chrome_trace_output : public event_sink {
 public:
  // Starts the document at once; `program` names the process lane.
  chrome_trace_output(std::ostream& out, int pid, const std::string& program);
  ~chrome_trace_output() override;  // closes the document if close() was not called
  chrome_trace_output(const chrome_trace_output&) = delete;
  chrome_trace_output& operator=(const chrome_trace_output&) = delete;
  void on_event(const map_event& e) override;
  void close();  // ends the JSON document and flushes

 private:
  void write(const std::string& json_object);
  void name_lane(int pid, std::int64_t lane, const map_event& e);

  std::ostream& out_;
  int pid_;
  bool first_ = true;
  bool closed_ = false;
  std::set<std::pair<int, std::int64_t>> lanes_;  // (pid, lane) already named
};

}  // namespace gomaptrace
