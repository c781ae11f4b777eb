// ditgen: DiT video and image generation on the CPU with spatiotemporal sparse attention.
#include <algorithm>
#include <iostream>

#include "apps/commands.h"
#include "apps/openblas_env.h"

int main(int argc, char** argv) {
  using namespace ditgen::app;
  reexec_for_openblas_coretype(argv);
  CLI::App app{"ditgen: diffusion-transformer video generation on the CPU with sparse attention"};
  app.require_subcommand(1);
  auto& registry = command_registry();
  std::sort(registry.begin(), registry.end(), [](const CommandInfo& a, const CommandInfo& b) { return a.name < b.name; });
  for (auto& c : registry) c.setup(*app.add_subcommand(c.name, c.help));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "ditgen: error: " << e.what() << "\n(run with --help for usage)\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "ditgen: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ditgen: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
