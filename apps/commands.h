#pragma once
// Subcommand registry of the `ditgen` binary: each cmd_*.cpp registers itself with a static
// Registrar. Commands throw UsageError for bad command-line input (exit status 2) and any
// other std::exception for runtime failures (exit status 1).
#include <CLI/CLI.hpp>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ditgen::app {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Adds the subcommand's options to `sub` and sets its callback.
using Setup = std::function<void(CLI::App& sub)>;

struct CommandInfo {
  std::string name, help;
  Setup setup;
};

std::vector<CommandInfo>& command_registry();

struct Registrar {
  Registrar(std::string name, std::string help, Setup setup) {
    command_registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

}  // namespace ditgen::app
