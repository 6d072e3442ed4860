#include "gomaptrace/inspect_output.hpp"

#include <fmt/format.h>

#include "gomaptrace/map_tracer.hpp"

namespace gomaptrace {

namespace {
std::string hex(file_addr a) {
  return fmt::format("{:#x}", a.value());
}

nlohmann::json fields_json(const field_list& fs) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& [name, f] : fs)
    a.push_back({{"field", name}, {"offset", f.offset}, {"size", f.size}});
  return a;
}

// What the tracer reports at an inlined copy's breakpoint, in words.
std::string inlined_decoding(const inlined_site& c) {
  if (!c.recipe) return "probed: counted with its call chain; arguments and result unknown";
  return fmt::format("probed: arguments from {}'s entry{}", c.caller,
                     c.recipe->result_is_callers ? ", result at its RETs" : "");
}
}  // namespace

nlohmann::json inspect_json(const go_binary& bin) {
  using nlohmann::json;
  const runtime_layout& L = bin.layout();
  json j;
  j["binary"] = bin.elf().path().string();
  j["pie"] = bin.elf().is_pie();
  j["addresses"] = bin.elf().is_pie() ? "file (runtime = file + load bias)" : "runtime";
  j["go_version"] = bin.version().raw;
  j["go_version_source"] = bin.version_source();
  j["abi"] = std::string(to_string(bin.version().abi()));
  j["map_impl"] = std::string(to_string(bin.impl()));
  j["map_impl_reason"] = bin.impl_reason();
  j["symbols"] = bin.elf().symbols().empty() ? ".gopclntab (no symbol table)" : "symtab";
  j["dwarf"] = bin.dwarf() != nullptr;
  if (!bin.dwarf_problem().empty()) j["dwarf_problem"] = bin.dwarf_problem();
  j["pclntab_magic"] = fmt::format("{:#x}", bin.pcln().magic());
  std::string why;
  j["traceable"] = bin.traceable(&why);
  if (!why.empty()) j["not_traceable_reason"] = why;
  j["layout"] = {
      {"source", std::string(to_string(L.source))},
      {"map_struct", L.map_struct},
      {"map_size", L.map_size},
      {"map_fields", fields_json(L.map_fields)},
      {"g_goid", {{"offset", L.g_goid.offset}, {"size", L.g_goid.size}}},
      {"type_str", {{"offset", L.type_str.offset}, {"size", L.type_str.size}}},
      {"type_tflag", {{"offset", L.type_tflag.offset}, {"size", L.type_tflag.size}}},
      {"moduledata_types",
       {{"offset", L.moduledata_types.offset}, {"size", L.moduledata_types.size}}},
  };
  if (!L.table_fields.empty()) {
    j["layout"]["table_struct"] = L.table_struct;
    j["layout"]["table_size"] = L.table_size;
    j["layout"]["table_fields"] = fields_json(L.table_fields);
  }
  j["moduledata"] = bin.moduledata() ? json(hex(*bin.moduledata())) : json(nullptr);
  j["moduledata_source"] = bin.moduledata_source();
  j["types_base"] = bin.types_base() ? json(hex(*bin.types_base())) : json(nullptr);
  json probes = json::array();
  for (const resolved_probe& p : bin.probes()) {
    json r = json::array();
    for (file_addr a : p.returns) r.push_back(hex(a));
    json pj = {{"symbol", p.symbol},
               {"role", std::string(to_string(p.spec->role))},
               {"entry", hex(p.entry)},
               {"end", hex(p.end)},
               {"breakpoint", hex(p.breakpoint)},
               // Where the entry int3 really goes, and the bytes pushed before it.
               {"entry_int3", hex(p.trap.addr)},
               {"entry_int3_pushed", p.trap.pushed},
               {"returns", r},
               // Whether a trace plants them (a grow or split is folded into its rehash).
               {"returns_planted", p.spec->want_return && !map_tracer::folded_at_entry(bin, p)},
               {"source", p.source},
               {"breakpoint_source", p.breakpoint == p.entry ? "entry (no stack check)"
                                                             : "after stack check (decoded)"}};
    if (!p.inlined_into.empty()) pj["inlined_into"] = p.inlined_into;
    json sites = json::array();
    for (const inlined_site& c : p.inlined_sites) {
      json sj = {{"caller", c.caller},
                 {"body", hex(c.body)},
                 {"call", hex(c.call)},
                 {"in_frame", c.in_frame},
                 {"decoded", inlined_decoding(c)}};
      if (c.recipe) sj["caller_breakpoint"] = hex(c.caller_breakpoint);
      json r = json::array();
      for (file_addr a : c.caller_returns) r.push_back(hex(a));
      if (!r.empty()) sj["caller_returns"] = std::move(r);
      sites.push_back(std::move(sj));
    }
    if (!sites.empty()) pj["inlined_sites"] = std::move(sites);
    probes.push_back(std::move(pj));
  }
  j["probes"] = std::move(probes);
  return j;
}

void write_inspect_text(std::ostream& out, const go_binary& bin) {
  const runtime_layout& L = bin.layout();
  const bool pie = bin.elf().is_pie();
  out << fmt::format(
      "binary      {}{}\n", bin.elf().path().string(),
      pie ? "  (PIE: addresses below are file addresses; at run time add the load bias)" : "");
  out << fmt::format("go version  {}  (from {})\n", bin.version().raw, bin.version_source());
  out << fmt::format("ABI         {}\n", to_string(bin.version().abi()));
  out << fmt::format("maps        {}  ({})\n", to_string(bin.impl()), bin.impl_reason());
  out << fmt::format("symbols     {}\n", bin.elf().symbols().empty()
                                             ? "none (stripped): names from .gopclntab"
                                             : "ELF symbol table, checked against .gopclntab");
  out << fmt::format("pclntab     magic {:#x}\n", bin.pcln().magic());
  std::string table_why = "no DWARF in the binary";
  if (!bin.dwarf_problem().empty()) table_why = "DWARF unreadable: " + bin.dwarf_problem();
  out << fmt::format("layouts     from {}\n", L.source == layout_source::dwarf
                                                  ? "DWARF"
                                                  : fmt::format("built-in table ({})", table_why));
  std::string why;
  if (!bin.traceable(&why)) out << "tracing     refused: " << why << '\n';
  out << fmt::format("g.goid      offset {} size {}\n", L.g_goid.offset, L.g_goid.size);
  if (bin.types_base()) {
    out << fmt::format("types base  {:#x}  (moduledata {:#x} via {}, types field at +{})\n",
                       bin.types_base()->value(), bin.moduledata()->value(),
                       bin.moduledata_source(), L.moduledata_types.offset);
  } else {
    out << "types base  not found: map type names will be unknown\n";
  }
  auto table = [&](const std::string& name, std::uint64_t size, const field_list& fs) {
    out << fmt::format("\n{} ({} bytes)\n", name, size);
    out << fmt::format("  {:<20} {:>6} {:>5}\n", "field", "offset", "size");
    for (const auto& [n, f] : fs) out << fmt::format("  {:<20} {:>6} {:>5}\n", n, f.offset, f.size);
  };
  table(L.map_struct, L.map_size, L.map_fields);
  if (!L.table_fields.empty()) table(L.table_struct, L.table_size, L.table_fields);
  out << "\nprobes\n";
  out << fmt::format("  {:<46} {:>10} {:>10} {:>10}  {:<8} {}\n", "function", "entry", "after chk",
                     "int3", "source", "returns");
  for (const resolved_probe& p : bin.probes()) {
    std::string rets;
    if (map_tracer::folded_at_entry(bin, p)) {
      rets = "- (folded into rehash at its entry)";
    } else if (p.spec->want_return) {
      for (file_addr a : p.returns) rets += (rets.empty() ? "" : " ") + hex(a);
    } else {
      rets = "-";
    }
    out << fmt::format("  {:<46} {:>10} {:>10} {:>10}  {:<8} {}\n", p.symbol, hex(p.entry),
                       hex(p.breakpoint), hex(p.trap.addr), p.source, rets);
    for (const inlined_site& c : p.inlined_sites)
      out << fmt::format("    inlined copy in {} at {}: {}\n", c.caller, hex(c.body),
                         inlined_decoding(c));
  }
}

}  // namespace gomaptrace
