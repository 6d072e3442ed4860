#include "gomaptrace/trace_session.hpp"

#include <fmt/core.h>
#include <signal.h>

#include <chrono>

#include "gomaptrace/bpf_probes.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/process.hpp"
#include "gomaptrace/uprobe_counters.hpp"

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

}  // namespace

trace_session::trace_session(session_options opts) : opts_(std::move(opts)) {
  bin_ = go_binary::open(opts_.program);
  std::string why;
  if (!bin_->traceable(&why)) throw fatal_error(exit_code::unsupported_go, why);
  if (opts_.need_grows && !map_tracer::can_count_grows(*bin_)) {
    throw fatal_error(exit_code::trace_failed,
                      fmt::format("{}: --max-grows: the binary has no growth function to probe",
                                  opts_.program.string()));
  }
  outcome_.binary = opts_.program.string();
  outcome_.go_version = bin_->version().raw;
  outcome_.map_impl = std::string(to_string(bin_->impl()));
  outcome_.attached = opts_.pid != 0;
  outcome_.warnings = inlining_warnings(*bin_);
}

trace_session::~trace_session() = default;

void trace_session::start() {
  if (opts_.pid != 0) {
    proc_ = process::attach(opts_.pid);
  } else {
    proc_ = process::launch(opts_.program, opts_.command);
  }
  outcome_.pid = proc_->pid();
  proc_->record_signal_senders(opts_.forwarded_signals);
}

int trace_session::pid() const {
  return proc_ ? proc_->pid() : 0;
}

const trace_stats& trace_session::stats() const {
  static const trace_stats none;
  if (counters_) return count_stats_;
  if (bpf_) return bpf_stats_;
  return tracer_ ? tracer_->stats() : none;
}

void trace_session::plant() {
  // Breakpoint site ids from the debugger map back to the tracer's requests.
  const auto& reqs = tracer_->breakpoints();
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    auto id = proc_->add_breakpoint(reqs[i].addr);
    if (!id) {
      throw fatal_error(
          exit_code::trace_failed,
          fmt::format("{}: cannot plant a breakpoint at {:#x} ({}): {}", opts_.program.string(),
                      reqs[i].addr.value(), bin_->probes()[reqs[i].probe].symbol, id.error()));
    }
    if (!request_of_site_.emplace(*id, i).second) {
      throw fatal_error(exit_code::trace_failed,
                        fmt::format("{}: two probes share the address {:#x}",
                                    opts_.program.string(), reqs[i].addr.value()));
    }
  }
}

const run_outcome& trace_session::run(event_sink& sink, const stop_policy& on_stop) {
  if (opts_.bpf) return run_bpf(sink, on_stop);
  if (!proc_) start();
  const std::uint64_t bias = bin_->elf().is_pie() ? proc_->load_bias(bin_->elf().entry()) : 0;
  process* p = proc_.get();
  memory_reader reader = [p](std::uint64_t addr,
                             std::size_t len) -> expected<std::vector<std::byte>> {
    std::vector<std::byte> buf(len);
    if (auto r = p->read_memory(virt_addr(addr), buf); !r) return unexpected(r.error());
    return buf;
  };
  gather_reader gather = [p](const std::vector<std::uint64_t>& addrs,
                             std::size_t len) -> expected<std::vector<std::byte>> {
    std::vector<std::byte> buf(addrs.size() * len);
    std::vector<memory_range> ranges;
    ranges.reserve(addrs.size());
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      ranges.push_back({virt_addr(addrs[i]), std::span<std::byte>(buf).subspan(i * len, len)});
    }
    if (auto r = p->read_memory_many(ranges); !r) return unexpected(r.error());
    return buf;
  };
  tracer_ = std::make_unique<map_tracer>(*bin_, bias, reader, opts_.tracer, sink, gather);
  plant();
  start_ns_ = now_ns();
  loop(on_stop);
  outcome_.duration_ns = now_ns() - start_ns_;
  return outcome_;
}

void trace_session::tell(const std::string& line) {
  if (opts_.notify) opts_.notify(line);
  outcome_.notices.push_back(line);
}

void trace_session::tell_released_children() {
  for (const released_child& c : proc_->take_released_children()) {
    tell(fmt::format("process {} started process {} ({}): not traced, released", proc_->pid(),
                     c.pid, to_string(c.via)));
  }
}

// The program replaced its image: the breakpoints went with the old one. It is detached from
// (the new image runs untraced) and, when we launched it, still waited for: its exit status is
// the one gomaptrace ends with. Returns true when the trace is over.
bool trace_session::end_at_exec(const stop_policy& on_stop) {
  std::error_code ec;
  const auto image = std::filesystem::read_symlink(fmt::format("/proc/{}/exe", proc_->pid()), ec);
  tell(fmt::format("process {} exec'd {}: detached, the new image is not traced", proc_->pid(),
                   ec ? std::string("a new program") : image.string()));
  proc_->detach();
  outcome_.detached = true;
  outcome_.exec_image = ec ? "" : image.string();
  if (opts_.pid != 0) return true;
  wait_untraced(on_stop);
  return true;
}

// A launched program no longer traced: wait for its end, passing on signals aimed at us.
void trace_session::wait_untraced(const stop_policy& on_stop) {
  for (;;) {
    run_result res = proc_->wait_detached();
    if (res.what == run_result::kind::stopped) {
      // A signal aimed at gomaptrace while the program runs on untraced: the same policy, but
      // the program is no longer stopped, so only who sent it can tell a group signal.
      stop_decision d = on_stop ? on_stop(false) : stop_decision{};
      if (d.forward_signal) ::kill(proc_->pid(), d.forward_signal);
      continue;
    }
    if (res.what == run_result::kind::signaled) {
      outcome_.signal = res.signal;
      outcome_.exit_status = 128 + res.signal;
    } else {
      outcome_.exit_status = res.status;
    }
    return;
  }
}

void trace_session::loop(const stop_policy& on_stop) {
  // The handler runs while the hitting thread sits on its breakpoint: whatever goes wrong in
  // decoding or printing one hit is recorded, never thrown through the debugger, which must
  // always get to move the thread on.
  std::uint64_t handler_errors = 0;
  std::string first_handler_error;
  auto handler = [&](const breakpoint_hit& hit) {
    try {
      hit_context ctx;
      ctx.tid = hit.tid;
      ctx.time_ns = now_ns() - start_ns_;
      const registers& r = hit.regs;
      ctx.regs = {r.rip(), r.rsp(), r.rbp(), r.r14(), r.rax(), r.rbx(), r.rcx(),
                  r.rdi(), r.rsi(), r.r8(),  r.r9(),  r.r10(), r.r11()};
      tracer_->on_hit(request_of_site_.at(hit.id), ctx);
    } catch (const std::exception& e) {
      if (handler_errors++ == 0) first_handler_error = e.what();
    }
  };
  const bool attached = opts_.pid != 0;
  for (;;) {
    run_result res = proc_->run(handler);
    tell_released_children();
    if (res.what == run_result::kind::exec) {
      if (end_at_exec(on_stop)) break;
      continue;
    }
    if (res.what == run_result::kind::exited) {
      outcome_.exit_status = res.status;
      break;
    }
    if (res.what == run_result::kind::signaled) {
      outcome_.signal = res.signal;
      outcome_.exit_status = 128 + res.signal;
      break;
    }
    // Stopped by a stop request: the caller's policy decides.
    stop_decision d = on_stop ? on_stop(attached) : stop_decision{attached, 0};
    if (d.detach) {
      proc_->detach();
      outcome_.detached = true;
      break;
    }
    if (d.forward_signal &&
        !(d.unless_program_got_it &&
          proc_->program_got_signal(d.forward_signal, d.sender, d.sender_code, d.sent_after_ns)))
      ::kill(proc_->pid(), d.forward_signal);
  }
  if (handler_errors) {
    outcome_.warnings.push_back(fmt::format("{} hit(s) could not be decoded; the first: {}",
                                            handler_errors, first_handler_error));
  }
}

}  // namespace gomaptrace
