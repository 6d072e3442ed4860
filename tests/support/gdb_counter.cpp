#include "support/gdb_counter.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "support/shell.hpp"

extern char** environ;

namespace gomaptrace::testing {

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The page-aligned lowest PT_LOAD address: what the first mapping of the file (offset 0)
// corresponds to, so gdb can derive the load bias from /proc/PID/maps.
expected<std::uint64_t> lowest_load_page(const std::filesystem::path& elf) {
  elf_version(EV_CURRENT);
  int fd = ::open(elf.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unexpected("cannot open " + elf.string());
  Elf* e = elf_begin(fd, ELF_C_READ, nullptr);
  std::optional<std::uint64_t> low;
  std::size_t n = 0;
  if (e && elf_getphdrnum(e, &n) == 0) {
    for (std::size_t i = 0; i < n; ++i) {
      GElf_Phdr ph;
      if (gelf_getphdr(e, static_cast<int>(i), &ph) && ph.p_type == PT_LOAD &&
          (!low || ph.p_vaddr - ph.p_offset < *low)) {
        low = ph.p_vaddr - ph.p_offset;  // the address of file offset 0
      }
    }
  }
  if (e) elf_end(e);
  ::close(fd);
  if (!low) return unexpected("no PT_LOAD in " + elf.string());
  return *low & ~std::uint64_t{0xfff};
}

// Runs argv with stdout and stderr into `log`; returns the wait status.
expected<int> run(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return unexpected("cannot start " + argv[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return unexpected("waitpid failed");
  }
  return status;
}

}  // namespace

std::string gdb_unavailable_reason() {
  temp_dir tmp("gomaptrace-gdb");
  auto st =
      run({"gdb", "-nx", "-batch", "-ex", "python print('gdb-python-ok')"}, tmp.path() / "log");
  if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0 ||
      slurp(tmp.path() / "log").find("gdb-python-ok") == std::string::npos) {
    return "gdb with Python support is not available";
  }
  return "";
}

expected<gdb_result> gdb_count(const std::filesystem::path& program,
                               const std::vector<std::string>& args,
                               const std::vector<gdb_breakpoint>& breakpoints,
                               std::chrono::seconds timeout) {
  auto low = lowest_load_page(program);
  if (!low) return unexpected(low.error());
  temp_dir tmp("gomaptrace-gdb");
  if (tmp.path().empty()) return unexpected("cannot create a temporary directory");
  const auto out_file = tmp.path() / "stdout";
  const auto script = tmp.path() / "script.gdb";
  const auto log = tmp.path() / "gdb.log";

  std::string run_args;
  for (const auto& a : args) run_args += " " + shell_quote(a);
  std::ofstream s(script);
  s << "set pagination off\nset confirm off\nset width 0\n"
    // The Go runtime preempts with SIGURG and may see others; none of them is ours to stop at.
    << "handle all nostop noprint pass\n"
    // A preemption signal landing while gdb steps a thread over a breakpoint makes gdb count
    // that hit twice or not at all (seen: 58 and 48 hits for 54 calls); without asynchronous
    // preemption its counts are exact. Map call counts do not depend on preemption.
    << "set environment GODEBUG asyncpreemptoff=1\n"
    << "starti" << run_args << " > " << shell_quote(out_file.string())
    << " < /dev/null\n"
    // Breakpoints go in after starti, when the load bias of a PIE binary is known: gdb does
    // not relocate `break *ADDR` set before the program runs.
    << "python\n"
    << "import gdb, os\n"
    << "pid = gdb.selected_inferior().pid\n"
    << "exe = os.path.realpath('/proc/%d/exe' % pid)\n"
    << "base = None\n"
    << "for line in open('/proc/%d/maps' % pid):\n"
    << "    f = line.split()\n"
    << "    if len(f) >= 6 and os.path.realpath(f[5]) == exe and int(f[2], 16) == 0:\n"
    << "        base = int(f[0].split('-')[0], 16)\n"
    << "        break\n"
    << "bias = base - " << *low
    << "\n"
    // Breakpoints go by index: their names never pass through Python or gdb.
    << "for index, addr in enumerate([";
  for (const auto& b : breakpoints) s << b.addr.value() << ", ";
  s << "]):\n"
    << "    bp = gdb.Breakpoint('*0x%x' % (addr + bias), internal=False)\n"
    << "    bp.silent = True\n"
    << "    print('GDBCOUNTER bp %d %d' % (bp.number, index))\n"
    // Breakpoint `commands` ending in `continue` stop after the first hit in batch mode, so
    // a loop continues until the process is gone; gdb counts the hits meanwhile.
    << "while gdb.selected_inferior().pid != 0:\n"
    << "    gdb.execute('continue', to_string=True)\n"
    << "code = gdb.parse_and_eval('$_exitcode')\n"
    << "sig = gdb.parse_and_eval('$_exitsignal')\n"
    << "print('GDBCOUNTER exit %s signal %s' % (code, sig))\n"
    << "end\n"
    << "info breakpoints\n";
  s.close();

  auto st = run({"timeout", "--kill-after=10", std::to_string(timeout.count()), "gdb", "-nx",
                 "-batch", "-iex", "set debuginfod enabled off", "-iex", "set auto-load off", "-x",
                 script.string(), program.string()},
                log);
  gdb_result r;
  r.gdb_output = slurp(log);
  r.program_stdout = slurp(out_file);
  if (!st) return unexpected(st.error());
  if (WIFEXITED(*st) && WEXITSTATUS(*st) == 124) {
    return unexpected("gdb timed out:\n" + r.gdb_output);
  }

  std::map<int, std::string> names;
  static const std::regex bp_line(R"(^GDBCOUNTER bp (\d+) (\d+))");
  static const std::regex table_row(R"(^(\d+)\s+breakpoint\s)");
  static const std::regex hit_line(R"(^\s+breakpoint already hit (\d+) times?)");
  static const std::regex exited(R"(^GDBCOUNTER exit (\S+) signal (\S+))");
  std::istringstream in(r.gdb_output);
  std::string line;
  int current = -1;
  bool saw_exit = false;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, bp_line)) {
      std::size_t index = std::stoul(m[2]);
      if (index < breakpoints.size()) names[std::stoi(m[1])] = breakpoints[index].name;
    } else if (std::regex_search(line, m, table_row)) {
      current = std::stoi(m[1]);
      if (names.count(current)) r.hits[names[current]] = 0;
    } else if (current >= 0 && std::regex_search(line, m, hit_line)) {
      if (names.count(current)) r.hits[names[current]] = std::stoull(m[1]);
    } else if (std::regex_search(line, m, exited)) {
      // A program killed by a signal has no exit code ("void"); the caller sees nullopt.
      if (m[1] != "void") r.exit_code = std::stoi(m[1]);
      if (m[2] != "void") r.exit_signal = std::stoi(m[2]);
      saw_exit = true;
    }
  }
  if (!saw_exit) return unexpected("the program did not exit under gdb:\n" + r.gdb_output);
  for (const auto& b : breakpoints) {
    if (!r.hits.count(b.name)) {
      return unexpected("gdb did not report breakpoint " + b.name + ":\n" + r.gdb_output);
    }
  }
  return r;
}

}  // namespace gomaptrace::testing
