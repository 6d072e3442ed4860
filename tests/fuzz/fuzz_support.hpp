#pragma once
// Shared by the libFuzzer targets: the parsers open files by path, so each input becomes an
// in-memory file (memfd) reached through /proc/self/fd, with no disk traffic per run.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace gomaptrace::fuzz {

class memory_file {
 public:
  memory_file(const std::uint8_t* data, std::size_t size) {
    fd_ = ::memfd_create("gomaptrace-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();  // the harness itself is broken, not the input
    for (std::size_t done = 0; done < size;) {
      ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += static_cast<std::size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~memory_file() { ::close(fd_); }
  memory_file(const memory_file&) = delete;
  memory_file& operator=(const memory_file&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace gomaptrace::fuzz
