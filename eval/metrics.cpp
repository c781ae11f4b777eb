#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ditgen::eval {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_dims(int t, int h, int w, int c, const char* what) {
  if (t <= 0 || h <= 0 || w <= 0 || c <= 0)
    throw std::invalid_argument(std::string(what) + ": dimensions must be positive, got T=" + std::to_string(t) +
                                " H=" + std::to_string(h) + " W=" + std::to_string(w) + " C=" + std::to_string(c));
}

void check_range(double range, const char* what) {
  if (!(range > 0) || !std::isfinite(range))
    throw std::invalid_argument(std::string(what) + ": data range must be positive, got " + std::to_string(range));
}

// Grayscale (double) of an image x[H][W][C].
std::vector<double> to_gray(const float* x, int h, int w, int c) {
  const int64_t n = int64_t(h) * w;
  std::vector<double> g(static_cast<size_t>(n));
  if (c == 1) {
    for (int64_t i = 0; i < n; ++i) g[i] = x[i];
  } else if (c == 3) {
    for (int64_t i = 0; i < n; ++i) g[i] = 0.299 * x[3 * i] + 0.587 * x[3 * i + 1] + 0.114 * x[3 * i + 2];
  } else {
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int k = 0; k < c; ++k) s += x[i * c + k];
      g[i] = s / c;
    }
  }
  return g;
}

// Normalised 1-D Gaussian of `size` taps (odd), σ = 1.5.
std::vector<double> gaussian_taps(int size) {
  const double sigma = 1.5;
  std::vector<double> g(static_cast<size_t>(size));
  const int r = size / 2;
  double s = 0;
  for (int i = 0; i < size; ++i) {
    const double d = i - r;
    g[i] = std::exp(-d * d / (2 * sigma * sigma));
    s += g[i];
  }
  for (auto& v : g) v /= s;
  return g;
}

// "Valid" separable filtering of an h×w image: output (h-k+1)×(w-k+1).
std::vector<double> filter_valid(const std::vector<double>& x, int h, int w, const std::vector<double>& g) {
  const int k = int(g.size());
  const int ow = w - k + 1, oh = h - k + 1;
  std::vector<double> tmp(size_t(h) * ow);
  for (int y = 0; y < h; ++y) {
    const double* row = x.data() + size_t(y) * w;
    for (int xo = 0; xo < ow; ++xo) {
      double s = 0;
      for (int i = 0; i < k; ++i) s += g[i] * row[xo + i];
      tmp[size_t(y) * ow + xo] = s;
    }
  }
  std::vector<double> out(size_t(oh) * ow);
  for (int yo = 0; yo < oh; ++yo) {
    for (int xo = 0; xo < ow; ++xo) {
      double s = 0;
      for (int i = 0; i < k; ++i) s += g[i] * tmp[size_t(yo + i) * ow + xo];
      out[size_t(yo) * ow + xo] = s;
    }
  }
  return out;
}

}  // namespace

double mse(const float* a, const float* b, int64_t n) {
  if (n <= 0) return 0.0;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    s += d * d;
  }
  return s / double(n);
}

double psnr_from_mse(double m, double range) {
  check_range(range, "psnr");
  if (m <= 0) return kInf;
  return 10.0 * std::log10(range * range / m);
}

double psnr(const float* a, const float* b, int64_t n, double range) {
  if (n <= 0) throw std::invalid_argument("psnr: need at least one value, got n=" + std::to_string(n));
  check_range(range, "psnr");
  return psnr_from_mse(mse(a, b, n), range);
}

double ssim_gray(const double* a, const double* b, int h, int w, double range) {
  check_dims(1, h, w, 1, "ssim");
  check_range(range, "ssim");
  int k = std::min({11, h, w});
  if (k % 2 == 0) --k;
  const std::vector<double> g = gaussian_taps(k);
  const size_t n = size_t(h) * w;
  std::vector<double> va(a, a + n), vb(b, b + n), aa(n), bb(n), ab(n);
  for (size_t i = 0; i < n; ++i) {
    aa[i] = va[i] * va[i];
    bb[i] = vb[i] * vb[i];
    ab[i] = va[i] * vb[i];
  }
  const auto mu_a = filter_valid(va, h, w, g), mu_b = filter_valid(vb, h, w, g);
  const auto e_aa = filter_valid(aa, h, w, g), e_bb = filter_valid(bb, h, w, g), e_ab = filter_valid(ab, h, w, g);
  const double c1 = (0.01 * range) * (0.01 * range), c2 = (0.03 * range) * (0.03 * range);
  double sum = 0;
  for (size_t i = 0; i < mu_a.size(); ++i) {
    const double ma = mu_a[i], mb = mu_b[i];
    const double sa = e_aa[i] - ma * ma, sb = e_bb[i] - mb * mb, sab = e_ab[i] - ma * mb;
    sum += ((2 * ma * mb + c1) * (2 * sab + c2)) / ((ma * ma + mb * mb + c1) * (sa + sb + c2));
  }
  return sum / double(mu_a.size());
}

double ssim_frame(const float* a, const float* b, int h, int w, int c, double range) {
  check_dims(1, h, w, c, "ssim");
  check_range(range, "ssim");
  if (std::equal(a, a + int64_t(h) * w * c, b)) return 1.0;
  const auto ga = to_gray(a, h, w, c), gb = to_gray(b, h, w, c);
  return ssim_gray(ga.data(), gb.data(), h, w, range);
}

std::vector<double> psnr_per_frame(const float* a, const float* b, int t, int h, int w, int c, double range) {
  check_dims(t, h, w, c, "psnr_per_frame");
  check_range(range, "psnr_per_frame");
  const int64_t fs = int64_t(h) * w * c;
  std::vector<double> out(static_cast<size_t>(t));
  for (int i = 0; i < t; ++i) out[i] = psnr(a + i * fs, b + i * fs, fs, range);
  return out;
}

std::vector<double> ssim_per_frame(const float* a, const float* b, int t, int h, int w, int c, double range) {
  check_dims(t, h, w, c, "ssim_per_frame");
  check_range(range, "ssim_per_frame");
  const int64_t fs = int64_t(h) * w * c;
  std::vector<double> out(static_cast<size_t>(t));
#pragma omp parallel for schedule(dynamic)
  for (int i = 0; i < t; ++i) out[i] = ssim_frame(a + i * fs, b + i * fs, h, w, c, range);
  return out;
}

double mean_over_frames(const std::vector<double>& v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

float to_u8_value(float v) {
  const float x = (std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f;
  return std::floor(x + 0.5f);
}

std::vector<float> to_u8(const float* x, int64_t n) {
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) out[i] = to_u8_value(x[i]);
  return out;
}

VideoQuality compare_videos(const float* reference, const float* test, int t, int h, int w, int c) {
  check_dims(t, h, w, c, "compare_videos");
  const int64_t n = int64_t(t) * h * w * c;
  const std::vector<float> ru8 = to_u8(reference, n), tu8 = to_u8(test, n);
  VideoQuality q;
  q.frames = t;
  const auto p8 = psnr_per_frame(ru8.data(), tu8.data(), t, h, w, c, 255.0);
  const auto pf = psnr_per_frame(reference, test, t, h, w, c, 2.0);
  const auto ss = ssim_per_frame(ru8.data(), tu8.data(), t, h, w, c, 255.0);
  q.per_frame.resize(static_cast<size_t>(t));
  for (int i = 0; i < t; ++i) q.per_frame[i] = {p8[i], pf[i], ss[i]};
  q.psnr_db = mean_over_frames(p8);
  q.psnr_float_db = mean_over_frames(pf);
  q.ssim = mean_over_frames(ss);
  q.psnr_db_global = psnr_from_mse(mse(ru8.data(), tu8.data(), n), 255.0);
  q.psnr_float_db_global = psnr_from_mse(mse(reference, test, n), 2.0);
  return q;
}

}  // namespace ditgen::eval
