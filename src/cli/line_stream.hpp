// layer: cli
#pragma once
// An ostream on a file descriptor that writes whole lines, each with one write(2). The
// traced program shares our stdout and stderr: a JSON line cut in two by its output would
// not parse, and std::cerr writes every << on its own.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <streambuf>
#include <string>

namespace gomaptrace::cli {

class line_buf : public std::streambuf {
 public:
  explicit line_buf(int fd) : fd_(fd) {}
  ~line_buf() override { sync(); }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      buf_.push_back(static_cast<char>(c));
      if (c == '\n') write_lines();
    }
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    buf_.append(s, static_cast<std::size_t>(n));
    if (std::memchr(s, '\n', static_cast<std::size_t>(n))) write_lines();
    return n;
  }
  int sync() override {  // an explicit flush writes a partial line too
    write_out(buf_.size());
    return 0;
  }

 private:
  void write_lines() {
    auto end = buf_.rfind('\n');
    if (end != std::string::npos) write_out(end + 1);
  }
  void write_out(std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      ssize_t w = ::write(fd_, buf_.data() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;  // a closed pipe: the output is lost, the trace goes on
      done += static_cast<std::size_t>(w);
    }
    buf_.erase(0, n);
  }

  int fd_;
  std::string buf_;
};

class line_stream : public std::ostream {
 public:
  explicit line_stream(int fd) : std::ostream(&buf_), buf_(fd) {}

 private:
  line_buf buf_;
};

}  // namespace gomaptrace::cli
