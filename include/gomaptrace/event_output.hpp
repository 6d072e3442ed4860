// layer: output
#pragma once
// Event printers: human text and JSON Lines, each over a std::ostream so tests compare
// strings. They never touch the tracee.
#include <ostream>
#include <string>

#include "gomaptrace/map_tracer.hpp"

namespace gomaptrace {

class text_event_output : public event_sink {
 public:
  // show_pid: each event says its process too (-f traces several).
  explicit text_event_output(std::ostream& out, bool show_pid = false)
      : out_(out), show_pid_(show_pid) {}
  void on_event(const map_event& e) override;

 private:
  std::ostream& out_;
  bool show_pid_;
};

// One JSON object per line: event, func, time_ns, pid, tid, goid, map, type, fields, stack, and
// when known hint, arg, before, table, duration_ns.
class json_event_output : public event_sink {
 public:
  explicit json_event_output(std::ostream& out) : out_(out) {}
  void on_event(const map_event& e) override;

 private:
  std::ostream& out_;
  std::string line_;  // reused: one allocation for the whole trace
};

// Fan-out to several sinks (e.g. text to the terminal and a Chrome trace file).
class tee_sink : public event_sink {
 public:
  void add(event_sink* s) { sinks_.push_back(s); }
  void on_event(const map_event& e) override {
    for (event_sink* s : sinks_) s->on_event(e);
  }

 private:
  std::vector<event_sink*> sinks_;
};

std::string format_duration(std::uint64_t ns);

}  // namespace gomaptrace
