#include "apps/commands.h"

namespace ditgen::app {

std::vector<CommandInfo>& command_registry() {
  static std::vector<CommandInfo> registry;
  return registry;
}

}  // namespace ditgen::app
