// layer: debugger
#pragma once
// What one waitpid() status means for a ptraced thread. The raw int packs exits, deaths,
// signal-delivery-stops, ptrace event stops and group-stops; decoding it in one place keeps
// the run loop from confusing them (a group-stop resumed with PTRACE_CONT is a lost stop).
#include <sys/types.h>

#include <string>

namespace gomaptrace {

struct wait_status {
  enum class kind {
    exited,          // normal exit; `code` is the exit status
    signaled,        // killed by `signal`
    signal_stop,     // signal-delivery-stop: `signal` is about to be delivered
    event_stop,      // PTRACE_EVENT_* stop: `event` is set (not PTRACE_EVENT_STOP)
    group_stop,      // PTRACE_EVENT_STOP caused by a stopping signal: keep it stopped (LISTEN)
    interrupt_stop,  // PTRACE_EVENT_STOP with SIGTRAP: PTRACE_INTERRUPT or a new thread's first
                     // stop
    syscall_stop,    // SIGTRAP|0x80 under PTRACE_O_TRACESYSGOOD
  };
  kind what = kind::exited;
  int code = 0;    // exit status for `exited`
  int signal = 0;  // terminating signal, signal to deliver, or the group-stop signal
  int event = 0;   // PTRACE_EVENT_* for event_stop
  bool core_dumped = false;

  static wait_status decode(int raw);
  bool is_stop() const { return what != kind::exited && what != kind::signaled; }
};

std::string to_string(const wait_status& s);

}  // namespace gomaptrace
