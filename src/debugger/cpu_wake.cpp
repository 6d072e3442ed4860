// layer: debugger
#include "gomaptrace/cpu_wake.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace gomaptrace {

namespace {
constexpr const char* qos_file = "/dev/cpu_dma_latency";
}

expected<cpu_wake_hold> cpu_wake_hold::take() {
  unique_fd fd(::open(qos_file, O_WRONLY | O_CLOEXEC));
  if (!fd) return unexpected(std::string(qos_file) + ": " + std::strerror(errno));
  // The kernel takes a binary s32 of exactly four bytes (anything else is parsed as hex).
  const std::int32_t zero_us = 0;
  if (::write(fd.get(), &zero_us, sizeof zero_us) != static_cast<ssize_t>(sizeof zero_us)) {
    return unexpected(std::string(qos_file) + ": " + std::strerror(errno));
  }
  return cpu_wake_hold(std::move(fd));
}

}  // namespace gomaptrace
