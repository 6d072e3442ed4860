#include "gomaptrace/uprobe_counters.hpp"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace gomaptrace {

namespace {

constexpr const char* pmu_type_file = "/sys/bus/event_source/devices/uprobe/type";

std::optional<std::uint32_t> pmu_type() {
  std::ifstream in(pmu_type_file);
  std::uint32_t t = 0;
  if (!(in >> t)) return std::nullopt;
  return t;
}

long perf_event_open(perf_event_attr* attr, pid_t pid, int cpu, int group, unsigned long flags) {
  return ::syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
}

}  // namespace

uprobe_counters::uprobe_counters(std::filesystem::path elf, std::vector<file_offset> offsets)
    : elf_(std::move(elf)),
      offsets_(std::move(offsets)),
      pmu_type_(pmu_type().value_or(0)),
      fds_(offsets_.size()) {}

void release_in_background(const std::vector<int>& fds) {
  if (fds.empty()) return;
  const pid_t child = ::fork();
  if (child == 0) {
    if (::fork() != 0) ::_exit(0);  // the grandchild is reparented: no zombie of ours
    ::setsid();
    std::vector<int> all = fds;
    std::sort(all.begin(), all.end());
    int next = 0;  // close every descriptor that is not one of ours
    for (int fd : all) {
      if (fd > next) ::close_range(static_cast<unsigned>(next), static_cast<unsigned>(fd - 1), 0);
      next = fd + 1;
    }
    ::close_range(static_cast<unsigned>(next), ~0u, 0);
    for (int fd : all) ::close(fd);
    ::_exit(0);
  }
  // Waiting for the child means the grandchild holds its copies before ours are closed. When
  // the fork failed, the caller's closes are the last references: slow, correct.
  if (child > 0) {
    int status = 0;
    ::waitpid(child, &status, 0);
  }
}

uprobe_counters::~uprobe_counters() {
  std::vector<int> all;
  for (auto& per_offset : fds_)
    for (const unique_fd& fd : per_offset) all.push_back(fd.get());
  release_in_background(all);
}

std::optional<std::string> uprobe_counters::unavailable_reason() {
  if (!pmu_type()) return std::string("no uprobe PMU in this kernel (") + pmu_type_file + ")";
  return std::nullopt;
}

expected<void> uprobe_counters::add_thread(pid_t tid) {
  if (pmu_type_ == 0) return unexpected(*unavailable_reason());
  const std::string path = elf_.string();  // the kernel copies it during the call
  std::vector<unique_fd> opened;
  for (file_offset off : offsets_) {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = pmu_type_;
    attr.config1 = reinterpret_cast<std::uint64_t>(path.c_str());
    attr.config2 = off.value();
    // Counting from the start: the thread is held by ptrace and has not run yet.
    attr.disabled = 0;
    long fd = perf_event_open(&attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
      if (errno == ESRCH) return {};  // gone already: it cannot run our code any more
      return unexpected(std::string("perf_event_open(uprobe) failed: ") + std::strerror(errno));
    }
    opened.emplace_back(static_cast<int>(fd));
  }
  for (std::size_t i = 0; i < offsets_.size(); ++i) fds_[i].push_back(std::move(opened[i]));
  ++threads_;
  return {};
}

std::vector<std::uint64_t> uprobe_counters::totals() const {
  std::vector<std::uint64_t> out(offsets_.size(), 0);
  for (std::size_t i = 0; i < offsets_.size(); ++i) {
    for (const unique_fd& fd : fds_[i]) {
      std::uint64_t v = 0;
      // A counter keeps its count after its thread exits; a failed read counts nothing.
      if (::read(fd.get(), &v, sizeof v) == static_cast<ssize_t>(sizeof v)) out[i] += v;
    }
  }
  return out;
}

}  // namespace gomaptrace
