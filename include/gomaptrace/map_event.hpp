// layer: trace
#pragma once
// Plain event structs the probes produce; outputs format them, tests compare them.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gomaptrace {

struct stack_frame {
  std::uint64_t pc = 0;  // runtime address (return address - 1 for callers)
  std::string function;
  std::string file;
  int line = 0;
  bool inlined = false;
};

// Functions a map site looks past: the runtime's own, and the standard library's thin
// wrappers that make, copy or fill a map for their caller (package maps: Clone, Copy,
// Collect, Insert; reflect's makemap/MakeMap*/mapassign). The user's line is the caller of
// maps.Clone, not maps/maps.go. encoding/json and the like are real code that decides to make
// a map, so they stay sites.
inline bool is_map_plumbing(const std::string& fn) {
  if (fn.starts_with("runtime.") || fn.starts_with("internal/runtime/") || fn.starts_with("maps."))
    return true;
  for (const char* r : {"reflect.makemap", "reflect.MakeMap", "reflect.mapassign",
                        "reflect.Value.SetMapIndex", "reflect.Value.SetIterValue"})
    if (fn.starts_with(r)) return true;
  return false;
}

// Where a map was made: the first caller of its makemap that is not map plumbing.
struct creation_site {
  std::string file;
  int line = 0;
  std::string function;
  // "file:line function", what --expect's site label matches.
  std::string label() const { return file + ":" + std::to_string(line) + " " + function; }
};

struct field_value {
  std::string name;
  std::uint64_t value = 0;
};

// What one tracer stop costs the stopped thread, by where the thread ran: on the tracer's CPU
// (near) or on another (far). They differ by an order of magnitude on a VM (measured
// 2026-11-26 on this project's 2-vCPU machine: 1.4 us near, ~20 us far, the far trap paying
// for waking the tracer's CPU), so one median of a mix is right for neither.
struct stop_cost {
  std::uint64_t near_ns = 0, far_ns = 0;
};

// A timed call, kept raw so the per-stop cost can be settled at the end of the trace:
// corrected = raw - fixed - near stops x near cost - far stops x far cost (fixed: the
// handlers' measured time, wall clock only). `far` counts the stops among `stops` that were
// far; the wall clock does not tell them apart (far = 0).
struct timed_ns {
  std::uint64_t raw = 0, fixed = 0, stops = 0, far = 0;
  timed_ns& operator+=(const timed_ns& o) {
    raw += o.raw, fixed += o.fixed, stops += o.stops, far += o.far;
    return *this;
  }
  [[nodiscard]] std::uint64_t corrected(const stop_cost& c) const {
    const std::uint64_t near = stops > far ? stops - far : 0;
    const std::uint64_t minus = fixed + near * c.near_ns + far * c.far_ns;
    return raw > minus ? raw - minus : 0;
  }
};

struct map_event {
  std::string event;  // makemap, makemap_small, assign, grow, grow_work, evacuate,
                      // grow_to_small, grow_to_table, rehash, table_grow, split, install_split
  std::string func;   // the runtime symbol that was hit, as in the binary
  std::uint64_t time_ns = 0;  // since the trace started
  pid_t pid = 0;              // the process (-f traces several)
  pid_t tid = 0;
  std::optional<std::int64_t> goid;  // nullopt when R14 did not hold a readable g
  bool system_stack = false;         // goid 0: running on g0
  std::uint64_t map = 0;
  std::optional<std::string> type;  // map[string]int; nullopt when not yet known
  std::optional<std::int64_t> hint;
  std::optional<std::uint64_t> arg;  // bucket, oldbucket or newCapacity
  std::string arg_name;
  std::vector<field_value> before;  // state at entry, for events seen at return
  std::vector<field_value> fields;  // state now (after, for events seen at return)
  std::vector<field_value> table;   // swiss: the receiver table at entry
  // Entry to return minus the tracer's own stops inside (see stop_calibration).
  std::optional<std::uint64_t> duration_ns;
  // What duration_ns was corrected from, with the stop cost known then; a consumer that
  // waits for the end (--expect) corrects it with the final calibration instead.
  std::optional<timed_ns> timing;
  std::optional<std::uint64_t> traced_ns;  // entry to return as measured, stops included
  std::vector<stack_frame> stack;          // the caller chain, innermost first
  // The map's site: where it was made, or where it was first seen (made by the compiler
  // without a runtime call, or before an attach). Every event of a map carries it.
  std::optional<creation_site> site;
  std::string site_kind;  // "made" or "first_seen"
};

}  // namespace gomaptrace
