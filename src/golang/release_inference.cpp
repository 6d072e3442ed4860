#include "gomaptrace/release_inference.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <string_view>

#include "gomaptrace/pclntab.hpp"

namespace gomaptrace {

namespace {

// A runtime function that every program of that release and later links, and no earlier one
// does. Each was checked against a small program built with every release from 1.16 to 1.27
// (go tool nm: present from `minor` on, absent before) and is asserted over the testdata
// matrix by tests/unit/release_inference_test.cpp.
struct marker {
  int minor;
  std::string_view function;
  std::string_view why;
};

constexpr marker markers[] = {
    {17, "runtime.spillArgs", "register ABI"},
    {21, "runtime.(*unwinder).next", "the 1.21 unwinder"},
    {22, "internal/chacha8rand.block", "runtime randomness from ChaCha8"},
    {23, "internal/runtime/exithook.Run", "exit hooks in internal/runtime"},
    {24, "internal/sync.throw", "internal/sync"},
    {25, "internal/runtime/cgroup.FindCPU", "cgroup-aware GOMAXPROCS"},
    {26, "internal/abi.BoundsDecode", "encoded bounds-check failures"},
    {27, "runtime.moduleTypelinks", "typelinks read per module"},
};

constexpr int newest_known = 27;

std::string release_name(int minor) { return fmt::format("go1.{}", minor); }

}  // namespace

std::optional<go_release_range> infer_release(const pclntab& pcln) {
  go_release_range r;
  switch (pcln.magic()) {
    case pclntab::magic_go116:
      r = {16, 17, ".gopclntab format of go1.16-go1.17"};
      break;
    case pclntab::magic_go118:
      r = {18, 19, ".gopclntab format of go1.18-go1.19"};
      break;
    case pclntab::magic_go120:
      r = {20, newest_known, ".gopclntab format of go1.20+"};
      break;
    default:
      return std::nullopt;
  }
  const int family_lo = r.lo, family_hi = r.hi;
  const marker* newest_present = nullptr;  // the deciding signs, for the evidence
  const marker* oldest_absent = nullptr;
  for (const marker& m : markers) {
    if (m.minor <= family_lo || m.minor > family_hi) continue;
    if (pcln.find(m.function)) {
      r.lo = std::max(r.lo, m.minor);
      newest_present = &m;
    } else {
      r.hi = std::min(r.hi, m.minor - 1);
      if (!oldest_absent) oldest_absent = &m;
    }
  }
  if (r.lo > r.hi) return std::nullopt;
  for (const marker* m : {newest_present, oldest_absent}) {
    if (m)
      r.evidence += fmt::format(", {} ({}, {}+) {}", m->function, m->why, release_name(m->minor),
                                m == newest_present ? "present" : "absent");
  }
  if (r.lo == newest_known)
    r.evidence += fmt::format(", {} being the newest release this gomaptrace knows",
                              release_name(newest_known));
  return r;
}

}  // namespace gomaptrace
