// layer: output
#pragma once
// A picture of map activity over time: Chrome trace-event JSON, opened by Perfetto
// (ui.perfetto.dev) or chrome://tracing. One lane per goroutine; makemap and growth calls
// are spans with their durations, other events instants.
#include <nlohmann/json.hpp>
#include <ostream>
#include <vector>

#include "gomaptrace/map_tracer.hpp"

namespace gomaptrace {

class chrome_trace_output : public event_sink {
 public:
  explicit chrome_trace_output(int pid) : pid_(pid) {}
  void on_event(const map_event& e) override;
  void write(std::ostream& out) const;

 private:
  int pid_;
  nlohmann::json events_ = nlohmann::json::array();
};

}  // namespace gomaptrace
