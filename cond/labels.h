#pragma once
// Class-label conditioning (docs/model.md §4): each of the L context rows is the embedding of
// one label plus a learned position row; label K (= num_classes) is the null label of guidance.
#include "cond/conditioner.h"

namespace ditgen {

// The one check of a label list: `labels` has `count` entries in 0..num_classes-1. Throws
// std::invalid_argument ("label 12 is out of range 0 to 9", "gives 3 labels, the model expects 2").
void check_labels(const std::vector<int>& labels, int num_classes, int count);

class LabelConditioner : public Conditioner {
 public:
  // embedding: (K + 1, E); position: (L, E).
  LabelConditioner(int num_classes, int ctx_len, Tensor embedding, Tensor position);
  std::string name() const override { return "labels"; }
  void validate(const Condition& c) const override { check_labels(c.labels, num_classes_, ctx_len_); }
  Tensor context(const Condition& c, bool with_null) const override;
  // (B, L, E) rows for any label lists: labels[b] has L entries in 0..K, K being the null label.
  // Throws std::invalid_argument naming a bad count or label.
  Tensor rows(const std::vector<std::vector<int>>& labels) const;
  int num_classes() const { return num_classes_; }
  int ctx_len() const { return ctx_len_; }

 private:
  int num_classes_, ctx_len_;
  Tensor embedding_;  // (K + 1, E)
  Tensor position_;   // (L, E)
};

}  // namespace ditgen
