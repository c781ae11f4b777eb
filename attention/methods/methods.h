#pragma once
// Factories of the attention methods, one per --attn name (methods/list.h); make_backend
// (spec.h) dispatches here. A new method is one file defining make_<name> and one line in list.h.
#include <memory>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "attention/spec.h"

namespace ditgen::attn {

struct MethodInfo {
  std::string name, summary;
  std::unique_ptr<AttentionBackend> (*make)(const AttnSpec&, const KernelOptions&);
};
// Every method make_backend knows, dense first (methods/list.h).
const std::vector<MethodInfo>& methods();

#define METHOD(name, summary) std::unique_ptr<AttentionBackend> make_##name(const AttnSpec& spec, const KernelOptions& opt);
#include "attention/methods/list.h"
#undef METHOD

}  // namespace ditgen::attn
