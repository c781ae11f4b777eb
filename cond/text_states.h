#pragma once
// Text conditioning from text-encoder states (Wan2.1: umT5 states, 4096 wide): the prompt's rows,
// and for guidance the negative prompt's, each zero-padded to the model's text length as the
// official model pads them (the DiT cross-attends to all text_len rows).
#include "cond/conditioner.h"

namespace ditgen {

class TextStatesConditioner : public Conditioner {
 public:
  TextStatesConditioner(int text_len, int width) : text_len_(text_len), width_(width) {}
  std::string name() const override { return "text-states"; }
  // Throws std::invalid_argument: no prompt states, or states that are not (1..text_len, width).
  void validate(const Condition& c) const override;
  // (B, text_len, width): the prompt, then (with_null) the negative prompt, which must be there.
  Tensor context(const Condition& c, bool with_null) const override;

 private:
  int text_len_, width_;
};

}  // namespace ditgen
