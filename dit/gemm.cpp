#include "dit/gemm.h"

#include "dit/gemm_bf16.h"

#include <dlfcn.h>
#include <omp.h>

#include <Eigen/Core>
#include <atomic>
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace ditgen::gemm {
namespace {

// cblas_sgemm's enums, fixed by the CBLAS standard.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                         int);
using SetThreadsFn = void (*)(int);
using CoreNameFn = char* (*)();

struct OpenBlas {
  SgemmFn sgemm = nullptr;
  SetThreadsFn set_threads = nullptr;
  std::string description = "not loaded";
};

const OpenBlas& openblas() {
  static const OpenBlas lib = [] {
    OpenBlas o;
    void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      o.description = "no libopenblas.so.0 found";
      return o;
    }
    o.sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
    o.set_threads = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"));
    auto core = reinterpret_cast<CoreNameFn>(dlsym(h, "openblas_get_corename"));
    o.description = o.sgemm ? std::string("openblas ") + (core ? core() : "unknown core")
                            : "libopenblas.so.0 has no cblas_sgemm";
    return o;
  }();
  return lib;
}

std::atomic<Backend> g_backend{Backend::automatic};

Backend resolve(Backend b) {
  if (b == Backend::automatic) return openblas_available() ? Backend::openblas : Backend::eigen;
  return b;
}

// Throws unless the bf16 kernel runs here (set_backend and matmul_nt).
void require_bf16() {
  if (!bf16_gemm_available())
    throw std::invalid_argument("GEMM backend 'bf16' is not available: it needs a CPU with AVX-512 BF16 and a compiler "
                                "that supports -mavx512bf16");
}

}  // namespace

Backend parse_backend(const std::string& s) {
  if (s == "auto") return Backend::automatic;
  if (s == "eigen") return Backend::eigen;
  if (s == "openblas") return Backend::openblas;
  if (s == "bf16") return Backend::bf16;
  throw std::invalid_argument("unknown GEMM backend '" + s + "' (expected auto, eigen, openblas or bf16)");
}

std::string backend_name(Backend b) {
  switch (b) {
    case Backend::automatic: return "auto";
    case Backend::eigen: return "eigen";
    case Backend::openblas: return "openblas";
    case Backend::bf16: return "bf16";
  }
  return "?";
}

bool openblas_available() { return openblas().sgemm != nullptr; }
std::string openblas_description() { return openblas().description; }

namespace {
void require_openblas() {
  if (!openblas_available())
    throw std::invalid_argument("GEMM backend 'openblas' is not available: " + openblas_description());
}
}  // namespace

void set_backend(Backend b) {
  if (b == Backend::openblas) require_openblas();
  if (b == Backend::bf16) require_bf16();
  g_backend = resolve(b);
}

Backend active_backend() {
  Backend b = g_backend.load();
  if (b == Backend::automatic) {
    b = resolve(b);
    g_backend = b;
  }
  return b;
}

void matmul_nt(Backend b, const float* x, int64_t rows, int64_t in, const float* W, int64_t out, float* y) {
  b = resolve(b);
  if (b == Backend::bf16) {
    require_bf16();
    return matmul_nt_bf16(x, rows, in, W, out, y);
  }
  if (b == Backend::openblas) {
    require_openblas();
    const OpenBlas& o = openblas();
    // OpenBLAS's own pthread pool busy-waits between calls against the OpenMP threads of the
    // rest of the forward (e2e 1.2x slower in a 3-step run): run it single-threaded on row slabs
    // of the process's OpenMP threads instead.
    static std::once_flag single;
    std::call_once(single, [&] {
      if (o.set_threads) o.set_threads(1);
    });
    const int threads = int(std::min<int64_t>(omp_get_max_threads(), std::max<int64_t>(1, rows / 64)));
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
      if (r1 > r0)
        o.sgemm(kRowMajor, kNoTrans, kTrans, int(r1 - r0), int(out), int(in), 1.0f, x + r0 * in, int(in), W, int(in),
                0.0f, y + r0 * out, int(out));
    }
    return;
  }
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMat> X(x, rows, in);
  Eigen::Map<const RowMat> Wm(W, out, in);
  Eigen::Map<RowMat> Y(y, rows, out);
  Y.noalias() = X * Wm.transpose();
}

}  // namespace ditgen::gemm
