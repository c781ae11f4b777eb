#pragma once
// --attn SPEC parsing: NAME[:key=value,...] -> an attention backend.
#include <map>
#include <memory>
#include <string>

#include "attention/backend.h"

namespace ditgen::attn {

struct AttnSpec {
  std::string name;
  std::map<std::string, std::string> params;
};

// Throws std::invalid_argument naming the malformed part.
AttnSpec parse_spec(const std::string& text);

// Throws std::invalid_argument naming an unknown method or key and listing the valid ones.
std::unique_ptr<AttentionBackend> make_backend(const std::string& spec, const KernelOptions& opt = {});

}  // namespace ditgen::attn
