#pragma once
// Token reorderings as TokenLayout factories. Every layout is a bijection between positions and
// frame-major indices (TokenLayout checks it); the engine applies the chosen one once per forward.
//
//   frame      frame-major, the identity: n = (t*Hp + h)*Wp + w
//   tile       tiles of (tt, th, tw) tokens are contiguous (Sliding Tile Attention, NATTEN);
//              tiles in frame-major tile order, tokens frame-major inside a tile; border tiles
//              are smaller when a size does not divide
//   transpose  Sparse VideoGen's frame/token transpose: position p*Tp + f holds frame-major
//              f*F + p (F = Hp*Wp); the same index map as the axis order "hwt"
//   thw, twh, htw, hwt, wth, wht   the six axis orders (slowest axis first) PAROAttention picks from
#include <array>
#include <string>
#include <vector>

#include "core/layout.h"

namespace ditgen::attn {

struct TileShape {
  int t = 4, h = 4, w = 4;
  int volume() const { return t * h * w; }
  std::string str() const;  // "4x4x4"
};
// "TxHxW" (or one number for a cube); throws std::invalid_argument naming the bad text.
TileShape parse_tile(const std::string& text);

TokenLayout frame_layout(int tp, int hp, int wp);
TokenLayout tile_layout(int tp, int hp, int wp, const TileShape& tile);
TokenLayout transpose_layout(int tp, int hp, int wp);
// `axes` is a permutation of "thw", slowest axis first ("thw" is frame-major).
TokenLayout axis_order_layout(int tp, int hp, int wp, const std::string& axes);

// The six axis orders, in PAROAttention's enumeration (FHW, FWH, HWF, HFW, WHF, WFH).
const std::array<std::string, 6>& axis_orders();

// Layout names accepted by the `layout` key: frame, tile, transpose and the six axis orders.
std::vector<std::string> layout_names();
bool is_layout_name(const std::string& name);
// Builds a layout by name; `tile` is used by "tile" only. Throws naming an unknown layout.
TokenLayout make_layout(const std::string& name, int tp, int hp, int wp, const TileShape& tile = {});

// Permutation between two layouts of one grid: result[i] = position in `to` of the token at
// position i of `from`.
std::vector<int32_t> relative_order(const TokenLayout& from, const TokenLayout& to);

}  // namespace ditgen::attn
