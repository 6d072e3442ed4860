#include "gomaptrace/elf.hpp"

#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "gomaptrace/error.hpp"

namespace gomaptrace {

namespace {

// The file descriptor is only needed until the mapping exists.
class unique_fd {
 public:
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string_view machine_name(std::uint16_t m) {
  switch (m) {
    case EM_386:
      return "Intel 80386";
    case EM_ARM:
      return "ARM";
    case EM_AARCH64:
      return "AArch64";
    case EM_PPC:
      return "PowerPC";
    case EM_PPC64:
      return "PowerPC64";
    case EM_S390:
      return "IBM S/390";
    case EM_MIPS:
      return "MIPS";
    case EM_RISCV:
      return "RISC-V";
    case EM_LOONGARCH:
      return "LoongArch";
    case EM_SPARCV9:
      return "SPARC V9";
    default:
      return {};
  }
}

// libelf descriptors end with elf_end, on every path.
struct elf_deleter {
  void operator()(Elf* e) const { elf_end(e); }
};
using elf_ptr = std::unique_ptr<Elf, elf_deleter>;

}  // namespace

elf_file::~elf_file() {
  if (data_ && size_) ::munmap(const_cast<std::byte*>(data_), size_);
}

std::unique_ptr<elf_file> elf_file::open(const std::filesystem::path& path) {
  const std::string p = path.string();
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    if (errno == EACCES) throw fatal_error(exit_code::permission_denied, p + ": permission denied");
    throw fatal_error(exit_code::file_not_found, p + ": no such file");
  }
  if (S_ISDIR(st.st_mode)) throw fatal_error(exit_code::not_regular_file, p + ": is a directory");
  if (!S_ISREG(st.st_mode))
    throw fatal_error(exit_code::not_regular_file, p + ": not a regular file");
  unique_fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == EACCES || errno == EPERM)
      throw fatal_error(exit_code::permission_denied, p + ": permission denied");
    throw fatal_error(exit_code::file_not_found, fmt::format("{}: {}", p, std::strerror(errno)));
  }
  std::unique_ptr<elf_file> f(new elf_file);
  f->path_ = path;
  f->size_ = static_cast<std::size_t>(st.st_size);
  if (f->size_ < EI_NIDENT) throw fatal_error(exit_code::not_elf, p + ": not an ELF file");
  // Private and writable only because elf_memory() takes a char*; nothing is written back.
  void* m = ::mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
  if (m == MAP_FAILED) {
    f->size_ = 0;
    throw fatal_error(exit_code::corrupt_binary,
                      fmt::format("{}: cannot map file: {}", p, std::strerror(errno)));
  }
  f->data_ = static_cast<const std::byte*>(m);
  f->load();
  return f;
}

void elf_file::load() {
  const std::string p = path_.string();
  auto corrupt = [&](std::string_view what) {
    return fatal_error(exit_code::corrupt_binary, fmt::format("{}: corrupt ELF file: {}", p, what));
  };
  const auto* ident = reinterpret_cast<const unsigned char*>(data_);
  if (std::memcmp(ident, ELFMAG, SELFMAG) != 0)
    throw fatal_error(exit_code::not_elf, p + ": not an ELF file");
  if (ident[EI_CLASS] != ELFCLASS64)
    throw fatal_error(exit_code::wrong_arch, p + ": 32-bit ELF file, only x86-64 is supported");
  if (ident[EI_DATA] != ELFDATA2LSB)
    throw fatal_error(exit_code::wrong_arch, p + ": big-endian ELF file, only x86-64 is supported");
  if (size_ < sizeof(Elf64_Ehdr)) throw corrupt("truncated ELF header");

  // libelf parses the headers, sections, symbols and relocations from the mapped image.
  elf_version(EV_CURRENT);
  elf_ptr e(elf_memory(reinterpret_cast<char*>(const_cast<std::byte*>(data_)), size_));
  if (!e || elf_kind(e.get()) != ELF_K_ELF)
    throw fatal_error(exit_code::not_elf, p + ": not an ELF file");
  GElf_Ehdr eh;
  if (!gelf_getehdr(e.get(), &eh)) throw corrupt(elf_errmsg(-1));
  if (eh.e_machine != EM_X86_64) {
    auto name = machine_name(eh.e_machine);
    throw fatal_error(exit_code::wrong_arch,
                      name.empty()
                          ? fmt::format("{}: ELF machine {} is not x86-64", p, eh.e_machine)
                          : fmt::format("{}: {} binary, only x86-64 is supported", p, name));
  }
  is_pie_ = eh.e_type == ET_DYN;
  entry_ = file_addr(eh.e_entry);

  // Section headers: every table must lie inside the file (a truncated copy fails here).
  std::size_t shnum = 0, shstrndx = 0;
  if (eh.e_shoff > size_ || eh.e_shnum * sizeof(Elf64_Shdr) > size_ - eh.e_shoff)
    throw corrupt("section headers beyond the end of the file");
  if (elf_getshdrnum(e.get(), &shnum) != 0) throw corrupt(elf_errmsg(-1));
  if (shnum == 0) throw corrupt("no section headers");
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) throw corrupt("bad section header size");
  if (elf_getshdrstrndx(e.get(), &shstrndx) != 0 || shstrndx >= shnum)
    throw corrupt("bad section name table index");
  std::vector<GElf_Shdr> sh(shnum);
  std::vector<Elf_Scn*> scns(shnum);
  for (std::size_t i = 0; i < shnum; ++i) {
    scns[i] = elf_getscn(e.get(), i);
    if (!scns[i] || !gelf_getshdr(scns[i], &sh[i]))
      throw corrupt(fmt::format("section {}: {}", i, elf_errmsg(-1)));
    const GElf_Shdr& s = sh[i];
    if (s.sh_type != SHT_NOBITS && (s.sh_offset > size_ || s.sh_size > size_ - s.sh_offset))
      throw corrupt(fmt::format("section {} data beyond the end of the file", i));
  }
  auto str_at = [&](std::size_t table, std::uint64_t off) -> std::string {
    if (table >= shnum || sh[table].sh_type == SHT_NOBITS || off >= sh[table].sh_size) return {};
    const char* str = elf_strptr(e.get(), table, off);
    return str ? std::string(str) : std::string();
  };
  sections_.reserve(shnum);
  for (const auto& s : sh) {
    sections_.push_back(elf_section{str_at(shstrndx, s.sh_name), file_addr(s.sh_addr), s.sh_size,
                                    file_offset(s.sh_offset), s.sh_type, s.sh_flags});
  }

  for (std::size_t k = 0; k < shnum; ++k) {
    const GElf_Shdr& s = sh[k];
    if (s.sh_type == SHT_SYMTAB && s.sh_entsize == sizeof(Elf64_Sym) && s.sh_link < shnum) {
      Elf_Data* d = elf_getdata(scns[k], nullptr);
      if (!d) throw corrupt(fmt::format("symbol table: {}", elf_errmsg(-1)));
      const std::size_t n = s.sh_size / sizeof(Elf64_Sym);
      symbols_.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        GElf_Sym sym;
        if (!gelf_getsym(d, static_cast<int>(i), &sym)) break;
        if (sym.st_name == 0) continue;
        symbols_.push_back(elf_symbol{str_at(s.sh_link, sym.st_name), file_addr(sym.st_value),
                                      sym.st_size,
                                      static_cast<unsigned char>(GELF_ST_TYPE(sym.st_info))});
      }
    }
    // A PIE's pointers are rebased through R_X86_64_RELATIVE entries.
    if (s.sh_type == SHT_RELA && s.sh_entsize == sizeof(Elf64_Rela) && (s.sh_flags & SHF_ALLOC)) {
      Elf_Data* d = elf_getdata(scns[k], nullptr);
      if (!d) throw corrupt(fmt::format("relocations: {}", elf_errmsg(-1)));
      const std::size_t n = s.sh_size / sizeof(Elf64_Rela);
      for (std::size_t i = 0; i < n; ++i) {
        GElf_Rela r;
        if (!gelf_getrela(d, static_cast<int>(i), &r)) break;
        if (GELF_R_TYPE(r.r_info) == R_X86_64_RELATIVE)
          relocs_.push_back({file_addr(r.r_offset), static_cast<std::uint64_t>(r.r_addend)});
      }
    }
  }
  std::sort(relocs_.begin(), relocs_.end(),
            [](const auto& a, const auto& b) { return a.where < b.where; });
  symbols_by_name_.resize(symbols_.size());
  for (std::size_t i = 0; i < symbols_.size(); ++i) symbols_by_name_[i] = i;
  std::stable_sort(
      symbols_by_name_.begin(), symbols_by_name_.end(),
      [&](std::size_t a, std::size_t b) { return symbols_[a].name < symbols_[b].name; });
}

const elf_section* elf_file::find_section(std::string_view name) const {
  for (const auto& s : sections_)
    if (s.name == name) return &s;
  return nullptr;
}

std::optional<file_offset> elf_file::file_offset_of(file_addr a) const {
  const elf_section* s = section_at(a);
  if (!s || s->offset.value() == 0) return std::nullopt;
  return file_offset(s->offset.value() + (a.value() - s->addr.value()));
}

const elf_section* elf_file::section_at(file_addr addr) const {
  for (const auto& s : sections_) {
    // .tbss is an ALLOC template that overlaps the sections after it in externally linked
    // binaries: it describes no bytes at that address.
    if (!(s.flags & SHF_ALLOC) || (s.flags & SHF_TLS) || s.size == 0) continue;
    if (addr >= s.addr && addr.value() - s.addr.value() < s.size) return &s;
  }
  return nullptr;
}

std::span<const std::byte> elf_file::section_data(const elf_section& s) const {
  if (s.type == SHT_NOBITS) return {};
  // load() checked every section against the file size.
  return {data_ + s.offset.value(), static_cast<std::size_t>(s.size)};
}

expected<std::span<const std::byte>> elf_file::read(file_addr addr, std::size_t len) const {
  const elf_section* s = section_at(addr);
  if (!s || s->type == SHT_NOBITS)
    return unexpected(
        fmt::format("address {:#x} is not in a section with file data", addr.value()));
  const std::uint64_t off = addr.value() - s->addr.value();
  if (len > s->size - off)
    return unexpected(fmt::format("{} bytes at {:#x} run past the end of section {}", len,
                                  addr.value(), s->name));
  return section_data(*s).subspan(off, len);
}

expected<std::uint64_t> elf_file::read_u64(file_addr addr) const {
  auto b = read(addr, 8);
  if (!b) return unexpected(b.error());
  std::uint64_t v;
  std::memcpy(&v, b->data(), 8);
  return v;
}

expected<std::uint64_t> elf_file::read_pointer(file_addr addr) const {
  // A PIE's pointers are zero in the file: the dynamic linker writes each from its
  // R_X86_64_RELATIVE relocation, so the addend is the link-time value.
  auto it = std::lower_bound(relocs_.begin(), relocs_.end(), addr,
                             [](const elf_relative_reloc& r, file_addr a) { return r.where < a; });
  if (it != relocs_.end() && it->where == addr) return it->addend;
  return read_u64(addr);
}

const elf_symbol* elf_file::find_symbol(std::string_view name) const {
  auto it =
      std::lower_bound(symbols_by_name_.begin(), symbols_by_name_.end(), name,
                       [&](std::size_t i, std::string_view n) { return symbols_[i].name < n; });
  if (it == symbols_by_name_.end() || symbols_[*it].name != name) return nullptr;
  return &symbols_[*it];
}

}  // namespace gomaptrace
