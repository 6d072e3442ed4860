// layer: output
#pragma once
// A gzipped profile.proto (the format `go tool pprof` reads) of where maps are made and grow:
// one sample per call stack, valued in maps, grows, inserts, growth and creation time, and
// bytes allocated by growth. The caller aggregates per stack or not: equal stacks are merged.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gomaptrace/map_event.hpp"

namespace gomaptrace {

struct pprof_sample {
  // Innermost first. A frame with `inlined` set was inlined into the frame after it: such runs
  // share one pc and become one pprof Location with several Lines, as profile.proto asks.
  std::vector<stack_frame> stack;
  std::int64_t maps = 0;
  std::int64_t grows = 0;
  std::int64_t inserts = 0;
  std::int64_t grow_ns = 0;
  std::int64_t init_ns = 0;
  std::int64_t grow_bytes = 0;
};

struct pprof_metadata {
  std::string binary;    // the traced executable: pprof's main mapping
  std::string build_id;  // Go or GNU build id, if known
  // Address range of the executable in the process, so locations' pcs fall in the mapping;
  // leave both 0 when unknown.
  std::uint64_t memory_start = 0;
  std::uint64_t memory_limit = 0;
  std::uint64_t file_offset = 0;
  std::int64_t time_nanos = 0;        // start of the trace, ns since the Unix epoch
  std::int64_t duration_nanos = 0;    // length of the trace
  std::vector<std::string> comments;  // shown by `pprof -comments`, e.g. what was subtracted
};

// Writes the gzip-compressed profile. Sample types, in this order: maps/count, grows/count,
// inserts/count, grow_ns/nanoseconds, init_ns/nanoseconds, grow_bytes/bytes; the default is
// grows. Throws fatal_error (trace_failed) if serialising or compressing fails.
void write_pprof(std::ostream& out, const std::vector<pprof_sample>& samples,
                 const pprof_metadata& meta);

}  // namespace gomaptrace
