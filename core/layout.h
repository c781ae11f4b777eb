#pragma once
// TokenLayout: the single owner of the map between token positions and (t, h, w) patch
// coordinates. The engine permutes tokens into `order` once after patch embedding and back
// once before unpatchify; everything in between (RoPE, attention masks) reads coordinates here.
#include <cstdint>
#include <string>
#include <vector>

namespace ditgen {

struct Coord {
  int32_t t, h, w;
};

class TokenLayout {
 public:
  TokenLayout() = default;
  // Frame-major (identity) order on a Tp x Hp x Wp grid.
  TokenLayout(int tp, int hp, int wp);
  // `order[i]` is the frame-major index of the token stored at position i. Throws
  // std::invalid_argument unless `order` is a bijection onto 0..N-1.
  TokenLayout(int tp, int hp, int wp, std::vector<int32_t> order, std::string name);

  int frames() const { return tp_; }   // Tp
  int height() const { return hp_; }   // Hp
  int width() const { return wp_; }    // Wp
  int64_t tokens() const { return int64_t(tp_) * hp_ * wp_; }  // N
  int64_t tokens_per_frame() const { return int64_t(hp_) * wp_; }
  const std::string& name() const { return name_; }
  bool is_identity() const { return identity_; }

  // Frame-major index of (t, h, w): the one place this formula lives.
  int64_t frame_major_index(int t, int h, int w) const { return (int64_t(t) * hp_ + h) * wp_ + w; }
  Coord frame_major_coord(int64_t n) const {
    return Coord{int32_t(n / (int64_t(hp_) * wp_)), int32_t((n / wp_) % hp_), int32_t(n % wp_)};
  }
  // Coordinates of the token stored at position i of this layout.
  Coord coord(int64_t i) const { return coords_[size_t(i)]; }
  const std::vector<Coord>& coords() const { return coords_; }
  const std::vector<int32_t>& order() const { return order_; }       // position -> frame-major
  const std::vector<int32_t>& inverse() const { return inverse_; }   // frame-major -> position

  // Rows of `width` floats: dst[i] = src[order[i]] (frame-major -> layout order).
  void permute(const float* src, float* dst, int64_t width) const;
  // dst[order[i]] = src[i] (layout order -> frame-major).
  void unpermute(const float* src, float* dst, int64_t width) const;

 private:
  void finish();
  int tp_ = 0, hp_ = 0, wp_ = 0;
  std::string name_ = "frame";
  bool identity_ = true;
  std::vector<int32_t> order_, inverse_;
  std::vector<Coord> coords_;
};

}  // namespace ditgen
