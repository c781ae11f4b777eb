#include "cond/text_states.h"

#include <algorithm>
#include <stdexcept>

namespace ditgen {

namespace {
void check_states(const Tensor& t, const char* what, int text_len, int width) {
  if (t.rank() != 2 || t.dim(0) < 1 || t.dim(0) > text_len || t.dim(1) != width)
    throw std::invalid_argument(std::string(what) + " states have shape " + shape_string(t.shape()) +
                                ", expected (tokens 1 to " + std::to_string(text_len) + ", " + std::to_string(width) +
                                ")");
}
}  // namespace

void TextStatesConditioner::validate(const Condition& c) const {
  if (c.prompt.size() == 0)
    throw std::invalid_argument("this model is conditioned on text-encoder states: give the prompt's (--context)");
  check_states(c.prompt, "prompt", text_len_, width_);
  if (c.negative_prompt.size() != 0) check_states(c.negative_prompt, "negative_prompt", text_len_, width_);
}

Tensor TextStatesConditioner::context(const Condition& c, bool with_null) const {
  validate(c);
  if (with_null && c.negative_prompt.size() == 0)
    throw std::invalid_argument("guidance needs the negative prompt's states (tensor negative_prompt), or cfg 1");
  const int batch = with_null ? 2 : 1;
  Tensor ctx({batch, int64_t(text_len_), int64_t(width_)});
  ctx.fill(0.0f);
  for (int b = 0; b < batch; ++b) {
    const Tensor& s = b == 0 ? c.prompt : c.negative_prompt;
    const Tensor f = s.dtype() == DType::F32 ? s : s.to(DType::F32);
    std::copy_n(f.data(), f.size(), ctx.data() + int64_t(b) * text_len_ * width_);
  }
  return ctx;
}

}  // namespace ditgen
