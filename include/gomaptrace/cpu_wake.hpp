// layer: debugger
#pragma once
// Keeps every CPU out of its idle sleep states while held: a PM QoS CPU latency request of
// 0 us on /dev/cpu_dma_latency, the kernel's interface for it (cyclictest holds the same).
// Idle CPUs then poll instead of halting. A ptrace stop is two wake-ups (the tracer's, then
// the program's); each into a halted CPU costs an interrupt and, on a VM, an exit to the
// host, and leaves the woken thread's caches cold. Measured on this project's 2-vCPU KVM
// machines (2026-11-26, hotloop 10^5 inserts): the one-stop floor 4.36 s -> 0.60 s,
// gomaptrace 2.09 s -> 0.74 s. The kernel drops the request when the file is closed, so
// no exit of ours (SIGKILL included) leaves the machine held awake.
#include "gomaptrace/expected.hpp"
#include "gomaptrace/fd.hpp"

namespace gomaptrace {

class cpu_wake_hold {
 public:
  // Takes the hold; fails (the kernel's reason, e.g. "Permission denied": the file is root's
  // only) without changing anything.
  [[nodiscard]] static expected<cpu_wake_hold> take();

  cpu_wake_hold(cpu_wake_hold&&) noexcept = default;
  cpu_wake_hold& operator=(cpu_wake_hold&&) noexcept = default;

 private:
  explicit cpu_wake_hold(unique_fd fd) : fd_(std::move(fd)) {}
  unique_fd fd_;
};

}  // namespace gomaptrace
