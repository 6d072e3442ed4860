#include "gomaptrace/pprof_output.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <map>
#include <tuple>
#include <unordered_map>

#include "gomaptrace/error.hpp"
#include "profile.pb.h"  // generated at build time from pprof's own profile.proto

namespace gomaptrace {
namespace {

namespace pb = perftools::profiles;

// Interns strings, functions and locations as profile.proto wants them: ids are 1-based
// indexes, string 0 is "", and equal things share one entry so the profile stays small.
class profile_builder {
 public:
  explicit profile_builder(pb::Profile& p) : p_(p) { str(""); }

  std::int64_t str(const std::string& s) {
    auto [it, fresh] = strings_.try_emplace(s, static_cast<std::int64_t>(strings_.size()));
    if (fresh) p_.add_string_table(s);
    return it->second;
  }

  void value_type(pb::ValueType* vt, const std::string& type, const std::string& unit) {
    vt->set_type(str(type));
    vt->set_unit(str(unit));
  }

  // The ids of the Locations for a stack, leaf first. A run of frames inlined into the next
  // one, ending with that outer frame, is one Location whose Lines go innermost first.
  std::vector<std::uint64_t> locations(const std::vector<stack_frame>& stack) {
    std::vector<std::uint64_t> ids;
    std::vector<const stack_frame*> run;
    for (const stack_frame& f : stack) {
      run.push_back(&f);
      if (f.inlined) continue;
      ids.push_back(location(run));
      run.clear();
    }
    // A chain cut short inside an inlined run (depth limit): keep what it names.
    if (!run.empty()) ids.push_back(location(run));
    return ids;
  }

 private:
  using line_key = std::tuple<std::string, std::string, int>;  // function, file, line

  std::uint64_t function(const stack_frame& f) {
    auto key = std::make_pair(f.function, f.file);
    auto it = functions_.find(key);
    if (it != functions_.end()) return it->second;
    pb::Function* fn = p_.add_function();
    fn->set_id(static_cast<std::uint64_t>(p_.function_size()));
    fn->set_name(str(f.function));
    fn->set_system_name(str(f.function));
    fn->set_filename(str(f.file));
    return functions_.emplace(key, fn->id()).first->second;
  }

  std::uint64_t location(const std::vector<const stack_frame*>& run) {
    // Keyed by pc and what it names: the same pc always names the same lines, but synthetic
    // or unsymbolised frames may share a pc of 0.
    std::pair<std::uint64_t, std::vector<line_key>> key{run.front()->pc, {}};
    for (const stack_frame* f : run) key.second.emplace_back(f->function, f->file, f->line);
    auto it = locations_.find(key);
    if (it != locations_.end()) return it->second;
    pb::Location* loc = p_.add_location();
    loc->set_id(static_cast<std::uint64_t>(p_.location_size()));
    loc->set_mapping_id(1);
    loc->set_address(run.front()->pc);
    for (const stack_frame* f : run) {
      // "?" is what the tracer names a pc outside every function: pprof shows the address.
      if (f->function.empty() || f->function == "?") continue;
      pb::Line* line = loc->add_line();
      line->set_function_id(function(*f));
      line->set_line(f->line);
    }
    return locations_.emplace(std::move(key), loc->id()).first->second;
  }

  pb::Profile& p_;
  std::unordered_map<std::string, std::int64_t> strings_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> functions_;
  std::map<std::pair<std::uint64_t, std::vector<line_key>>, std::uint64_t> locations_;
};

void describe(profile_builder& b, pb::Profile& p, const pprof_metadata& meta) {
  static const std::pair<const char*, const char*> types[] = {
      {"maps", "count"},          {"grows", "count"},         {"inserts", "count"},
      {"grow_ns", "nanoseconds"}, {"init_ns", "nanoseconds"}, {"grow_bytes", "bytes"}};
  for (const auto& [type, unit] : types) b.value_type(p.add_sample_type(), type, unit);
  p.set_default_sample_type(b.str("grows"));
  // Every call is recorded, none sampled: one event per count.
  b.value_type(p.mutable_period_type(), "grows", "count");
  p.set_period(1);
  p.set_time_nanos(meta.time_nanos);
  p.set_duration_nanos(meta.duration_nanos);
  for (const std::string& c : meta.comments) p.add_comment(b.str(c));

  pb::Mapping* m = p.add_mapping();
  m->set_id(1);
  m->set_memory_start(meta.memory_start);
  m->set_memory_limit(meta.memory_limit);
  m->set_file_offset(meta.file_offset);
  m->set_filename(b.str(meta.binary));
  m->set_build_id(b.str(meta.build_id));
  // The tracer symbolised every pc from .gopclntab: pprof must not try again.
  m->set_has_functions(true);
  m->set_has_filenames(true);
  m->set_has_line_numbers(true);
  m->set_has_inline_frames(true);
}

std::string gzip(const std::string& raw) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer, which pprof requires on disk.
  if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw fatal_error(exit_code::trace_failed, "pprof: cannot initialise zlib");
  }
  std::string out(deflateBound(&zs, raw.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw fatal_error(exit_code::trace_failed, "pprof: gzip failed");
  return out;
}

}  // namespace

void write_pprof(std::ostream& out, const std::vector<pprof_sample>& samples,
                 const pprof_metadata& meta) {
  pb::Profile p;
  profile_builder b(p);
  describe(b, p, meta);
  std::map<std::vector<std::uint64_t>, pb::Sample*> by_stack;  // equal stacks, one sample
  for (const pprof_sample& s : samples) {
    std::vector<std::uint64_t> ids = b.locations(s.stack);
    pb::Sample*& sample = by_stack[ids];
    if (!sample) {
      sample = p.add_sample();
      for (std::uint64_t id : ids) sample->add_location_id(id);
      for (int i = 0; i < 6; ++i) sample->add_value(0);
    }
    const std::int64_t values[] = {s.maps, s.grows, s.inserts, s.grow_ns, s.init_ns, s.grow_bytes};
    for (int i = 0; i < 6; ++i) sample->set_value(i, sample->value(i) + values[i]);
  }
  std::string raw;
  if (!p.SerializeToString(&raw))
    throw fatal_error(exit_code::trace_failed, "pprof: cannot serialise");
  const std::string packed = gzip(raw);
  out.write(packed.data(), static_cast<std::streamsize>(packed.size()));
  if (!out) throw fatal_error(exit_code::trace_failed, "pprof: write failed");
}

}  // namespace gomaptrace
