#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "gomaptrace/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gomaptrace: trace what Go maps really do"};
  CLI11_PARSE(app, argc, argv);
  return 0;
}
