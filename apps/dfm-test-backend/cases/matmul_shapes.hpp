// Shapes of the matmul cases and their descriptors.
#ifndef DFM_TEST_BACKEND_MATMUL_SHAPES_HPP
#define DFM_TEST_BACKEND_MATMUL_SHAPES_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "dfm/compute.h"

namespace dfm::kernel_test {

struct MatmulCase {
  int64_t m, n, k;
  int trans_a, trans_b;
  float alpha, beta;
  int64_t batch;
  int64_t pad;  // extra elements per row of A, B and C (leading dimensions > the minimum)
};

// Odd sizes (1, 3, 17, 65, 130) cross tile and warp boundaries; every
// transpose pair, padded leading dimensions, batches, k = 0 (C = beta C,
// beta = 0 clearing NaNs), m = 0 (nothing to do) and one large GEMM.
inline constexpr MatmulCase kMatmulCases[] = {
    {1, 1, 1, 0, 0, 1.0f, 0.0f, 1, 0},      {3, 17, 5, 0, 0, 1.0f, 0.0f, 1, 0},
    {17, 3, 65, 1, 0, 1.0f, 1.0f, 1, 0},    {65, 130, 17, 0, 1, 0.5f, 0.0f, 1, 3},
    {130, 65, 3, 1, 1, -1.0f, 0.25f, 1, 1}, {64, 768, 64, 0, 1, 1.0f, 1.0f, 3, 0},
    {17, 17, 130, 1, 1, 2.0f, 0.0f, 2, 5},  {5, 7, 0, 0, 0, 1.0f, 0.5f, 2, 0},
    {5, 7, 0, 0, 0, 1.0f, 0.0f, 1, 1},      {0, 7, 3, 0, 0, 1.0f, 0.0f, 1, 0},
    {33, 1, 300, 0, 0, 1.0f, 1.0f, 1, 0},   {256, 130, 512, 1, 0, 1.0f, 1.0f, 2, 0},
};

// matmul_epilogue cases (batch 1), each run with every epilogue kind: odd
// sizes, transposes, padded C, beta != 0 (C read), k = 0, m = 0, and GPT-like
// shapes whose leading dimensions are multiples of 8 (the sizes cuBLASLt's
// fused kernels take). aux_pad: extra elements per row of aux.
struct EpilogueCase {
  MatmulCase gemm;
  int64_t aux_pad;
};

inline constexpr EpilogueCase kEpilogueCases[] = {
    {{1, 1, 1, 0, 0, 1.0f, 0.0f, 1, 0}, 0},      {{3, 17, 5, 0, 0, 1.0f, 0.0f, 1, 0}, 3},
    {{17, 3, 65, 1, 0, 1.0f, 1.0f, 1, 0}, 0},    {{65, 130, 17, 0, 1, 0.5f, 0.0f, 1, 3}, 1},
    {{5, 7, 0, 0, 0, 1.0f, 0.5f, 1, 0}, 0},      {{0, 7, 3, 0, 0, 1.0f, 0.0f, 1, 0}, 0},
    {{64, 256, 64, 0, 0, 1.0f, 0.0f, 1, 0}, 0},  {{128, 64, 256, 0, 1, 1.0f, 0.0f, 1, 0}, 0},
    {{256, 192, 128, 1, 0, 1.0f, 0.0f, 1, 0}, 8},
};

inline constexpr dfm_epilogue_kind kEpilogueKinds[] = {DFM_EPILOGUE_BIAS, DFM_EPILOGUE_BIAS_GELU,
                                                       DFM_EPILOGUE_GELU_BACKWARD};

inline std::string describe_matmul(const MatmulCase& c) {
  std::ostringstream s;
  s << "m " << c.m << " n " << c.n << " k " << c.k << " ta " << c.trans_a << " tb " << c.trans_b << " alpha "
    << c.alpha << " beta " << c.beta << " batch " << c.batch << " pad " << c.pad;
  return s.str();
}

// The case's descriptor: each leading dimension `pad` more than its row
// length, the batch's matrices one after another. Pointers are left NULL.
inline dfm_matmul_desc make_matmul_desc(const MatmulCase& c) {
  dfm_matmul_desc d{};
  d.struct_size = sizeof d;
  d.trans_a = c.trans_a;
  d.trans_b = c.trans_b;
  d.m = c.m;
  d.n = c.n;
  d.k = c.k;
  d.alpha = c.alpha;
  d.beta = c.beta;
  d.batch = c.batch;
  const int64_t a_rows = c.trans_a ? c.k : c.m, a_cols = c.trans_a ? c.m : c.k;
  const int64_t b_rows = c.trans_b ? c.n : c.k, b_cols = c.trans_b ? c.k : c.n;
  d.lda = std::max<int64_t>(1, a_cols + c.pad);
  d.ldb = std::max<int64_t>(1, b_cols + c.pad);
  d.ldc = std::max<int64_t>(1, c.n + c.pad);
  d.stride_a = a_rows * d.lda;
  d.stride_b = b_rows * d.ldb;
  d.stride_c = c.m * d.ldc;
  return d;
}

// Elements of a buffer holding `batch` matrices `stride` apart (at least 1, so it can be allocated).
inline size_t matrices_elements(int64_t stride, int64_t batch) {
  return static_cast<size_t>(std::max<int64_t>(1, stride * batch));
}

}  // namespace dfm::kernel_test

#endif  // DFM_TEST_BACKEND_MATMUL_SHAPES_HPP
