#pragma once
// Factories of the sparse methods, one per --attn name; make_backend (spec.h) dispatches here.
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
// Every method make_backend knows, dense first.
const std::vector<MethodInfo>& methods();

std::unique_ptr<AttentionBackend> make_dense(const AttnSpec& spec, const KernelOptions& opt);
std::unique_ptr<AttentionBackend> make_radial(const AttnSpec& spec, const KernelOptions& opt);
std::unique_ptr<AttentionBackend> make_radial3d(const AttnSpec& spec, const KernelOptions& opt);
std::unique_ptr<AttentionBackend> make_window(const AttnSpec& spec, const KernelOptions& opt);
std::unique_ptr<AttentionBackend> make_svg(const AttnSpec& spec, const KernelOptions& opt);
std::unique_ptr<AttentionBackend> make_topp(const AttnSpec& spec, const KernelOptions& opt);
std::unique_ptr<AttentionBackend> make_paro(const AttnSpec& spec, const KernelOptions& opt);

}  // namespace ditgen::attn
