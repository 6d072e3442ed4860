// layer: golang
#pragma once
// Which runtime functions the tracer probes for each map implementation, what each one
// means, and where its arguments live under the amd64 register ABI. Names are exactly as
// the ELF symbol table / .gopclntab spell them.
#include <string_view>
#include <vector>

#include "gomaptrace/go_version.hpp"

namespace gomaptrace {

enum class probe_role {
  create,        // makemap / makemap64: t, hint, h -> map
  create_small,  // makemap_small: () -> map
  assign,        // mapassign*: t, map, key
  grow,          // classic hashGrow(t, h)
  grow_work,     // classic growWork*(t, h, bucket)
  evacuate,      // classic evacuate*(t, h, oldbucket)
  map_grow,      // swiss (*Map).growToSmall / growToTable (m, typ)
  table_grow,    // swiss (*table).rehash / grow / split (t, typ, m [, newCapacity])
  install_split  // swiss (*Map).installTableSplit(m, old, left, right)
};

std::string_view to_string(probe_role r);

// Register ABI argument slots (RAX, RBX, RCX, RDI, RSI, R8, ...), by argument index.
enum class arg_reg { rax, rbx, rcx, rdi, rsi, r8, r9, r10, r11, none };

struct probe_spec {
  std::string_view symbol;
  probe_role role;
  bool want_return;   // plant breakpoints on RETs to see results / after-state
  arg_reg type_arg;   // map type descriptor
  arg_reg map_arg;    // *hmap / *maps.Map (none: only known at return)
  arg_reg table_arg;  // swiss *table receiver
  arg_reg extra_arg;  // hint, bucket, newCapacity
  bool high_volume;   // printed only on request (--events)
  // What a hit means to a user, decided here once rather than from the symbol's spelling.
  std::string_view event;  // the event's name in every output (makemap, assign, split, ...)
  // Growth in the sense a user asks "how often did my map grow": classic hashGrow, swiss
  // growToTable (small map becomes a table), table grow (capacity doubles) and split; not
  // the rehash that wraps grow/split, nor growToSmall (the first group of an empty map).
  bool counts_as_grow = false;
  bool is_insert = false;  // mapassign*: one key inserted or updated
  // Swiss rehash: always wraps one grow or split, which is folded into it (one growth is one
  // event, timed from the outer call). Counts as a grow only if no inner call was seen.
  bool wraps_growth = false;
  // Swiss (*table).grow and split: called from rehash alone (internal/runtime/maps/table.go,
  // 1.24-1.27). Where the binary's rehash is probed, they are folded into it at their entry
  // and their RETs are not planted: each would be a stop (ptrace) or a RET run out of line
  // (a uprobe: ~20 us here, measured) inside the rehash being timed.
  bool wrapped = false;
};

// What an inlined copy of a probed function inside a known caller can be decoded from. The
// copy has no entry and no RET of its own, and at its first PC the registers hold whatever
// the caller's code left there; but some callers hand their own arguments straight on and
// return the callee's result as theirs.
struct inlined_recipe {
  std::string_view callee;
  std::string_view caller;
  arg_reg type_arg;        // the caller's register at its entry holding the callee's type_arg
  arg_reg extra_arg;       // ... holding the callee's extra_arg (hint); none: in no register
  bool result_is_callers;  // the callee's result is the caller's, in RAX at the caller's RETs
};

// nullptr when nothing is known about that caller: the copy is still counted and its call
// chain shown, but its arguments and result are not reported.
const inlined_recipe* find_inlined_recipe(std::string_view callee, std::string_view caller);

// The probes for one implementation. Functions a given binary lacks are simply not found
// (e.g. makemap64 is often dead-code eliminated).
const std::vector<probe_spec>& probe_specs(map_impl impl);

}  // namespace gomaptrace
