// layer: binary
#include "gomaptrace/dwarf.hpp"

#include <dwarf.h>
#include <fcntl.h>
#include <libdwarf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "gomaptrace/error.hpp"

namespace gomaptrace {

namespace {

// Owns one Dwarf_Die; libdwarf would free it only at dwarf_finish otherwise, and a full
// index pass touches every top-level DIE of the binary.
class die_ptr {
 public:
  die_ptr() = default;
  explicit die_ptr(Dwarf_Die d) : d_(d) {}
  die_ptr(die_ptr&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  die_ptr& operator=(die_ptr&& o) noexcept {
    if (this != &o) {
      reset();
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  ~die_ptr() { reset(); }
  void reset() {
    if (d_) dwarf_dealloc_die(d_);
    d_ = nullptr;
  }
  Dwarf_Die get() const { return d_; }
  Dwarf_Die* out() {
    reset();
    return &d_;
  }
  explicit operator bool() const { return d_ != nullptr; }

 private:
  Dwarf_Die d_ = nullptr;
};

class attr_ptr {
 public:
  attr_ptr() = default;
  attr_ptr(const attr_ptr&) = delete;
  attr_ptr& operator=(const attr_ptr&) = delete;
  ~attr_ptr() {
    if (a_) dwarf_dealloc_attribute(a_);
  }
  Dwarf_Attribute get() const { return a_; }
  Dwarf_Attribute* out() { return &a_; }

 private:
  Dwarf_Attribute a_ = nullptr;
};

}  // namespace

struct dwarf_info::impl {
  int fd = -1;
  Dwarf_Debug dbg = nullptr;
  std::filesystem::path path;
  // Built on first find_struct: struct name -> global .debug_info offset of its DIE.
  mutable bool indexed = false;
  mutable std::optional<std::string> index_error;  // a failed index pass is not retried
  mutable std::map<std::string, Dwarf_Off, std::less<>> structs;

  ~impl() {
    if (dbg) {
      Dwarf_Error err = nullptr;
      dwarf_finish(dbg, &err);
    }
    if (fd >= 0) ::close(fd);
  }

  // Turns a libdwarf error into a message and releases it.
  std::string take_error(Dwarf_Error err, std::string_view what) const {
    std::string msg = std::string(what) + ": ";
    msg += err ? dwarf_errmsg(err) : "unknown libdwarf error";
    if (err) dwarf_dealloc(dbg, err, DW_DLA_ERROR);
    return msg;
  }

  // An optional string attribute; DW_DLV_NO_ENTRY -> nullopt.
  expected<std::optional<std::string>> text(Dwarf_Die die, Dwarf_Half attr) const {
    char* s = nullptr;
    Dwarf_Error err = nullptr;
    int rc =
        attr == DW_AT_name ? dwarf_diename(die, &s, &err) : dwarf_die_text(die, attr, &s, &err);
    if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "reading a DIE string"));
    if (rc == DW_DLV_NO_ENTRY) return std::optional<std::string>{};
    std::string out(s);
    dwarf_dealloc(dbg, s, DW_DLA_STRING);
    return std::optional<std::string>(std::move(out));
  }

  expected<Dwarf_Half> tag(Dwarf_Die die) const {
    Dwarf_Half t = 0;
    Dwarf_Error err = nullptr;
    if (dwarf_tag(die, &t, &err) != DW_DLV_OK) return unexpected(take_error(err, "dwarf_tag"));
    return t;
  }

  // An unsigned constant attribute (DW_AT_byte_size, DW_AT_data_member_location).
  // A member location may also be an expression: Go writes a constant, but accept the
  // DW_OP_plus_uconst form other producers use.
  expected<std::optional<std::uint64_t>> udata(Dwarf_Die die, Dwarf_Half attr) const {
    attr_ptr a;
    Dwarf_Error err = nullptr;
    int rc = dwarf_attr(die, attr, a.out(), &err);
    if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "dwarf_attr"));
    if (rc == DW_DLV_NO_ENTRY) return std::optional<std::uint64_t>{};
    Dwarf_Unsigned v = 0;
    rc = dwarf_formudata(a.get(), &v, &err);
    if (rc == DW_DLV_OK) return std::optional<std::uint64_t>(v);
    if (err) dwarf_dealloc(dbg, err, DW_DLA_ERROR);
    err = nullptr;
    Dwarf_Block* block = nullptr;
    rc = dwarf_formblock(a.get(), &block, &err);
    if (rc != DW_DLV_OK) return unexpected(take_error(err, "attribute is not a constant"));
    auto* p = static_cast<const std::uint8_t*>(block->bl_data);
    std::uint64_t len = block->bl_len;
    std::optional<std::uint64_t> out;
    if (len >= 2 && p[0] == DW_OP_plus_uconst) {
      std::uint64_t value = 0;
      int shift = 0;
      std::uint64_t i = 1;
      for (; i < len && shift < 64; ++i, shift += 7) {
        value |= std::uint64_t(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80)) break;
      }
      if (i < len) out = value;
    }
    dwarf_dealloc(dbg, block, DW_DLA_BLOCK);
    if (!out) return unexpected("unsupported location expression");
    return out;
  }

  expected<std::optional<Dwarf_Off>> type_ref(Dwarf_Die die) const {
    attr_ptr a;
    Dwarf_Error err = nullptr;
    int rc = dwarf_attr(die, DW_AT_type, a.out(), &err);
    if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "dwarf_attr(DW_AT_type)"));
    if (rc == DW_DLV_NO_ENTRY) return std::optional<Dwarf_Off>{};
    Dwarf_Off off = 0;
    if (dwarf_global_formref(a.get(), &off, &err) != DW_DLV_OK)
      return unexpected(take_error(err, "dwarf_global_formref"));
    return std::optional<Dwarf_Off>(off);
  }

  expected<die_ptr> die_at(Dwarf_Off off) const {
    die_ptr d;
    Dwarf_Error err = nullptr;
    int rc = dwarf_offdie_b(dbg, off, /*is_info=*/true, d.out(), &err);
    if (rc != DW_DLV_OK)
      return unexpected(take_error(err, "no DIE at offset " + std::to_string(off)));
    return d;
  }

  // Byte size of a type: its own DW_AT_byte_size, else through typedef/const/volatile to
  // the type it names; a pointer without one is 8 bytes (amd64).
  expected<std::uint64_t> type_size(Dwarf_Off off, int depth = 0) const {
    if (depth > 16) return unexpected("type chain too deep");
    auto d = die_at(off);
    if (!d) return unexpected(d.error());
    auto sz = udata(d->get(), DW_AT_byte_size);
    if (!sz) return unexpected(sz.error());
    if (*sz) return **sz;
    auto t = tag(d->get());
    if (!t) return unexpected(t.error());
    switch (*t) {
      case DW_TAG_pointer_type:
        return std::uint64_t{8};
      case DW_TAG_typedef:
      case DW_TAG_const_type:
      case DW_TAG_volatile_type: {
        auto next = type_ref(d->get());
        if (!next) return unexpected(next.error());
        if (!*next) return unexpected("typedef without a type");
        return type_size(**next, depth + 1);
      }
      default:
        return unexpected("type at offset " + std::to_string(off) + " has no byte size");
    }
  }

  expected<void> build_index() const {
    if (indexed) return {};
    if (index_error) return unexpected(*index_error);
    auto r = walk_index();
    if (r) {
      indexed = true;
      return r;
    }
    index_error = r.error();
    structs.clear();
    // Leave libdwarf's CU iteration at its end, so producer() starts from the first CU.
    for (int rc = DW_DLV_OK; rc == DW_DLV_OK;) {
      Dwarf_Unsigned next_cu = 0;
      Dwarf_Half cu_type = 0;
      Dwarf_Error err = nullptr;
      rc = dwarf_next_cu_header_d(dbg, true, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                  nullptr, nullptr, &next_cu, &cu_type, &err);
      if (rc == DW_DLV_ERROR) dwarf_dealloc(dbg, err, DW_DLA_ERROR);
    }
    return r;
  }

  expected<void> walk_index() const {
    Dwarf_Error err = nullptr;
    for (;;) {
      Dwarf_Unsigned next_cu = 0;
      Dwarf_Half cu_type = 0;
      int rc = dwarf_next_cu_header_d(dbg, true, nullptr, nullptr, nullptr, nullptr, nullptr,
                                      nullptr, nullptr, nullptr, &next_cu, &cu_type, &err);
      if (rc == DW_DLV_NO_ENTRY) break;
      if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "reading a CU header"));
      die_ptr cu;
      rc = dwarf_siblingof_b(dbg, nullptr, true, cu.out(), &err);
      if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "reading a CU DIE"));
      if (rc == DW_DLV_NO_ENTRY) continue;
      // Go puts every type at the top level of a CU, so children of the CU DIE suffice.
      die_ptr child;
      rc = dwarf_child(cu.get(), child.out(), &err);
      if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "reading a DIE"));
      while (rc == DW_DLV_OK) {
        auto t = tag(child.get());
        if (!t) return unexpected(t.error());
        if (*t == DW_TAG_structure_type) {
          auto n = text(child.get(), DW_AT_name);
          if (!n) return unexpected(n.error());
          Dwarf_Off off = 0;
          if (*n && dwarf_dieoffset(child.get(), &off, &err) == DW_DLV_OK)
            structs.emplace(std::move(**n), off);
        }
        die_ptr sib;
        rc = dwarf_siblingof_b(dbg, child.get(), true, sib.out(), &err);
        if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "reading a DIE sibling"));
        child = std::move(sib);
      }
    }
    return {};
  }

  expected<dwarf_struct> read_struct(std::string_view name, Dwarf_Off off) const {
    auto d = die_at(off);
    if (!d) return unexpected(d.error());
    dwarf_struct s;
    s.name = std::string(name);
    auto sz = udata(d->get(), DW_AT_byte_size);
    if (!sz) return unexpected(sz.error());
    if (!*sz) return unexpected(s.name + ": struct without DW_AT_byte_size");
    s.size = **sz;
    die_ptr m;
    Dwarf_Error err = nullptr;
    int rc = dwarf_child(d->get(), m.out(), &err);
    if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "reading struct members"));
    while (rc == DW_DLV_OK) {
      auto t = tag(m.get());
      if (!t) return unexpected(t.error());
      if (*t == DW_TAG_member) {
        dwarf_field f;
        auto n = text(m.get(), DW_AT_name);
        if (!n) return unexpected(n.error());
        f.name = n->value_or("");
        auto loc = udata(m.get(), DW_AT_data_member_location);
        if (!loc) return unexpected(s.name + "." + f.name + ": " + loc.error());
        f.offset = loc->value_or(0);  // a union-like member without location starts at 0
        auto tr = type_ref(m.get());
        if (!tr) return unexpected(tr.error());
        if (!*tr) return unexpected(s.name + "." + f.name + ": member without a type");
        auto fsz = type_size(**tr);
        if (!fsz) return unexpected(s.name + "." + f.name + ": " + fsz.error());
        f.size = *fsz;
        auto td = die_at(**tr);
        if (!td) return unexpected(td.error());
        auto tn = text(td->get(), DW_AT_name);
        if (!tn) return unexpected(tn.error());
        f.type_name = tn->value_or("");
        s.fields.push_back(std::move(f));
      }
      die_ptr sib;
      rc = dwarf_siblingof_b(dbg, m.get(), true, sib.out(), &err);
      if (rc == DW_DLV_ERROR) return unexpected(take_error(err, "reading struct members"));
      m = std::move(sib);
    }
    return s;
  }
};

const dwarf_field* dwarf_struct::field(std::string_view n) const {
  for (const auto& f : fields)
    if (f.name == n) return &f;
  return nullptr;
}

dwarf_info::dwarf_info(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
dwarf_info::~dwarf_info() = default;

expected<std::unique_ptr<dwarf_info>> dwarf_info::load(const std::filesystem::path& path) {
  auto p = std::make_unique<impl>();
  p->path = path;
  p->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (p->fd < 0) {
    int e = errno;
    std::string msg = path.string() + ": " + std::strerror(e);
    if (e == ENOENT) throw fatal_error(exit_code::file_not_found, msg);
    if (e == EACCES || e == EPERM) throw fatal_error(exit_code::permission_denied, msg);
    throw fatal_error(exit_code::corrupt_binary, msg);
  }
  // libdwarf answers "no entry" for some files it cannot classify; a file that is not ELF
  // is an error, not a binary without DWARF.
  char magic[4] = {};
  if (::pread(p->fd, magic, sizeof magic, 0) != sizeof magic || std::memcmp(magic,
                                                                            "\x7f"
                                                                            "ELF",
                                                                            4) != 0)
    return unexpected(path.string() + ": cannot read DWARF: not an ELF file");
  Dwarf_Error err = nullptr;
  // A null handler with a non-null error pointer makes libdwarf report, never abort.
  int rc = dwarf_init_b(p->fd, DW_DLC_READ, DW_GROUPNUMBER_ANY, nullptr, nullptr, &p->dbg, &err);
  if (rc == DW_DLV_NO_ENTRY) return std::unique_ptr<dwarf_info>{};
  if (rc == DW_DLV_ERROR) {
    std::string msg = path.string() + ": cannot read DWARF: " +
                      (err ? dwarf_errmsg(err) : "unknown libdwarf error");
    // Before a successful init there is no Dwarf_Debug to free the error with.
    if (err) dwarf_dealloc(nullptr, err, DW_DLA_ERROR);
    p->dbg = nullptr;
    return unexpected(msg);
  }
  return std::unique_ptr<dwarf_info>(new dwarf_info(std::move(p)));
}

std::unique_ptr<dwarf_info> dwarf_info::open(const std::filesystem::path& path) {
  auto r = load(path);
  if (!r) throw fatal_error(exit_code::corrupt_binary, r.error());
  return std::move(*r);
}

std::optional<std::string> dwarf_info::producer() const {
  Dwarf_Debug dbg = impl_->dbg;
  Dwarf_Error err = nullptr;
  std::optional<std::string> out;
  // Walk the CU headers to the end even after the first one: libdwarf's CU iteration only
  // restarts from the beginning once it has reported DW_DLV_NO_ENTRY.
  for (bool first = true;; first = false) {
    Dwarf_Unsigned next_cu = 0;
    Dwarf_Half cu_type = 0;
    int rc = dwarf_next_cu_header_d(dbg, true, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                    nullptr, nullptr, &next_cu, &cu_type, &err);
    if (rc == DW_DLV_NO_ENTRY) break;
    if (rc == DW_DLV_ERROR) {
      // A broken CU header ends the walk; the producer is an optional fact.
      dwarf_dealloc(dbg, err, DW_DLA_ERROR);
      break;
    }
    if (!first) continue;
    die_ptr cu;
    if (dwarf_siblingof_b(dbg, nullptr, true, cu.out(), &err) != DW_DLV_OK) {
      if (err) dwarf_dealloc(dbg, err, DW_DLA_ERROR);
      err = nullptr;
      continue;
    }
    auto t = impl_->text(cu.get(), DW_AT_producer);
    if (t && *t) out = **t;
  }
  return out;
}

expected<dwarf_struct> dwarf_info::find_struct(std::string_view name) const {
  if (auto r = impl_->build_index(); !r) return unexpected(impl_->path.string() + ": " + r.error());
  auto it = impl_->structs.find(name);
  if (it == impl_->structs.end())
    return unexpected("no struct " + std::string(name) + " in the DWARF of " +
                      impl_->path.string());
  return impl_->read_struct(name, it->second);
}

}  // namespace gomaptrace
