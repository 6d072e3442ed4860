#include "gomaptrace/probe_catalog.hpp"

namespace gomaptrace {

std::string_view to_string(probe_role r) {
  switch (r) {
    case probe_role::create:
      return "create";
    case probe_role::create_small:
      return "create_small";
    case probe_role::assign:
      return "assign";
    case probe_role::grow:
      return "grow";
    case probe_role::grow_work:
      return "grow_work";
    case probe_role::evacuate:
      return "evacuate";
    case probe_role::map_grow:
      return "map_grow";
    case probe_role::table_grow:
      return "table_grow";
    case probe_role::install_split:
      return "install_split";
  }
  return "?";
}

namespace {
using R = arg_reg;
using P = probe_role;

// Signatures checked against runtime/map.go (1.17-1.23), map_noswiss.go / map_swiss.go
// (1.24, 1.25), runtime/map.go (1.26+) and internal/runtime/maps/{map,table}.go.
const std::vector<probe_spec> shared_entry = {
    {"runtime.makemap", P::create, true, R::rax, R::none, R::none, R::rbx, false, "makemap"},
    {"runtime.makemap64", P::create, true, R::rax, R::none, R::none, R::rbx, false, "makemap"},
    {"runtime.makemap_small", P::create_small, true, R::none, R::none, R::none, R::none, false,
     "makemap_small"},
    {"runtime.mapassign", P::assign, false, R::rax, R::rbx, R::none, R::none, true, "assign", false,
     true},
    {"runtime.mapassign_fast32", P::assign, false, R::rax, R::rbx, R::none, R::none, true, "assign",
     false, true},
    {"runtime.mapassign_fast32ptr", P::assign, false, R::rax, R::rbx, R::none, R::none, true,
     "assign", false, true},
    {"runtime.mapassign_fast64", P::assign, false, R::rax, R::rbx, R::none, R::none, true, "assign",
     false, true},
    {"runtime.mapassign_fast64ptr", P::assign, false, R::rax, R::rbx, R::none, R::none, true,
     "assign", false, true},
    {"runtime.mapassign_faststr", P::assign, false, R::rax, R::rbx, R::none, R::none, true,
     "assign", false, true},
};

std::vector<probe_spec> make_classic() {
  std::vector<probe_spec> v = shared_entry;
  v.push_back(
      {"runtime.hashGrow", P::grow, true, R::rax, R::rbx, R::none, R::none, false, "grow", true});
  for (auto s : {"runtime.growWork", "runtime.growWork_fast32", "runtime.growWork_fast64",
                 "runtime.growWork_faststr"}) {
    v.push_back({s, P::grow_work, false, R::rax, R::rbx, R::none, R::rcx, true, "grow_work"});
  }
  for (auto s : {"runtime.evacuate", "runtime.evacuate_fast32", "runtime.evacuate_fast64",
                 "runtime.evacuate_faststr"}) {
    v.push_back({s, P::evacuate, false, R::rax, R::rbx, R::none, R::rcx, true, "evacuate"});
  }
  return v;
}

std::vector<probe_spec> make_swiss() {
  std::vector<probe_spec> v = shared_entry;
  v.push_back({"internal/runtime/maps.(*Map).growToSmall", P::map_grow, true, R::rbx, R::rax,
               R::none, R::none, false, "grow_to_small"});
  v.push_back({"internal/runtime/maps.(*Map).growToTable", P::map_grow, true, R::rbx, R::rax,
               R::none, R::none, false, "grow_to_table", true});
  v.push_back({"internal/runtime/maps.(*table).rehash", P::table_grow, true, R::rbx, R::rcx, R::rax,
               R::none, false, "rehash", false, false, true});
  v.push_back({"internal/runtime/maps.(*table).grow", P::table_grow, true, R::rbx, R::rcx, R::rax,
               R::rdi, false, "table_grow", true, false, false, true});
  v.push_back({"internal/runtime/maps.(*table).split", P::table_grow, true, R::rbx, R::rcx, R::rax,
               R::none, false, "split", true, false, false, true});
  // maps.Clone: from 1.25 runtime.mapclone copies the map with (*Map).Clone, which calls no
  // makemap (1.24's mapclone2 does, and has no (*Map).Clone: no creation counts twice).
  v.push_back({"internal/runtime/maps.(*Map).Clone", P::create, true, R::rbx, R::none, R::none,
               R::none, false, "clone"});
  v.push_back({"internal/runtime/maps.(*Map).installTableSplit", P::install_split, false, R::none,
               R::rax, R::rbx, R::none, true, "install_split"});
  return v;
}
}  // namespace

const inlined_recipe* find_inlined_recipe(std::string_view callee, std::string_view caller) {
  // reflect.makemap is runtime.reflect_makemap(t, cap) (go:linkname), which ends in
  // `return makemap(t, cap, nil)` in every release 1.17-1.27 (runtime/map.go,
  // map_swiss.go, map_noswiss.go); 1.24+ Swiss builds inline that makemap. It is how
  // reflect.MakeMap, encoding/json and text/template make maps.
  // runtime.mapclone2(t, src) (maps.Clone; classic 1.21-1.24, Swiss 1.24) starts with
  // `dst := makemap(t, hint, nil)` and returns dst; the hint is read from src, in no register.
  static constexpr inlined_recipe recipes[] = {
      {"runtime.makemap", "reflect.makemap", R::rax, R::rbx, true},
      {"runtime.makemap", "runtime.mapclone2", R::rax, R::none, true},
  };
  for (const inlined_recipe& r : recipes)
    if (r.callee == callee && r.caller == caller) return &r;
  return nullptr;
}

const std::vector<probe_spec>& probe_specs(map_impl impl) {
  static const std::vector<probe_spec> classic = make_classic();
  static const std::vector<probe_spec> swiss = make_swiss();
  return impl == map_impl::classic ? classic : swiss;
}

}  // namespace gomaptrace
