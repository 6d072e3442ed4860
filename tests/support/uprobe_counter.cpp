#include "support/uprobe_counter.hpp"

#include <Zydis/Zydis.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace gomaptrace::testing {

namespace {

// An ELF file opened read-only through libelf; closes both on every path.
class elf_handle {
 public:
  explicit elf_handle(const std::filesystem::path& p) {
    elf_version(EV_CURRENT);
    fd_ = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;
    elf_ = elf_begin(fd_, ELF_C_READ, nullptr);
  }
  ~elf_handle() {
    if (elf_) elf_end(elf_);
    if (fd_ >= 0) ::close(fd_);
  }
  elf_handle(const elf_handle&) = delete;
  elf_handle& operator=(const elf_handle&) = delete;
  Elf* get() const { return elf_ && elf_kind(elf_) == ELF_K_ELF ? elf_ : nullptr; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  Elf* elf_ = nullptr;
};

const ZydisDecoder& decoder() {
  static const ZydisDecoder d = [] {
    ZydisDecoder dec;
    ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    return dec;
  }();
  return d;
}

expected<std::vector<std::uint8_t>> read_at(const std::filesystem::path& elf, file_addr a,
                                            std::size_t n) {
  auto off = elf_file_offset(elf, a);
  if (!off) return unexpected(off.error());
  elf_handle h(elf);
  std::vector<std::uint8_t> buf(n);
  ssize_t got = ::pread(h.fd(), buf.data(), n, static_cast<off_t>(off->value()));
  if (got <= 0) return unexpected("cannot read " + elf.string() + " at its offset");
  buf.resize(static_cast<std::size_t>(got));
  return buf;
}

long perf_event_open(perf_event_attr* attr, pid_t pid, int cpu, int group, unsigned long flags) {
  return ::syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "0-3,6,8-9" as in /sys/devices/system/cpu/online.
std::vector<int> online_cpus() {
  std::vector<int> cpus;
  std::stringstream ss(slurp("/sys/devices/system/cpu/online"));
  std::string range;
  while (std::getline(ss, range, ',')) {
    if (range.empty() || range == "\n") continue;
    auto dash = range.find('-');
    int lo = std::stoi(range.substr(0, dash));
    int hi = dash == std::string::npos ? lo : std::stoi(range.substr(dash + 1));
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  return cpus;
}

int uprobe_pmu_type() {
  std::string t = slurp("/sys/bus/event_source/devices/uprobe/type");
  return t.empty() ? -1 : std::stoi(t);
}

}  // namespace

expected<file_addr> elf_symbol_address(const std::filesystem::path& elf, const std::string& name) {
  elf_handle h(elf);
  if (!h.get()) return unexpected("not an ELF file: " + elf.string());
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(h.get(), scn)) != nullptr) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || sh.sh_entsize == 0) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data) continue;
    std::size_t n = sh.sh_size / sh.sh_entsize;
    for (std::size_t i = 0; i < n; ++i) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
      const char* s = elf_strptr(h.get(), sh.sh_link, sym.st_name);
      if (s && name == s && sym.st_value != 0) return file_addr(sym.st_value);
    }
  }
  return unexpected("no symbol " + name + " in " + elf.string());
}

expected<file_offset> elf_file_offset(const std::filesystem::path& elf, file_addr addr) {
  elf_handle h(elf);
  if (!h.get()) return unexpected("not an ELF file: " + elf.string());
  std::size_t n = 0;
  if (elf_getphdrnum(h.get(), &n) != 0) return unexpected("no program headers");
  for (std::size_t i = 0; i < n; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(h.get(), static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
    // p_filesz, not p_memsz: bytes beyond it (.bss) have no place in the file.
    if (addr.value() >= ph.p_vaddr && addr.value() < ph.p_vaddr + ph.p_filesz) {
      return file_offset(addr.value() - ph.p_vaddr + ph.p_offset);
    }
  }
  return unexpected("address not in any PT_LOAD of " + elf.string());
}

expected<file_addr> next_instruction(std::span<const std::uint8_t> code, file_addr at) {
  ZydisDecodedInstruction in;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder(), code.data(), code.size(), &in, ops))) {
    return unexpected("undecodable instruction");
  }
  return at + in.length;
}

expected<file_addr> instruction_after(const std::filesystem::path& elf, file_addr at) {
  auto bytes = read_at(elf, at, ZYDIS_MAX_INSTRUCTION_LENGTH);
  if (!bytes) return unexpected(bytes.error());
  return next_instruction(*bytes, at);
}

expected<file_addr> after_stack_check(const std::filesystem::path& elf, file_addr entry) {
  auto bytes = read_at(elf, entry, 64);
  if (!bytes) return unexpected(bytes.error());
  std::size_t off = 0;
  // The check is at most `lea; cmp; jbe`: look no further than four instructions.
  for (int i = 0; i < 4 && off < bytes->size(); ++i) {
    ZydisDecodedInstruction in;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder(), bytes->data() + off, bytes->size() - off,
                                             &in, ops))) {
      break;
    }
    off += in.length;
    if (in.mnemonic == ZYDIS_MNEMONIC_JBE || in.mnemonic == ZYDIS_MNEMONIC_JB) {
      return entry + static_cast<std::int64_t>(off);
    }
  }
  return unexpected("no stack-check jump at the start of the function");
}

private_copy::private_copy(const std::filesystem::path& src) {
  static std::atomic<int> seq{0};
  dir_ = std::filesystem::temp_directory_path() /
         ("gomaptrace-probe-" + std::to_string(::getpid()) + "-" + std::to_string(seq++));
  std::filesystem::create_directories(dir_);
  // Same file name as the original: some tests compare the program name in the output.
  path_ = dir_ / src.filename();
  std::filesystem::copy_file(src, path_, std::filesystem::copy_options::overwrite_existing);
}

private_copy::~private_copy() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string uprobes_unavailable_reason() {
  if (uprobe_pmu_type() < 0) return "no uprobe PMU (/sys/bus/event_source/devices/uprobe/type)";
  // Probe this very test binary: proves perf_event_open and its permissions, not the PMU alone.
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = static_cast<std::uint32_t>(uprobe_pmu_type());
  attr.disabled = 1;
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  attr.config1 = reinterpret_cast<std::uint64_t>(self.c_str());
  attr.config2 = 0;
  long fd = perf_event_open(&attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) return std::string("perf_event_open(uprobe) failed: ") + std::strerror(errno);
  ::close(static_cast<int>(fd));
  return "";
}

uprobe_counter::uprobe_counter(std::filesystem::path elf) : elf_(std::move(elf)) {}

uprobe_counter::~uprobe_counter() {
  // Each close unregisters a uprobe and waits out an RCU grace period (~80 ms here); closing
  // them all at once lets them share grace periods instead of queueing 30 of them.
  std::vector<std::thread> closers;
  for (auto& [name, fds] : fds_) {
    for (int fd : fds) closers.emplace_back([fd] { ::close(fd); });
  }
  for (auto& t : closers) t.join();
}

void uprobe_counter::add(const std::string& name, file_offset offset) {
  int type = uprobe_pmu_type();
  if (type < 0) throw std::runtime_error("no uprobe PMU");
  if (fds_.count(name)) throw std::runtime_error("probe added twice: " + name);
  std::string path = elf_.string();  // the kernel copies the path during the call
  std::vector<int>& fds = fds_[name];
  for (int cpu : online_cpus()) {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = static_cast<std::uint32_t>(type);
    attr.disabled = 1;
    attr.config1 = reinterpret_cast<std::uint64_t>(path.c_str());
    attr.config2 = offset.value();
    long fd = perf_event_open(&attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
      throw std::runtime_error("perf_event_open(uprobe " + name + " on cpu " + std::to_string(cpu) +
                               "): " + std::strerror(errno));
    }
    fds.push_back(static_cast<int>(fd));
  }
}

void uprobe_counter::enable() {
  for (auto& [name, fds] : fds_) {
    for (int fd : fds) {
      if (::ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) != 0) {
        throw std::runtime_error("enable uprobe " + name + ": " + std::strerror(errno));
      }
    }
  }
}

void uprobe_counter::disable() {
  for (auto& [name, fds] : fds_) {
    for (int fd : fds) ::ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
  }
}

std::uint64_t uprobe_counter::read(const std::string& name) const {
  std::uint64_t total = 0;
  for (int fd : fds_.at(name)) {
    std::uint64_t v = 0;
    if (::read(fd, &v, sizeof(v)) != static_cast<ssize_t>(sizeof(v))) {
      throw std::runtime_error("read uprobe " + name + ": " + std::strerror(errno));
    }
    total += v;
  }
  return total;
}

}  // namespace gomaptrace::testing
