#pragma once
// trace_session's record of one traced image (private to src/trace): shared by the ptrace
// path (trace_session.cpp) and the --bpf path (trace_session_bpf.cpp).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "gomaptrace/bpf_probes.hpp"
#include "gomaptrace/process.hpp"
#include "gomaptrace/trace_session.hpp"

namespace gomaptrace {

// --bpf: one image's uprobes and the thread that turns their records into events.
struct bpf_feed {
  std::unique_ptr<bpf_probes> probes;
  std::uint64_t bias = 0;
  std::thread consumer;
  std::atomic<bool> ended{false};
  // The image is over (an exec replaced it, or its process ended): what is left to decode may
  // not be read from the process, whose memory is another program's now or none.
  std::atomic<bool> gone{false};
  std::atomic<std::uint64_t> last_record_ns{0};  // CLOCK_MONOTONIC of the last record read
  // Written by the consumer thread alone until it is joined.
  std::string poll_error;
  const bpf_hit* current = nullptr;  // the record being decoded
  std::uint64_t late_reads = 0;      // reads not captured at the hit: made afterwards
  std::uint64_t handler_errors = 0;
  std::string first_error;

  bpf_feed() = default;
  bpf_feed(const bpf_feed&) = delete;
  bpf_feed& operator=(const bpf_feed&) = delete;
  // On an error path too: the thread is stopped before what it uses goes.
  ~bpf_feed() { end(); }
  // Nothing more is recorded; the thread reads what is left and returns. The probes' counts
  // can still be read.
  void end() {
    if (probes) probes->detach();
    ended = true;
    if (consumer.joinable()) consumer.join();
  }
};

struct trace_session::image {
  process* proc = nullptr;
  std::shared_ptr<const go_binary> bin;
  std::unique_ptr<thread_cpu_reader> cpu_clock;  // declared first: the tracer holds it
  std::unique_ptr<map_tracer> tracer;
  std::unique_ptr<bpf_feed> bpf;  // after the tracer: its thread stops before the tracer goes
  std::unordered_map<std::uint64_t, std::size_t> request_of_site;  // debugger site -> request
  hit_handler handler;
  process_figures figures;
  bool open = true;
  bool inherited = false;  // a child's image before its exec: its parent's program
  bool vfork = false;      // ... in its parent's memory
};

}  // namespace gomaptrace
