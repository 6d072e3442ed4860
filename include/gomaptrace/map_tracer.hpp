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
#include <queue>
#include <set>
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

// The tracer's own cost of one stop (int3 -> tracer -> thread running again, the tracer's
// handler excluded), measured at start-up on a child of gomaptrace (trace_session), near and
// far (stop_cost) apart. Durations subtract one stop for every stop on the thread inside the
// interval, at the cost of where the thread ran.
struct stop_calibration {
  std::uint64_t wall_ns = 0;        // median round trip, wall clock
  std::uint64_t cpu_ns = 0;         // of which on the stopped thread's own CPU clock (near)
  std::uint64_t wall_error_ns = 0;  // half the p10..p90 spread of the wall samples
  std::uint64_t cpu_error_ns = 0;
  std::uint64_t cpu_far_ns = 0;  // the child on another CPU than the tracer (0: one CPU)
  std::uint64_t cpu_far_error_ns = 0;
  std::uint64_t samples = 0;
  std::string method;  // how it was measured, for the summary
  // Measured again in the program itself, between two consecutive inserts on one thread with
  // no other stop between them (one stop plus one mapassign): the cost of a stop in this
  // program, which the start-up child underestimates. Used when it has enough samples.
  std::uint64_t live_cpu_ns = 0, live_error_ns = 0, live_samples = 0;
  std::uint64_t live_far_ns = 0, live_far_error_ns = 0, live_far_samples = 0;
  std::uint64_t used_ns = 0;  // what was subtracted per near stop in the end
  std::uint64_t used_error_ns = 0;
  std::uint64_t used_far_ns = 0;  // ... per far stop
  std::uint64_t used_far_error_ns = 0;
  std::string used;  // "start-up", "live" or "live near, start-up far"
  [[nodiscard]] stop_cost used_cost() const { return {used_ns, used_far_ns}; }
};

// Where a stopped thread last ran: true on another CPU than the tracer's now (nullopt:
// unknown). Read only for stops inside timed calls and live-calibration samples.
using thread_placement = std::function<std::optional<bool>(pid_t tid)>;

// Which clock times makemap and growth. thread_cpu: the thread's on-CPU time
// (/proc/PID/task/TID/schedstat), which does not advance while the thread sits in a ptrace
// stop nor while it waits for a CPU; wall: steady_clock, minus the handler's measured time.
enum class latency_clock { wall, thread_cpu };
std::string_view to_string(latency_clock c);

// A thread's on-CPU nanoseconds, read while it is stopped (nullopt: unreadable).
using thread_cpu_clock = std::function<std::optional<std::uint64_t>(pid_t tid)>;

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
  stop_calibration calibration;
  latency_clock clock = latency_clock::wall;
  thread_cpu_clock cpu_clock;  // required for latency_clock::thread_cpu
  thread_placement ran_far;    // without it every stop is near
  bool profile = false;        // aggregate values per call stack (--pprof): unwinds every insert
};

enum class site_kind { made, first_seen };
std::string_view to_string(site_kind k);

// How many events may wait for an earlier call to return before they are written anyway (and
// counted in trace_stats::out_of_order): a call that never returns must not hold the stream.
inline constexpr std::size_t max_queued_events = 4096;

// Per site: where the map was made (first frame outside the runtime of the makemap call) or,
// for a map the tracer first met at an insert or a growth, where that happened.
struct site_stats {
  std::string function;
  std::string file;
  int line = 0;
  site_kind kind = site_kind::made;
  // first_seen: the line of the literal or make() that made the maps without a runtime
  // call, where the binary's code tells it (go_binary::compiler_made_map_lines).
  std::optional<int> made_line;
  std::uint64_t maps = 0;
  std::uint64_t grows = 0;    // each growth once: hashGrow, or swiss growToTable/grow/split
  std::uint64_t assigns = 0;  // inserts into maps of this site
  std::optional<std::int64_t> hint_min, hint_max;
  std::vector<timed_ns> init_timed;  // makemap calls
  std::vector<timed_ns> grow_timed;  // growth, summed per map that grew
  // Filled by map_tracer::finish() from the above: corrected ns.
  std::vector<std::uint64_t> init_ns;
  std::vector<std::uint64_t> grow_ns;
  // Corrected figures below these are within the calibration's error (stops x error).
  std::uint64_t init_noise_ns = 0, grow_noise_ns = 0;
  std::uint64_t peak_entries = 0;  // largest count (classic) / used (swiss) of one map
  std::uint64_t peak_size = 0;     // largest B (classic) or total capacity (swiss) of one map
  std::uint64_t grow_bytes = 0;    // bucket/group arrays allocated by growth
  std::map<std::string, std::uint64_t> types;
  // Maps of this site were made by maps.Clone, which takes no size hint: the advice is to
  // make the map with one and copy into it.
  bool cloned = false;
};

// What `make(map[K]V, hint)` at the site would have saved; only for sites whose maps grew.
struct presize_advice {
  std::uint64_t hint = 0;
  bool instead_of_clone = false;  // make with the hint and copy, in place of maps.Clone
  std::uint64_t grows_avoided = 0;
  std::uint64_t grow_ns_saved = 0;
};
std::optional<presize_advice> advice_for(const site_stats& s);

// Values per call stack (--pprof); the stack starts at the site frame, innermost first.
struct profile_entry {
  std::vector<stack_frame> stack;
  std::uint64_t maps = 0, grows = 0, inserts = 0, grow_ns = 0, init_ns = 0, grow_bytes = 0;
  timed_ns grow_timed, init_timed;  // grow_ns and init_ns are set from these by finish()
  // Adds another entry's counts and timings (the stack stays this one's).
  profile_entry& operator+=(const profile_entry& o) {
    maps += o.maps, grows += o.grows, inserts += o.inserts, grow_bytes += o.grow_bytes;
    grow_ns += o.grow_ns, init_ns += o.init_ns;
    grow_timed += o.grow_timed, init_timed += o.init_timed;
    return *this;
  }
};

struct trace_stats {
  // Calls per runtime symbol: entry hits plus hits on its inlined copies.
  std::map<std::string, std::uint64_t> hits;
  std::map<std::string, std::uint64_t> inlined_hits;  // the part of hits at inlined copies
  std::uint64_t events = 0;                           // events handed to the sink
  std::uint64_t maps_created = 0;                     // makemap calls seen
  std::uint64_t maps_seen = 0;                        // maps first met at an insert or a growth
  std::uint64_t grows = 0;
  std::uint64_t inserts = 0;            // mapassign* calls
  std::uint64_t unmatched_returns = 0;  // returns whose entry we did not see (attach mid-call)
  std::uint64_t read_errors = 0;        // tracee memory that could not be read
  // Events written before an earlier call still open had returned: more than max_queued_events
  // waited behind it (a call that never returns, e.g. a panic out of makemap).
  std::uint64_t out_of_order = 0;
  std::map<std::string, site_stats> sites;  // key "kind file:line"
  stop_calibration calibration;
  latency_clock clock = latency_clock::wall;
  std::uint64_t clock_fallbacks = 0;  // timed calls that moved thread: wall clock used
  std::map<std::vector<std::uint64_t>, profile_entry> profile;  // key: the stack's pcs
};

using stack_profile = std::map<std::vector<std::uint64_t>, profile_entry>;
// Adds `from` into `into` (the images of one -f trace into the totals). Two images' stacks
// may share their pcs and name other code (two binaries, one exec'd by the other): entries
// merge only when every frame names the same function, file and line; otherwise the entry is
// kept apart under its pcs and a marker (the key is for merging only; output reads stacks).
void merge_profile(stack_profile& into, const stack_profile& from);

class map_tracer {
 public:
  map_tracer(const go_binary& bin, std::uint64_t load_bias, memory_reader read, tracer_options opts,
             event_sink& sink, gather_reader gather = {});

  const std::vector<breakpoint_request>& breakpoints() const { return requests_; }
  void on_hit(std::size_t request, const hit_context& ctx);
  // After every hit on `tid`: the handler took `handler_ns` of wall time (the session times
  // it), so the thread lost that plus one calibrated stop.
  void note_stop(pid_t tid, std::uint64_t handler_ns);
  // Settles the per-stop cost (start-up or live calibration) and fills every corrected
  // figure. Call once the program is done; stats() before it has raw timings only.
  void finish();
  const trace_stats& stats() const { return stats_; }
  // True while a call that began within `window_ns` before `now_ns` awaits its return: the
  // session keeps the tracer awake for it (process::set_wait_spin), so the stop that ends it
  // costs what the calibration measured.
  [[nodiscard]] bool timing(std::uint64_t now_ns, std::uint64_t window_ns) const {
    return !open_calls_.empty() && now_ns - std::min(now_ns, *open_calls_.rbegin()) < window_ns;
  }
  // True when the binary has a growth function to probe (needed by --max-grows).
  static bool can_count_grows(const go_binary& bin);
  // A grow or split whose rehash is probed too: folded into it at its entry, so its RETs are
  // not planted and its entry needs the registers and the goroutine alone.
  [[nodiscard]] static bool folded_at_entry(const go_binary& bin, const resolved_probe& p);

 private:
  struct pending_call {
    std::uint64_t time_ns;
    pid_t tid = 0;
    std::optional<std::uint64_t> cpu_ns;
    std::uint64_t stops = 0;        // the thread's stop count at entry
    std::uint64_t far = 0;          // ... and far stop count
    std::uint64_t overhead_ns = 0;  // the thread's wall overhead at entry
    hit_regs regs;
    bool extra_known = true;  // false: an inlined copy whose recipe has no hint register
    std::vector<field_value> before;
    std::vector<field_value> table;
    std::optional<std::string> type;
    std::vector<stack_frame> stack;
    std::optional<map_event> folded;  // rehash: the grow or split it wrapped
    std::uint64_t folded_bytes = 0;
  };
  struct map_record {
    site_stats* site = nullptr;
    std::string site_key;
    std::optional<std::string> type;
    std::optional<std::uint64_t> seed;  // hash0 / seed: a new map at a reused address differs
    std::uint64_t peak_entries = 0;
    std::optional<std::size_t> grow_slot;  // index into site->grow_ns
  };
  struct map_identity {
    std::uint64_t count = 0, seed = 0;
  };
  struct thread_account {
    std::uint64_t stops = 0;
    std::uint64_t far = 0;  // of `stops`, those classified far (only while timing)
    std::uint64_t overhead_ns = 0;
    std::size_t open_calls = 0;  // pending calls begun on this thread: classify its stops
    // The stop count when the stop now being handled was classified, and how.
    std::uint64_t placed_at = UINT64_MAX;
    std::optional<bool> placed_far;
    // Live calibration: the CPU clock at an insert, and the stop count then.
    std::optional<std::uint64_t> sample_cpu;
    std::uint64_t sample_stops = 0;
  };

  void on_entry(const resolved_probe& p, std::size_t probe, const hit_context& ctx);
  void fold_into_rehash(const resolved_probe& p, const hit_context& ctx,
                        std::optional<std::int64_t> g);
  void on_insert(const resolved_probe& p, const hit_context& ctx);
  // slot: the pending_ key's second half (the probe, or inlined_slot() of a copy).
  void on_return(const resolved_probe& p, std::size_t slot, const hit_context& ctx);
  void on_growth_return(const resolved_probe& p, pending_call& c, const hit_context& ctx,
                        map_event& e);
  static std::size_t inlined_slot(std::size_t probe, std::size_t site) {
    return ((probe + 1) << 32) | site;
  }

  std::optional<std::int64_t> goid(const hit_regs& r);
  std::optional<std::string> type_name(std::uint64_t type_addr);
  std::optional<map_identity> identity(std::uint64_t map);
  std::uint64_t group_bytes(std::uint64_t type_addr);
  std::uint64_t growth_bytes(const map_event& e, std::uint64_t type_addr);
  std::vector<field_value> map_fields(std::uint64_t map, bool capacity_too = true);
  struct directory_cache {
    std::uint64_t seed = 0;  // of the map it describes
    struct table {
      std::uint64_t refs = 0;      // directory entries pointing at it
      std::uint64_t capacity = 0;  // slots
    };
    std::vector<std::uint64_t> dir;
    std::unordered_map<std::uint64_t, table> tables;
    std::uint64_t capacity = 0;  // the sum over `tables`
  };
  const directory_cache& update_directory(std::uint64_t map, std::uint64_t seed,
                                          const std::vector<std::uint64_t>& dir);
  bool read_values(const std::vector<std::uint64_t>& at, std::size_t size,
                   std::vector<std::uint64_t>& out);
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
  timed_ns measure(const pending_call& c, const hit_context& ctx);
  void stamp(map_event& e, const timed_ns& t, const pending_call& c, const hit_context& ctx) const;
  stop_cost per_stop() const;
  // Whether the round trip ending at the stop now being handled ran far (nullopt: unknown).
  std::optional<bool> place_stop(pid_t tid);
  void sample_stop_cost(pid_t tid);
  site_stats& site_for(const std::vector<stack_frame>& stack, site_kind kind, std::string* key);
  map_record& record_map(std::uint64_t map, const std::vector<stack_frame>& stack, site_kind kind,
                         const std::optional<std::string>& type);
  map_record& known_map(std::uint64_t map, const std::vector<stack_frame>& stack,
                        const std::optional<std::string>& type);
  // map_known false: an inlined copy without a recipe, whose map address is unknown.
  void note_creation(map_event& e, const timed_ns& t, bool map_known = true);
  pending_call begin_call(const hit_context& ctx, const hit_regs& regs);
  void note_growth(map_event& e, const timed_ns& t, std::uint64_t bytes);
  void note_peak(map_record& rec, std::uint64_t entries);
  void add_profile(const std::vector<stack_frame>& stack, const profile_entry& v);
  void label(map_event& e, const map_record& rec) const;
  // Events leave in call-time order. A call's event is known only at its return, so one
  // that started later but returned sooner waits in queue_ until every earlier call still
  // open has returned (or the queue is full: a call that never returns, e.g. a panic out of
  // makemap, must not hold the stream for good).
  void emit(map_event& e, bool high_volume);
  void deliver(map_event& e, bool high_volume);
  void release(bool all);
  void open_call(std::uint64_t time_ns) { open_calls_.insert(time_ns); }
  void close_call(std::uint64_t time_ns);

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
  std::unordered_map<std::uint64_t, directory_cache> directories_;  // Swiss maps, per address
  std::unordered_map<std::uint64_t, std::uint64_t> group_bytes_;    // map type -> group bytes
  std::unordered_map<pid_t, thread_account> threads_;
  std::optional<field_layout> count_field_, seed_field_;
  std::size_t rehash_probe_ = SIZE_MAX;  // the probe whose calls fold an inner growth
  // CPU ns of one stop (+ one insert) in the program, near and far apart.
  std::vector<std::uint64_t> live_samples_, live_far_samples_;
  // Calls waiting for their return, per goroutine (or thread on g0) and probe.
  std::map<std::pair<std::int64_t, std::size_t>, std::vector<pending_call>> pending_;
  // Registers at the entry of a caller holding an inlined copy with a recipe, per goroutine
  // and copy, until the copy's body is reached.
  std::map<std::pair<std::int64_t, std::size_t>, std::vector<hit_regs>> inlined_args_;
  struct queued_event {
    map_event e;
    bool high_volume;
    std::uint64_t seq;  // ties keep the order of emission
  };
  struct later {
    bool operator()(const queued_event& a, const queued_event& b) const {
      return a.e.time_ns != b.e.time_ns ? a.e.time_ns > b.e.time_ns : a.seq > b.seq;
    }
  };
  std::priority_queue<queued_event, std::vector<queued_event>, later> queue_;
  std::multiset<std::uint64_t> open_calls_;  // call times of pending_ entries
  std::uint64_t emitted_seq_ = 0;
};

}  // namespace gomaptrace
