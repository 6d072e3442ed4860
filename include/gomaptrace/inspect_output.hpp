// layer: output
#pragma once
// `gomaptrace inspect`: what the tool knows about a binary and where each fact came from.
#include <nlohmann/json.hpp>
#include <ostream>

#include "gomaptrace/go_binary.hpp"

namespace gomaptrace {

nlohmann::json inspect_json(const go_binary& bin);
void write_inspect_text(std::ostream& out, const go_binary& bin);

}  // namespace gomaptrace
