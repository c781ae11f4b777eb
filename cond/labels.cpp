#include "cond/labels.h"

#include <stdexcept>
#include <string>

namespace ditgen {

void check_labels(const std::vector<int>& labels, int num_classes, int count) {
  if (int(labels.size()) != count)
    throw std::invalid_argument("gives " + std::to_string(labels.size()) + " labels, the model expects " +
                                std::to_string(count));
  for (int l : labels)
    if (l < 0 || l >= num_classes)
      throw std::invalid_argument("label " + std::to_string(l) + " is out of range 0 to " +
                                  std::to_string(num_classes - 1));
}

LabelConditioner::LabelConditioner(int num_classes, int ctx_len, Tensor embedding, Tensor position)
    : num_classes_(num_classes), ctx_len_(ctx_len), embedding_(std::move(embedding)), position_(std::move(position)) {
  if (num_classes < 1 || ctx_len < 1 || embedding_.rank() != 2 || embedding_.dim(0) != num_classes + 1 ||
      position_.rank() != 2 || position_.dim(0) != ctx_len || position_.dim(1) != embedding_.dim(1))
    throw std::invalid_argument("label tables have shapes " + shape_string(embedding_.shape()) + " and " +
                                shape_string(position_.shape()) + ", expected (" + std::to_string(num_classes + 1) +
                                ", E) and (" + std::to_string(ctx_len) + ", E)");
}

Tensor LabelConditioner::context(const Condition& c, bool with_null) const {
  validate(c);
  std::vector<std::vector<int>> labels{c.labels};
  if (with_null) labels.emplace_back(size_t(ctx_len_), num_classes_);
  return rows(labels);
}

Tensor LabelConditioner::rows(const std::vector<std::vector<int>>& labels) const {
  for (const auto& l : labels) check_labels(l, num_classes_ + 1, ctx_len_);  // K: the null label
  const int64_t L = ctx_len_, E = embedding_.dim(1);
  Tensor ctx({int64_t(labels.size()), L, E});
  for (size_t b = 0; b < labels.size(); ++b)
    for (int64_t j = 0; j < L; ++j) {
      const int lab = labels[b][size_t(j)];
      float* row = ctx.data() + (int64_t(b) * L + j) * E;
      for (int64_t e = 0; e < E; ++e) row[e] = embedding_[lab * E + e] + position_[j * E + e];
    }
  return ctx;
}

}  // namespace ditgen
