// ditgen: DiT video and image generation on the CPU with spatiotemporal sparse attention.
#include <algorithm>
#include <iostream>

#include "apps/commands.h"
#include "apps/openblas_env.h"

namespace {

// CLI11 reports "Could not convert: --steps = abc"; add what the option expects, from its type.
std::string conversion_message(CLI::App& app, const CLI::ConversionError& e) {
  const std::string what = e.what();
  const std::string lead = "Could not convert: ";
  const size_t eq = what.find(" = ");
  if (what.rfind(lead, 0) != 0 || eq == std::string::npos) return what;
  const std::string flag = what.substr(lead.size(), eq - lead.size());
  const std::string value = what.substr(eq + 3);
  for (CLI::App* sub : app.get_subcommands()) {
    const CLI::Option* opt = sub->get_option_no_throw(flag);
    if (!opt) continue;
    const std::string type = opt->get_type_name();
    std::string expected = type;
    if (type.rfind("UINT", 0) == 0) {
      expected = "a whole number from 0";
    } else if (type.rfind("INT", 0) == 0) {
      expected = "a whole number";
    } else if (type.rfind("FLOAT", 0) == 0) {
      expected = "a number";
    }
    return flag + " '" + value + "' is not a valid value: expected " + expected;
  }
  return what;
}

}  // namespace

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
  } catch (const CLI::ConversionError& e) {
    std::cerr << "ditgen: error: " << conversion_message(app, e) << "\n(run with --help for usage)\n";
    return 2;
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
