#include "gomaptrace/trace_session.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>

#include "gomaptrace/bpf_probes.hpp"
#include "gomaptrace/cpu_wake.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/fd.hpp"
#include "gomaptrace/process.hpp"
#include "gomaptrace/process_tree.hpp"
#include "gomaptrace/uprobe_counters.hpp"
#include "session_image.hpp"

namespace gomaptrace {

namespace {

std::uint64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::vector<std::string> inlining_warnings(const go_binary& bin) {
  std::vector<std::string> warnings;
  for (const resolved_probe& p : bin.probes()) {
    // Every inlined copy is probed; only those no recipe decodes lose their details.
    std::size_t unknown = 0;
    for (const inlined_site& s : p.inlined_sites) unknown += s.recipe == nullptr;
    if (unknown > 0) {
      warnings.push_back(
          fmt::format("{} is inlined into {} place(s) whose arguments are unknown: those calls "
                      "are counted, with their call chains, but print no event",
                      p.symbol, unknown));
    }
  }
  return warnings;
}

// The calibration child calls this in a loop under a breakpoint. The nop gives the
// breakpoint an ordinary instruction to run out of line, as a Go function's first one is.
[[gnu::noinline]] void calibration_target() {
  asm volatile("nop" ::: "memory");
}

// How long the tracer polls for the next stop before it sleeps (process::set_wait_spin):
// session_options::poll, by default long enough to cover the few microseconds between the
// hits of a map-heavy loop, so a stop costs the program ~3 us rather than 13-25 us. While a
// call is being timed, longer (a Swiss rehash takes ~100 us), but only for calls younger than
// the window: a call that never returns must not keep the tracer spinning.
constexpr std::chrono::microseconds timing_wait_spin{2000};
constexpr std::chrono::nanoseconds timing_spin_window{std::chrono::milliseconds(10)};
std::chrono::nanoseconds timing_spin(std::chrono::nanoseconds poll) {
  return poll.count() == 0 ? poll : std::max<std::chrono::nanoseconds>(poll, timing_wait_spin);
}

std::uint64_t quantile(std::vector<std::uint64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5))];
}

}  // namespace

// /proc/PID/task/TID/<file>, through one file kept open per thread: a pread per reading
// instead of open+read+close. nullopt when the thread is gone (its file is dropped: a new
// thread may reuse the id).
std::optional<std::string_view> thread_cpu_reader::read_task(
    std::unordered_map<pid_t, unique_fd>& fds, const char* file, pid_t tid, std::span<char> buf) {
  auto it = fds.find(tid);
  if (it == fds.end()) {
    unique_fd fd(
        ::open(fmt::format("/proc/{}/task/{}/{}", pid_, tid, file).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    it = fds.emplace(tid, std::move(fd)).first;
  }
  ssize_t n = ::pread(it->second.get(), buf.data(), buf.size(), 0);
  if (n <= 0) {
    fds.erase(it);
    return std::nullopt;
  }
  return std::string_view(buf.data(), static_cast<std::size_t>(n));
}

std::optional<std::uint64_t> thread_cpu_reader::operator()(pid_t tid) {
  // The first field of schedstat is the thread's time on a CPU, in ns.
  char buf[96];
  auto text = read_task(fds_, "schedstat", tid, buf);
  if (!text) return std::nullopt;
  std::uint64_t v = 0;
  if (std::from_chars(text->data(), text->data() + text->size(), v).ec != std::errc())
    return std::nullopt;
  return v;
}

std::optional<int> thread_cpu_reader::cpu_of(pid_t tid) {
  // Field 39 of stat, `processor`: the CPU the thread last ran on. The name field may hold
  // spaces and parentheses, so the count starts after its last ')'.
  char buf[1024];
  auto text = read_task(stat_fds_, "stat", tid, buf);
  if (!text) return std::nullopt;
  std::string_view line = *text;
  auto close = line.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::size_t pos = close + 2;  // field 3, `state`
  for (int field = 3; field < 39; ++field) {
    pos = line.find(' ', pos);
    if (pos == std::string_view::npos) return std::nullopt;
    ++pos;
  }
  int cpu = -1;
  if (std::from_chars(line.data() + pos, line.data() + line.size(), cpu).ec != std::errc())
    return std::nullopt;
  return cpu;
}

namespace {

// `rounds` breakpoint round trips on a child of ours, pinned to `child_cpu` when set. Appends
// the wall and CPU samples; returns what failed, empty on success.
std::string round_trips(int rounds, std::chrono::nanoseconds poll, std::optional<int> child_cpu,
                        std::vector<std::uint64_t>& wall, std::vector<std::uint64_t>& cpu) {
  int go[2];
  if (::pipe2(go, O_CLOEXEC) < 0) return fmt::format("pipe: {}", std::strerror(errno));
  unique_fd go_read(go[0]), go_write(go[1]);
  const pid_t child = ::fork();
  if (child < 0) return fmt::format("fork: {}", std::strerror(errno));
  if (child == 0) {
    go_write.reset();
    if (child_cpu) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(*child_cpu, &set);
      (void)::sched_setaffinity(0, sizeof set, &set);
    }
    char c;
    while (::read(go_read.get(), &c, 1) < 0 && errno == EINTR) {
    }
    for (int i = 0; i < rounds; ++i) calibration_target();
    ::_exit(0);
  }
  go_read.reset();
  try {
    auto proc = process::attach(child);
    proc->set_wait_spin(poll);  // as a traced program's stops are waited for
    auto id = proc->add_breakpoint(virt_addr(reinterpret_cast<std::uint64_t>(&calibration_target)));
    if (!id) throw std::runtime_error(id.error());
    thread_cpu_reader clock(child);
    std::uint64_t last_end = 0;
    std::optional<std::uint64_t> last_cpu;
    auto handler = [&](const breakpoint_hit& hit) {
      const std::uint64_t start = now_ns();
      auto c = clock(hit.tid);
      if (last_end) wall.push_back(start - last_end);
      if (last_cpu && c) cpu.push_back(*c - *last_cpu);
      last_cpu = c;
      last_end = now_ns();
    };
    (void)!::write(go_write.get(), "x", 1);
    go_write.reset();
    while (proc->run(handler).what == run_result::kind::stopped) {
    }
  } catch (const std::exception& e) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, __WALL);
    return e.what();
  }
  return {};
}

// Three batches, the quietest one kept: on shared cores a burst of load (or hypervisor
// steal, which the guest counts as CPU time) only ever adds to a stop's cost.
std::uint64_t quietest(const std::vector<std::uint64_t>& v, std::uint64_t* err) {
  constexpr std::size_t batches = 3;
  std::uint64_t best = UINT64_MAX;
  for (std::size_t b = 0; b < batches; ++b) {
    std::vector<std::uint64_t> part(v.begin() + b * v.size() / batches,
                                    v.begin() + (b + 1) * v.size() / batches);
    if (part.empty()) continue;
    std::uint64_t m = quantile(part, 0.5);
    if (m < best) {
      best = m;
      *err = (quantile(part, 0.9) - quantile(part, 0.1)) / 2;
    }
  }
  return best == UINT64_MAX ? 0 : best;
}

// Two CPUs gomaptrace may run on, or nullopt when it has only one.
std::optional<std::pair<int, int>> two_cpus(const cpu_set_t& mine) {
  std::optional<int> first;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &mine)) continue;
    if (!first) {
      first = c;
    } else {
      return std::pair{*first, c};
    }
  }
  return std::nullopt;
}

}  // namespace

stop_calibration calibrate_stop_cost(int rounds, std::chrono::nanoseconds poll) {
  // A child of ours calls a function `rounds` times with the debugger's breakpoint on it:
  // the same int3, waitpid, register and out-of-line path a probe hit takes. Between the end
  // of one handler and the start of the next lies one stop's round trip (the loop's own
  // work is a few ns); the child's schedstat gives the part of it on the child's CPU clock.
  // Near: gomaptrace and the child pinned to one CPU; far: to two (see stop_cost). The
  // tracer's own affinity is restored after.
  stop_calibration cal;
  std::vector<std::uint64_t> wall, cpu, far_wall, far_cpu;
  cpu_set_t mine;
  CPU_ZERO(&mine);
  std::optional<std::pair<int, int>> cpus;
  if (::sched_getaffinity(0, sizeof mine, &mine) == 0) cpus = two_cpus(mine);
  std::string failed;
  if (cpus) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus->first, &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0) cpus.reset();
  }
  failed = round_trips(rounds, poll, cpus ? std::optional(cpus->first) : std::nullopt, wall, cpu);
  if (failed.empty() && cpus) failed = round_trips(rounds, poll, cpus->second, far_wall, far_cpu);
  if (cpus) (void)::sched_setaffinity(0, sizeof mine, &mine);
  if (!failed.empty()) {
    cal.method = "not calibrated: " + failed;
    return cal;
  }
  cal.samples = wall.size() + far_wall.size();
  cal.wall_ns = quietest(wall, &cal.wall_error_ns);
  cal.cpu_ns = quietest(cpu, &cal.cpu_error_ns);
  cal.cpu_far_ns = quietest(far_cpu, &cal.cpu_far_error_ns);
  cal.method = fmt::format(
      "{} breakpoint round trips on a child of gomaptrace at start-up, {}in 3 batches; the "
      "quietest batch's median (wall: one handler's end to the next one's start; cpu: the "
      "child's schedstat); error: half its p10..p90 spread",
      cal.samples,
      cpus ? fmt::format("half with the child on gomaptrace's CPU {} (near), half on CPU {} "
                         "(far), each ",
                         cpus->first, cpus->second)
           : "");
  return cal;
}

trace_session::trace_session(session_options opts) : opts_(std::move(opts)) {
  bin_ = std::shared_ptr<go_binary>(go_binary::open(opts_.program).release());
  std::string why;
  if (!bin_->traceable(&why)) throw fatal_error(exit_code::unsupported_go, why);
  if (opts_.need_grows && !map_tracer::can_count_grows(*bin_)) {
    throw fatal_error(exit_code::trace_failed,
                      fmt::format("{}: --max-grows: the binary has no growth function to probe",
                                  opts_.program.string()));
  }
  outcome_.binary = opts_.program.string();
  if (opts_.pid != 0) {
    // The tracer reads /proc/PID/exe (it opens even when the file was replaced on disk); the
    // user wants the executable's real path.
    std::error_code ec;
    auto real = std::filesystem::read_symlink(fmt::format("/proc/{}/exe", opts_.pid), ec);
    if (!ec) outcome_.binary = real.string();
  }
  outcome_.go_version = bin_->version().raw;
  outcome_.map_impl = std::string(to_string(bin_->impl()));
  outcome_.attached = opts_.pid != 0;
  outcome_.warnings = inlining_warnings(*bin_);
}

trace_session::~trace_session() = default;

// The program's image as the summary names it: absolute, as the images exec'd later are (from
// /proc/PID/exe); attached, the executable's real path rather than /proc/PID/exe.
std::string trace_session::root_binary_name() const {
  return opts_.pid != 0 ? outcome_.binary : std::filesystem::absolute(opts_.program).string();
}

// Measured once per session, for every image: the breakpoint path is gomaptrace's own.
const stop_calibration& trace_session::stop_cost() {
  if (!calibration_) {
    stop_calibration c = opts_.tracer.calibration;
    if (c.samples == 0 && c.method.empty()) c = calibrate_stop_cost(301, opts_.poll);
    if (c.samples == 0) outcome_.warnings.push_back("durations are not corrected: " + c.method);
    calibration_ = std::move(c);
  }
  return *calibration_;
}

void trace_session::start() {
  if (opts_.bpf) bpf_probes::require_permission();  // before anything is launched or seized
  if (opts_.pid != 0) {
    proc_ = process::attach(opts_.pid);
  } else {
    launch_options lo;
    lo.kill_with_tracer = !opts_.bpf;  // --bpf writes nothing into it: it may outlive us
    proc_ = process::launch(opts_.program, opts_.command, lo);
  }
  root_ = proc_.get();
  outcome_.pid = proc_->pid();
  proc_->record_signal_senders(opts_.forwarded_signals);
}

int trace_session::pid() const {
  return root_ ? root_->pid() : 0;
}

const trace_stats& trace_session::stats() const {
  if (counters_) return count_stats_;
  return totals_;
}

run_counts trace_session::counts() const {
  if (counters_ || images_.empty()) return counts_from_hits(*bin_, stats().hits);
  run_counts total;
  for (const auto& im : images_) {
    const trace_stats& s = im->open ? im->tracer->stats() : im->figures.stats;
    const run_counts c = counts_from_hits(*im->bin, s.hits);
    total.maps += c.maps;
    total.grows += c.grows;
    total.inserts += c.inserts;
    total.evacuations += c.evacuations;
    for (const auto& [sym, n] : c.hits) total.hits[sym] += n;
  }
  return total;
}

void trace_session::plant(image& im) {
  // Breakpoint site ids from the debugger map back to the tracer's requests.
  const auto& reqs = im.tracer->breakpoints();
  const std::string& path = im.figures.binary;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    auto id = im.proc->add_breakpoint(reqs[i].addr);
    if (!id) {
      throw fatal_error(
          exit_code::trace_failed,
          fmt::format("{}: cannot plant a breakpoint at {:#x} ({}): {}", path, reqs[i].addr.value(),
                      im.bin->probes()[reqs[i].probe].symbol, id.error()));
    }
    if (!im.request_of_site.emplace(*id, i).second) {
      throw fatal_error(
          exit_code::trace_failed,
          fmt::format("{}: two probes share the address {:#x}", path, reqs[i].addr.value()));
    }
  }
}

// What every image starts with, on either backend: its process, its binary, and the figures
// that name them (`binary`: the name it is shown by).
std::unique_ptr<trace_session::image> trace_session::new_image(process& p,
                                                               std::shared_ptr<const go_binary> bin,
                                                               std::string binary) const {
  auto im = std::make_unique<image>();
  im->proc = &p;
  im->bin = std::move(bin);
  im->figures.pid = p.pid();
  im->figures.binary = std::move(binary);
  im->figures.go_version = im->bin->version().raw;
  im->figures.map_impl = std::string(to_string(im->bin->impl()));
  return im;
}

// Process `p` runs `im` from now on.
trace_session::image& trace_session::adopt(process& p, std::unique_ptr<image> im) {
  image* raw = im.get();
  image_of_[&p] = raw;
  images_.push_back(std::move(im));
  return *raw;
}

// A tracer for what process `p` runs now. With `parent`, p is a fork or vfork child holding a
// copy of the parent's breakpoints under the same ids; without, its breakpoints are planted.
trace_session::image& trace_session::trace_image(process& p, std::shared_ptr<const go_binary> bin,
                                                 const image* parent) {
  auto im = new_image(p, std::move(bin), parent ? parent->figures.binary : root_binary_name());
  p.set_wait_spin(opts_.poll);
  const go_binary& b = *im->bin;
  const std::uint64_t bias = b.elf().is_pie() ? p.load_bias(b.elf().entry()) : 0;
  process* pp = &p;
  memory_reader reader = [pp](std::uint64_t addr,
                              std::size_t len) -> expected<std::vector<std::byte>> {
    std::vector<std::byte> buf(len);
    if (auto r = pp->read_memory(virt_addr(addr), buf); !r) return unexpected(r.error());
    return buf;
  };
  gather_reader gather = [pp](const std::vector<std::uint64_t>& addrs,
                              std::size_t len) -> expected<std::vector<std::byte>> {
    std::vector<std::byte> buf(addrs.size() * len);
    std::vector<memory_range> ranges;
    ranges.reserve(addrs.size());
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      ranges.push_back({virt_addr(addrs[i]), std::span<std::byte>(buf).subspan(i * len, len)});
    }
    if (auto r = pp->read_memory_many(ranges); !r) return unexpected(r.error());
    return buf;
  };
  tracer_options topts = opts_.tracer;
  topts.calibration = stop_cost();
  // The thread's own CPU clock, per process (schedstat under /proc/PID/task/TID).
  im->cpu_clock = std::make_unique<thread_cpu_reader>(p.pid());
  thread_cpu_reader* cpu = im->cpu_clock.get();
  topts.cpu_clock = [cpu](pid_t tid) { return (*cpu)(tid); };
  topts.ran_far = [cpu](pid_t tid) -> std::optional<bool> {
    auto theirs = cpu->cpu_of(tid);
    const int ours = ::sched_getcpu();
    if (!theirs || ours < 0) return std::nullopt;
    return *theirs != ours;
  };
  im->tracer = std::make_unique<map_tracer>(b, bias, reader, topts, *sink_, gather);
  // The handler runs while the hitting thread sits on its breakpoint: whatever goes wrong in
  // decoding or printing one hit is recorded, never thrown through the debugger, which must
  // always get to move the thread on.
  image* raw = im.get();
  im->handler = [this, raw](const breakpoint_hit& hit) {
    try {
      hit_context ctx;
      ctx.pid = raw->figures.pid;
      ctx.tid = hit.tid;
      const std::uint64_t t0 = now_ns();
      ctx.time_ns = t0 - start_ns_;
      const registers& r = hit.regs;
      ctx.regs = {r.rip(), r.rsp(), r.rbp(), r.r14(), r.rax(), r.rbx(), r.rcx(),
                  r.rdi(), r.rsi(), r.r8(),  r.r9(),  r.r10(), r.r11()};
      raw->tracer->on_hit(raw->request_of_site.at(hit.id), ctx);
      const std::uint64_t t1 = now_ns();
      raw->tracer->note_stop(hit.tid, t1 - t0);
      raw->proc->set_wait_spin(raw->tracer->timing(t1 - start_ns_, timing_spin_window.count())
                                   ? timing_spin(opts_.poll)
                                   : std::chrono::nanoseconds(opts_.poll));
    } catch (const std::exception& e) {
      if (handler_errors_++ == 0) first_handler_error_ = e.what();
    }
  };
  if (parent)
    im->request_of_site = parent->request_of_site;
  else
    plant(*im);
  return adopt(p, std::move(im));
}

// The image `p` ran is over (its end, an exec, a detach): its figures are final.
void trace_session::close_image(process& p, const std::string& end, const run_result* r) {
  auto it = image_of_.find(&p);
  if (it == image_of_.end()) return;
  image& im = *it->second;
  image_of_.erase(it);
  im.open = false;
  im.figures.end = end;
  if (im.bpf && end != "detached") im.bpf->gone = true;  // exec'd or ended: memory not its own
  if (r && r->what == run_result::kind::signaled) {
    im.figures.signal = r->signal;
    im.figures.exit_status = 128 + r->signal;
  } else if (r) {
    im.figures.exit_status = r->status;
  }
  finish_image(im);
}

void trace_session::finish_image(image& im) {
  if (im.bpf) {
    finish_bpf(im);
    return;
  }
  im.tracer->finish();
  im.figures.stats = im.tracer->stats();
}

const run_outcome& trace_session::run(event_sink& sink, const stop_policy& on_stop) {
  if (opts_.bpf) return run_bpf(sink, on_stop);
  if (!proc_) start();
  sink_ = &sink;
  tree_ = std::make_unique<process_tree>(std::move(proc_), opts_.follow);
  keep_cpus_awake();  // before the stop calibration, so it measures the stops the run will have
  trace_image(*root_, bin_, nullptr);
  start_ns_ = now_ns();
  loop(on_stop);
  outcome_.duration_ns = now_ns() - start_ns_;
  cpus_awake_.reset();
  total_up();
  return outcome_;
}

void trace_session::keep_cpus_awake() {
  if (!opts_.keep_cpus_awake) {
    outcome_.cpu_idle_note = "--cpu-idle sleep";
    return;
  }
  auto hold = cpu_wake_hold::take();
  if (!hold) {
    outcome_.cpu_idle_note = "could not hold them awake: " + hold.error();
    return;
  }
  cpus_awake_ = std::make_unique<cpu_wake_hold>(std::move(*hold));
  outcome_.cpu_idle = "awake";
}

void trace_session::tell(const std::string& line) {
  // --bpf: events are written from the reader thread, maybe to the same stream.
  std::lock_guard lock(output_mutex_);
  if (opts_.notify) opts_.notify(line);
  outcome_.notices.push_back(line);
}

void trace_session::tell_released_children() {
  for (process* p : tree_->all()) {
    for (const released_child& c : p->take_released_children()) {
      tell(fmt::format("process {} started process {} ({}): not traced, released", p->pid(), c.pid,
                       to_string(c.via)));
    }
  }
}

// -f: a fork child runs its parent's program (a copy of its breakpoints); a vfork child runs
// in its parent's memory until it execs, and is held until then (traced, for a hit there
// would be a real call, but said nothing of unless it makes one).
void trace_session::on_born(process& child, process& parent, int via) {
  auto it = image_of_.find(&parent);
  if (it == image_of_.end()) {
    child.detach();  // cannot happen: only traced images start traced processes
    return;
  }
  const auto how = static_cast<released_child::how>(via);
  if (opts_.bpf) {
    if (!on_born_bpf(child, *it->second, via)) return;
  } else {
    image& im = trace_image(child, it->second->bin, it->second);
    im.inherited = true;
    if (released_child::shares_memory(how)) {
      im.vfork = true;
      return;
    }
  }
  tell(fmt::format("process {} started process {} ({}): traced", parent.pid(), child.pid(),
                   to_string(how)));
}

namespace {
// The program an exec'd process runs now, analysed; or why it cannot be traced.
std::shared_ptr<go_binary> analyse_image(const std::string& path, std::string* why) {
  try {
    std::shared_ptr<go_binary> b(go_binary::open(path).release());
    if (!b->traceable(why)) return nullptr;
    return b;
  } catch (const fatal_error& e) {
    *why = e.what();
    return nullptr;
  }
}
}  // namespace

// The process replaced its image: the breakpoints went with the old one. Without -f it is
// detached from (the new image runs untraced; a launched program is still waited for, its
// status is gomaptrace's). With -f a Go image is analysed and traced from its entry point.
void trace_session::on_exec(process& p) {
  std::error_code ec;
  const auto path = std::filesystem::read_symlink(fmt::format("/proc/{}/exe", p.pid()), ec);
  const std::string image_name = ec ? std::string("a new program") : path.string();
  if (auto old = image_of_.find(&p); old != image_of_.end()) {
    const image* im = old->second;
    close_image(p, "exec", nullptr);
    drop_if_silent(im, true);
  }
  std::string why = "not followed (no -f)";
  std::shared_ptr<go_binary> bin;
  if (opts_.follow && !ec) bin = analyse_image(path.string(), &why);
  // The uprobes of --bpf need no stop at the entry point: the kernel puts them into the new
  // image's mapping, which exists at the exec stop.
  if (bin && !opts_.bpf && !run_to_new_entry(p, image_name)) return;
  if (bin && opts_.bpf) {
    try {
      image& im = trace_bpf_image(p, bin, path.string());
      start_feed(im);
    } catch (const fatal_error& e) {
      why = e.what();
      bin = nullptr;
    }
  } else if (bin) {
    trace_image(p, bin, nullptr);
  }
  if (bin) {
    image& im = *image_of_.at(&p);
    im.figures.binary = path.string();
    tell(fmt::format("process {} exec'd {}: traced ({}, {} maps)", p.pid(), image_name,
                     im.figures.go_version, im.figures.map_impl));
    return;
  }
  if (opts_.follow) {
    tell(fmt::format("process {} exec'd {}: not traced ({}), released", p.pid(), image_name, why));
  } else {
    tell(fmt::format("process {} exec'd {}: detached, the new image is not traced", p.pid(),
                     image_name));
  }
  p.detach();
  if (&p == root_) {
    outcome_.detached = true;
    outcome_.exec_image = ec ? "" : path.string();
  } else {
    tree_->remove(&p);
  }
}

// -f: runs a process that exec'd a Go program to that program's entry point, where its
// breakpoints go. False when it ended or could not be run there (said in one line; the trace
// of the other processes goes on).
bool trace_session::run_to_new_entry(process& p, const std::string& image_name) {
  try {
    p.prepare_after_exec();
    return true;
  } catch (const fatal_error& e) {
    tell(fmt::format("process {} exec'd {}: not traced ({})", p.pid(), image_name, e.what()));
  }
  if (p.finished()) {
    on_ended(p, p.run([](const breakpoint_hit&) {}));  // finished: its end, nothing run
  } else {
    p.detach();
    if (&p == root_)
      outcome_.detached = true;
    else
      tree_->remove(&p);
  }
  return false;
}

// A child that ran none of its parent's probed code before it exec'd (os/exec's child, a
// shell's fork), or a vfork child that ended so (the runtime's own pidfd probe), ran nothing
// of that program worth an image of its own.
void trace_session::drop_if_silent(const image* im, bool at_exec) {
  const auto& hits = im->figures.stats.hits;
  if ((at_exec ? im->inherited : im->vfork) &&
      std::all_of(hits.begin(), hits.end(), [](auto& h) { return h.second == 0; }))
    std::erase_if(images_, [im](const auto& i) { return i.get() == im; });
}

void trace_session::on_ended(process& p, const run_result& r) {
  const auto it = image_of_.find(&p);
  const image* im = it == image_of_.end() ? nullptr : it->second;
  close_image(p, r.what == run_result::kind::signaled ? "killed" : "exited", &r);
  if (im) drop_if_silent(im, false);
  if (&p != root_) {
    tree_->remove(&p);
    return;
  }
  set_program_end(r);
}

void trace_session::set_program_end(const run_result& r) {
  if (r.what == run_result::kind::signaled) {
    outcome_.signal = r.signal;
    outcome_.exit_status = 128 + r.signal;
  } else {
    outcome_.exit_status = r.status;
  }
}

// A stop request (a signal to gomaptrace): the caller's policy decides. True when the trace
// is over (detached from every process).
bool trace_session::on_stop_request(const stop_policy& on_stop) {
  const bool attached = opts_.pid != 0;
  stop_decision d = on_stop ? on_stop(attached) : stop_decision{attached, 0};
  if (d.detach) {
    for (process* p : tree_->traced()) close_image(*p, "detached", nullptr);
    tree_->detach_all();
    tell_released_children();
    outcome_.detached = true;
    return true;
  }
  if (!d.forward_signal || root_->finished()) return false;
  // Once detached (at an exec) the program is no longer stopped: only the sender can tell.
  if (root_->detached() ||
      !(d.unless_program_got_it &&
        root_->program_got_signal(d.forward_signal, d.sender, d.sender_code, d.sent_after_ns)))
    ::kill(root_->pid(), d.forward_signal);
  return false;
}

// A launched program detached from at an exec runs on untraced: gomaptrace still waits for
// it and ends with its exit status.
void trace_session::wait_untraced(const stop_policy& on_stop) {
  for (;;) {
    run_result res = root_->wait_detached();
    if (res.what == run_result::kind::stopped) {
      // A signal aimed at gomaptrace while the program runs on untraced: the same policy, but
      // the program is no longer stopped, so only who sent it can tell a group signal.
      stop_decision d = on_stop ? on_stop(false) : stop_decision{};
      if (d.forward_signal) ::kill(root_->pid(), d.forward_signal);
      continue;
    }
    set_program_end(res);
    return;
  }
}

void trace_session::loop(const stop_policy& on_stop) {
  const hit_handler none = [](const breakpoint_hit&) {};
  auto handler_of = [&](process& p) -> const hit_handler& {
    auto it = image_of_.find(&p);
    return it == image_of_.end() ? none : it->second->handler;
  };
  for (;;) {
    if (tree_->traced().empty()) {
      cpus_awake_.reset();  // no breakpoint is left in anything
      // Launched and detached at an exec: its status (maybe read already) is ours.
      if (opts_.pid == 0 && root_->detached()) wait_untraced(on_stop);
      break;
    }
    const process_tree::event ev = tree_->run(handler_of);
    tell_released_children();
    using k = process_tree::event::kind;
    if (ev.what == k::born) {
      on_born(*ev.proc, *ev.parent, static_cast<int>(ev.via));
    } else if (ev.what == k::exec) {
      on_exec(*ev.proc);
    } else if (ev.what == k::ended) {
      on_ended(*ev.proc, ev.result);
    } else if (on_stop_request(on_stop)) {
      break;
    }
    tell_released_children();
  }
  if (handler_errors_) {
    outcome_.warnings.push_back(fmt::format("{} hit(s) could not be decoded; the first: {}",
                                            handler_errors_, first_handler_error_));
  }
}

namespace {
void add_site(site_stats& into, const site_stats& s) {
  if (into.function.empty()) {
    into = s;
    return;
  }
  into.maps += s.maps;
  into.grows += s.grows;
  into.assigns += s.assigns;
  if (s.hint_min && (!into.hint_min || *s.hint_min < *into.hint_min)) into.hint_min = s.hint_min;
  if (s.hint_max && (!into.hint_max || *s.hint_max > *into.hint_max)) into.hint_max = s.hint_max;
  auto append = [](auto& to, const auto& from) { to.insert(to.end(), from.begin(), from.end()); };
  append(into.init_timed, s.init_timed);
  append(into.grow_timed, s.grow_timed);
  append(into.init_ns, s.init_ns);
  append(into.grow_ns, s.grow_ns);
  into.init_noise_ns = std::max(into.init_noise_ns, s.init_noise_ns);
  into.grow_noise_ns = std::max(into.grow_noise_ns, s.grow_noise_ns);
  into.peak_entries = std::max(into.peak_entries, s.peak_entries);
  into.peak_size = std::max(into.peak_size, s.peak_size);
  into.grow_bytes += s.grow_bytes;
  for (const auto& [t, n] : s.types) into.types[t] += n;
  into.cloned = into.cloned || s.cloned;
}

void add_stats(trace_stats& into, const trace_stats& s) {
  for (const auto& [sym, n] : s.hits) into.hits[sym] += n;
  for (const auto& [sym, n] : s.inlined_hits) into.inlined_hits[sym] += n;
  into.events += s.events;
  into.maps_created += s.maps_created;
  into.maps_seen += s.maps_seen;
  into.grows += s.grows;
  into.inserts += s.inserts;
  into.unmatched_returns += s.unmatched_returns;
  into.out_of_order += s.out_of_order;
  into.read_errors += s.read_errors;
  for (const auto& [key, site] : s.sites) add_site(into.sites[key], site);
  // One calibration and clock for the session; the live figure of the image that measured
  // the most stops stands for all (each image's own corrections already used its own).
  if (s.calibration.live_samples >= into.calibration.live_samples) {
    into.calibration = s.calibration;
    into.clock = s.clock;
  }
  into.clock_fallbacks += s.clock_fallbacks;
  merge_profile(into.profile, s.profile);
}
}  // namespace

// Every image's own figures, and their sum for the summary's totals.
void trace_session::total_up() {
  for (auto& im : images_) {
    if (im->open) {  // nothing ended it: the trace ended first (a detach)
      im->open = false;
      finish_image(*im);
      im->figures.end = "detached";
    }
    add_stats(totals_, im->figures.stats);
    outcome_.processes.push_back(im->figures);
  }
}

}  // namespace gomaptrace
