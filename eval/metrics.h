#pragma once
// Image and video quality metrics: PSNR and SSIM.
//
// Plain functions on raw float pointers plus dimensions, so that any caller (ditgen compare,
// tests, benches) can use them without sharing a tensor type. Images are stored as
// x[H][W][C] and videos as x[T][H][W][C], C fastest, float values on the scale given by
// `range` (the data range L: 255 for 8-bit values, 2 for the engine's float output in [-1, 1]).
#include <cstdint>
#include <limits>
#include <vector>

namespace ditgen::eval {

// Mean squared error over n values (0 when n == 0).
double mse(const float* a, const float* b, int64_t n);

// PSNR in dB of b against a: 10·log10(range² / MSE) over all n values. Identical inputs
// (MSE == 0) give +infinity. Throws std::invalid_argument for n <= 0 or range <= 0.
double psnr(const float* a, const float* b, int64_t n, double range);
// PSNR from a mean squared error (+infinity for mse == 0).
double psnr_from_mse(double mse, double range);

// SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) of one image x[H][W][C]: computed on the
// grayscale image (C == 1 as is; C == 3 read as RGB and turned into BT.601 luma
// 0.299 R + 0.587 G + 0.114 B; other C: the mean of the channels), with an 11×11 Gaussian
// window of σ = 1.5 (weights normalised to sum 1), K1 = 0.01, K2 = 0.03, C1 = (K1·L)²,
// C2 = (K2·L)², local statistics without the N/(N-1) correction, averaged over every
// position where the window fits inside the image ("valid" filtering, as in Wang's
// reference ssim_index.m and in scikit-image's structural_similarity with
// gaussian_weights=True, which crops the same border). No downsampling. Images smaller than
// 11 pixels on a side use the largest odd window that fits (same σ, renormalised).
// Identical images give exactly 1. Throws std::invalid_argument for bad dimensions.
double ssim_frame(const float* a, const float* b, int h, int w, int c, double range);

// The same on a grayscale image given as doubles (h·w values, row-major).
double ssim_gray(const double* a, const double* b, int h, int w, double range);

// Per-frame values over videos x[T][H][W][C].
std::vector<double> psnr_per_frame(const float* a, const float* b, int t, int h, int w, int c, double range);
std::vector<double> ssim_per_frame(const float* a, const float* b, int t, int h, int w, int c, double range);

// Mean of per-frame values. A mean over values that include +infinity is +infinity; an
// empty list gives NaN.
double mean_over_frames(const std::vector<double>& per_frame);

// The engine's float pixel v ∈ [-1, 1] as the 8-bit value written to files:
// floor((clamp(v, -1, 1) + 1)·127.5 + 0.5), the same rounding as tools/train/data.py.
float to_u8_value(float v);
// Applies to_u8_value to n values.
std::vector<float> to_u8(const float* x, int64_t n);

struct FrameQuality {
  double psnr_u8_db = 0;     // PSNR of the 8-bit frames (range 255)
  double psnr_float_db = 0;  // PSNR of the float frames (range 2)
  double ssim = 0;           // SSIM of the 8-bit frames (range 255)
};

struct VideoQuality {
  int frames = 0;
  double psnr_db = 0;        // mean over frames of the 8-bit PSNR (+inf if a frame is identical)
  double psnr_float_db = 0;  // mean over frames of the float PSNR
  double ssim = 0;           // mean over frames of SSIM on the 8-bit frames
  double psnr_db_global = 0;        // 8-bit PSNR from the MSE pooled over the whole video
  double psnr_float_db_global = 0;  // float PSNR from the pooled MSE
  std::vector<FrameQuality> per_frame;
};

// Compares a test video against a reference, both x[T][H][W][C] float in [-1, 1] (the
// engine's output convention; 8-bit frames are made with to_u8). The order of arguments
// does not change PSNR or SSIM (both are symmetric). Throws std::invalid_argument for bad
// dimensions.
VideoQuality compare_videos(const float* reference, const float* test, int t, int h, int w, int c);

}  // namespace ditgen::eval
