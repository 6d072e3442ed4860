// layer: trace
#pragma once
// Turns breakpoint hits into map events. It sees a hit as registers plus a memory reader,
// so it runs the same over a live process or over canned bytes in a unit test.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/go_binary.hpp"
#include "gomaptrace/map_event.hpp"
#include "gomaptrace/regex.hpp"
#include "gomaptrace/type_name.hpp"

namespace gomaptrace {

struct hit_regs {
  std::uint64_t rip = 0, rsp = 0, rbp = 0, r14 = 0;
  std::uint64_t rax = 0, rbx = 0, rcx = 0, rdi = 0, rsi = 0, r8 = 0, r9 = 0, r10 = 0, r11 = 0;
  std::uint64_t arg(arg_reg r) const;
  void set_arg(arg_reg r, std::uint64_t v);
};

struct hit_context {
  pid_t pid = 0;  // the process (-f traces several)
  pid_t tid = 0;
  std::uint64_t time_ns = 0;  // since the trace started
  hit_regs regs;
  // The call chain a backend captured at the hit (--bpf: [rsp] and the frame pointers): return
  // addresses, innermost first, as unwind() would read them from the stack. Null: unwind
  // from the registers through the memory reader.
  const std::vector<std::uint64_t>* chain = nullptr;
};

enum class request_kind {
  entry,                  // the probed function, after its stack check
  ret,                    // one of its RETs
  inlined_body,           // the first PC of an inlined copy: counts as a call
  inlined_caller_entry,   // the entry of the caller of a copy with a recipe: its arguments
  inlined_caller_return,  // a RET of that caller: the copy's result
};

struct breakpoint_request {
  virt_addr addr;
  std::size_t probe = 0;  // index into go_binary::probes()
  bool is_return = false;
  request_kind kind = request_kind::entry;
  std::size_t site = 0;  // inlined_*: index into the probe's inlined_sites
};

// Reads `len` bytes at each address, concatenated in order: one call for many small reads
// (the capacity of every table of a large Swiss map). Optional: without one the tracer
// reads address by address.
using gather_reader = std::function<expected<std::vector<std::byte>>(
    const std::vector<std::uint64_t>& addrs, std::size_t len)>;

class event_sink {
 public:
  virtual ~event_sink() = default;
  virtual void on_event(const map_event& e) = 0;
  // A map made by makemap_small gets its type from its first insert.
  virtual void on_map_typed(std::uint64_t /*map*/, const std::string& /*type*/) {}
};

struct tracer_options {
  int stack_depth = 6;      // frames printed per event
  bool all_events = false;  // print every insert, growWork and evacuate too
  // Hand on only events whose call chain has a matching function (--filter). Matched against
  // the whole chain, not just the printed frames; counts and sites cover every event.
  std::optional<regex_matcher> filter;
  // Walk every frame of each call chain, not only enough for the printed frames and the
  // creation site: --filter and --expect func labels must see the whole chain.
  bool full_chain = false;
  // Sees every event the tracer builds, with its whole call chain, before --filter and
  // --stack trim it (--expect). With observe_high_volume, inserts and evacuations are built
  // for it even when not printed.
  event_sink* observer = nullptr;
  bool observe_high_volume = false;
  // Where an entry's breakpoint goes. ptrace (true): the int3 past Go's one-byte `push rbp`
  // (resolved_probe::trap), where RIP-1 alone proves a trap ours, so no PTRACE_GETSIGINFO;
  // the registers are taken as at the end of the stack check. Uprobes (--bpf, false): the
  // post-check `push rbp` itself, which the kernel emulates (~1.3 us; a `mov` there would be
  // single-stepped out of line, ~10 us).
  bool entry_past_push = true;
};

// Per creation site (the first caller outside the runtime), for summaries.
struct site_stats {
  std::string function;
  std::string file;
  int line = 0;
  std::uint64_t maps = 0;
  std::uint64_t grows = 0;    // hashGrow, or swiss growToTable/grow/split
  std::uint64_t assigns = 0;  // inserts into maps made here
  std::optional<std::int64_t> hint_min, hint_max;
  std::vector<std::uint64_t> init_ns;  // makemap durations
  std::map<std::string, std::uint64_t> types;
};

struct trace_stats {
  // Calls per runtime symbol: entry hits plus hits on its inlined copies.
  std::map<std::string, std::uint64_t> hits;
  std::map<std::string, std::uint64_t> inlined_hits;  // the part of hits at inlined copies
  std::uint64_t events = 0;                           // events handed to the sink
  std::uint64_t maps_created = 0;
  std::uint64_t grows = 0;
  std::uint64_t inserts = 0;                // mapassign* calls
  std::uint64_t unmatched_returns = 0;      // returns whose entry we did not see (attach mid-call)
  std::uint64_t read_errors = 0;            // tracee memory that could not be read
  std::map<std::string, site_stats> sites;  // key "file:line"
};

class map_tracer {
 public:
  map_tracer(const go_binary& bin, std::uint64_t load_bias, memory_reader read, tracer_options opts,
             event_sink& sink, gather_reader gather = {});

  const std::vector<breakpoint_request>& breakpoints() const { return requests_; }
  void on_hit(std::size_t request, const hit_context& ctx);
  const trace_stats& stats() const { return stats_; }
  // True when the binary has a growth function to probe (needed by --max-grows).
  static bool can_count_grows(const go_binary& bin);

 private:
  struct pending_call {
    std::uint64_t time_ns;
    hit_regs regs;
    std::vector<field_value> before;
    std::vector<field_value> table;
    std::optional<std::string> type;
    std::vector<stack_frame> stack;
  };
  struct map_record {
    std::string site;  // key into stats_.sites, empty if made before we watched
    std::optional<std::string> type;
  };

  void on_entry(const resolved_probe& p, std::size_t probe, const hit_context& ctx);
  // slot: the pending_ key's second half (the probe, or inlined_slot() of a copy).
  void on_return(const resolved_probe& p, std::size_t slot, const hit_context& ctx);
  static std::size_t inlined_slot(std::size_t probe, std::size_t site) {
    return ((probe + 1) << 32) | site;
  }

  std::optional<std::int64_t> goid(const hit_regs& r);
  std::optional<std::string> type_name(std::uint64_t type_addr);
  std::vector<field_value> map_fields(std::uint64_t map, bool capacity_too = true);
  std::vector<field_value> table_fields(std::uint64_t table);
  // in_frame: r.rip is inside a function that has set up its frame (an inlined copy), not
  // at an entry or RET where [rsp] is the return address.
  std::vector<stack_frame> unwind(const hit_regs& r, bool in_frame = false);
  std::vector<stack_frame> unwind_captured(const hit_regs& r, bool in_frame);
  void on_inlined(const breakpoint_request& r, const resolved_probe& p, const hit_context& ctx);
  void on_inlined_body(const resolved_probe& p, const breakpoint_request& r,
                       const hit_context& ctx);
  const std::vector<stack_frame>& symbolize(std::uint64_t pc, bool is_return_address);
  std::optional<std::uint64_t> read_u64(std::uint64_t addr);
  std::int64_t call_key(const hit_context& ctx, std::optional<std::int64_t> g) const;
  map_event base_event(const resolved_probe& p, const hit_context& ctx,
                       std::optional<std::int64_t> g);
  void note_creation(map_event& e, bool map_known = true);
  void note_grow(std::uint64_t map);
  std::optional<creation_site> site_of(std::uint64_t map) const;
  void emit(map_event& e, bool high_volume);

  const go_binary& bin_;
  std::uint64_t bias_;
  memory_reader read_;
  gather_reader gather_;
  tracer_options opts_;
  event_sink& sink_;
  std::vector<breakpoint_request> requests_;
  std::optional<std::uint64_t> types_base_;
  trace_stats stats_;
  std::vector<std::uint32_t> entry_pushed_;            // per probe: bytes pushed before its int3
  std::vector<std::uint64_t*> hit_counters_;           // per probe, into stats_.hits
  const std::vector<std::uint64_t>* chain_ = nullptr;  // the current hit's captured chain
  std::unordered_map<std::uint64_t, std::optional<std::string>> type_cache_;
  std::unordered_map<std::uint64_t, std::vector<stack_frame>> symbol_cache_;
  std::unordered_map<std::uint64_t, map_record> maps_;
  // Calls waiting for their return, per goroutine (or thread on g0) and probe.
  std::map<std::pair<std::int64_t, std::size_t>, std::vector<pending_call>> pending_;
  // Registers at the entry of a caller holding an inlined copy with a recipe, per goroutine
  // and copy, until the copy's body is reached.
  std::map<std::pair<std::int64_t, std::size_t>, std::vector<hit_regs>> inlined_args_;
};

}  // namespace gomaptrace
