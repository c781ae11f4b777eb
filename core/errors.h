#pragma once
// Error types every layer may throw beside std::invalid_argument (bad input, named) and
// std::runtime_error (a failure at run time).
#include <stdexcept>
#include <string>

namespace ditgen {

// A model block's output holds NaN or Inf; layer() names the block.
class NumericalError : public std::runtime_error {
 public:
  NumericalError(const std::string& what, int layer) : std::runtime_error(what), layer_(layer) {}
  int layer() const { return layer_; }

 private:
  int layer_;
};

}  // namespace ditgen
