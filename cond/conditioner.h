#pragma once
// Conditioning seam: what the user asked for (class labels today; a prompt or its text-encoder
// states next) in, the raw context rows the DiT cross-attends to out. A model family names its
// conditioner (pipeline/family.h); the DiT only sees (B, L, E) rows.
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ditgen {

// One request; each conditioner reads the fields it understands.
struct Condition {
  std::vector<int> labels;  // class labels (the digits model)
  Tensor prompt;            // (Lp, E) text-encoder states of the prompt
  Tensor negative_prompt;   // (Ln, E) of the negative prompt: guidance's unconditional row

  static Condition of_labels(std::vector<int> labels) {
    Condition c;
    c.labels = std::move(labels);
    return c;
  }
};

class Conditioner {
 public:
  virtual ~Conditioner() = default;
  virtual std::string name() const = 0;
  // Throws std::invalid_argument naming the bad value and what was expected.
  virtual void validate(const Condition& c) const = 0;
  // (B, L, E) raw context: row 0 for `c`; with `with_null` a second row, the unconditional
  // input of classifier-free guidance.
  virtual Tensor context(const Condition& c, bool with_null) const = 0;
};

}  // namespace ditgen
