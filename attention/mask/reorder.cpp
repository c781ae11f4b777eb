#include "attention/mask/reorder.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "core/numbers.h"

namespace ditgen::attn {

std::string TileShape::str() const {
  return std::to_string(t) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

TileShape parse_tile(const std::string& text) {
  std::vector<int> v;
  std::stringstream s(text);
  std::string part;
  while (std::getline(s, part, 'x')) {
    const int x = parse_int(part).value_or(0);
    // At most 1024 per axis, so that TileShape::volume() fits an int (tests/fuzz/fuzz_attn_spec
    // found tile=404884943x22x2 overflowing it).
    if (x < 1 || x > 1024)
      throw std::invalid_argument("'" + text + "' is not a size TxHxW of integers in 1..1024");
    v.push_back(x);
  }
  if (v.size() == 1) return TileShape{v[0], v[0], v[0]};
  if (v.size() != 3) throw std::invalid_argument("'" + text + "' is not a size TxHxW of integers in 1..1024");
  return TileShape{v[0], v[1], v[2]};
}

TokenLayout frame_layout(int tp, int hp, int wp) { return TokenLayout(tp, hp, wp); }

TokenLayout tile_layout(int tp, int hp, int wp, const TileShape& tile) {
  if (tile.t < 1 || tile.h < 1 || tile.w < 1) throw std::invalid_argument("tile " + tile.str() + " must be positive");
  std::vector<int32_t> order;
  order.reserve(size_t(tp) * hp * wp);
  for (int t0 = 0; t0 < tp; t0 += tile.t)
    for (int h0 = 0; h0 < hp; h0 += tile.h)
      for (int w0 = 0; w0 < wp; w0 += tile.w)
        for (int t = t0; t < std::min(tp, t0 + tile.t); ++t)
          for (int h = h0; h < std::min(hp, h0 + tile.h); ++h)
            for (int w = w0; w < std::min(wp, w0 + tile.w); ++w) order.push_back(int32_t((int64_t(t) * hp + h) * wp + w));
  return TokenLayout(tp, hp, wp, std::move(order), "tile:" + tile.str());
}

TokenLayout transpose_layout(int tp, int hp, int wp) {
  const int64_t f = int64_t(hp) * wp;
  std::vector<int32_t> order(size_t(f * tp));
  // Position p*Tp + t holds frame-major t*F + p.
  for (int64_t p = 0; p < f; ++p)
    for (int t = 0; t < tp; ++t) order[size_t(p * tp + t)] = int32_t(int64_t(t) * f + p);
  return TokenLayout(tp, hp, wp, std::move(order), "transpose");
}

const std::array<std::string, 6>& axis_orders() {
  static const std::array<std::string, 6> orders = {"thw", "twh", "hwt", "htw", "wht", "wth"};
  return orders;
}

TokenLayout axis_order_layout(int tp, int hp, int wp, const std::string& axes) {
  if (std::find(axis_orders().begin(), axis_orders().end(), axes) == axis_orders().end())
    throw std::invalid_argument("axis order '" + axes + "' is not a permutation of 'thw'");
  const int ext[3] = {tp, hp, wp};
  int ax[3];
  for (int i = 0; i < 3; ++i) ax[i] = axes[size_t(i)] == 't' ? 0 : axes[size_t(i)] == 'h' ? 1 : 2;
  std::vector<int32_t> order;
  order.reserve(size_t(tp) * hp * wp);
  int c[3];
  for (c[0] = 0; c[0] < ext[ax[0]]; ++c[0])
    for (c[1] = 0; c[1] < ext[ax[1]]; ++c[1])
      for (c[2] = 0; c[2] < ext[ax[2]]; ++c[2]) {
        int thw[3];
        for (int i = 0; i < 3; ++i) thw[ax[i]] = c[i];
        order.push_back(int32_t((int64_t(thw[0]) * hp + thw[1]) * wp + thw[2]));
      }
  return TokenLayout(tp, hp, wp, std::move(order), axes);
}

std::vector<std::string> layout_names() {
  std::vector<std::string> n = {"frame", "tile", "transpose"};
  for (const auto& a : axis_orders()) n.push_back(a);
  return n;
}

bool is_layout_name(const std::string& name) {
  const auto n = layout_names();
  return std::find(n.begin(), n.end(), name) != n.end();
}

TokenLayout make_layout(const std::string& name, int tp, int hp, int wp, const TileShape& tile) {
  if (name == "frame") return frame_layout(tp, hp, wp);
  if (name == "tile") return tile_layout(tp, hp, wp, tile);
  if (name == "transpose") return transpose_layout(tp, hp, wp);
  if (std::find(axis_orders().begin(), axis_orders().end(), name) != axis_orders().end())
    return axis_order_layout(tp, hp, wp, name);
  std::string known;
  for (const auto& n : layout_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown layout '" + name + "' (known: " + known + ")");
}

std::vector<int32_t> relative_order(const TokenLayout& from, const TokenLayout& to) {
  if (from.tokens() != to.tokens() || from.frames() != to.frames() || from.height() != to.height())
    throw std::invalid_argument("relative_order: layouts '" + from.name() + "' and '" + to.name() +
                                "' are on different grids");
  std::vector<int32_t> r(size_t(from.tokens()));
  for (size_t i = 0; i < r.size(); ++i) r[i] = to.inverse()[size_t(from.order()[i])];
  return r;
}

}  // namespace ditgen::attn
