#include "gomaptrace/wait_status.hpp"

#include <fmt/core.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

namespace gomaptrace {

wait_status wait_status::decode(int raw) {
  wait_status s;
  if (WIFEXITED(raw)) {
    s.what = kind::exited;
    s.code = WEXITSTATUS(raw);
    return s;
  }
  if (WIFSIGNALED(raw)) {
    s.what = kind::signaled;
    s.signal = WTERMSIG(raw);
    s.core_dumped = WCOREDUMP(raw);
    return s;
  }
  s.signal = WSTOPSIG(raw);
  const int event = (raw >> 16) & 0xff;
  if (event == PTRACE_EVENT_STOP) {
    // Under PTRACE_SEIZE the kernel reports SIGTRAP here unless a group-stop is in effect,
    // in which case it reports the stopping signal.
    const bool stopping =
        s.signal == SIGSTOP || s.signal == SIGTSTP || s.signal == SIGTTIN || s.signal == SIGTTOU;
    s.what = stopping ? kind::group_stop : kind::interrupt_stop;
  } else if (event != 0) {
    s.what = kind::event_stop;
    s.event = event;
  } else if (s.signal == (SIGTRAP | 0x80)) {
    s.what = kind::syscall_stop;
    s.signal = SIGTRAP;
  } else {
    s.what = kind::signal_stop;
  }
  return s;
}

std::string to_string(const wait_status& s) {
  using k = wait_status::kind;
  switch (s.what) {
    case k::exited:
      return fmt::format("exited with status {}", s.code);
    case k::signaled:
      return fmt::format("killed by {}{}", sigabbrev_np(s.signal) ? sigabbrev_np(s.signal) : "?",
                         s.core_dumped ? " (core dumped)" : "");
    case k::signal_stop:
      return fmt::format("signal-delivery-stop SIG{}",
                         sigabbrev_np(s.signal) ? sigabbrev_np(s.signal) : "?");
    case k::event_stop:
      return fmt::format("ptrace event stop {}", s.event);
    case k::group_stop:
      return fmt::format("group-stop SIG{}", sigabbrev_np(s.signal));
    case k::interrupt_stop:
      return "interrupt stop";
    case k::syscall_stop:
      return "syscall stop";
  }
  return "?";
}

}  // namespace gomaptrace
