// matmul_epilogue (compute.h, ABI 1.3) on the cpu backend against the
// double-precision reference, and the host's composed path (matmul and the
// separate kernels) that backends without the slot get.
#include <cmath>
#include <limits>
#include <vector>

#include "compute_backend_harness.hpp"
#include "matmul_cases.hpp"
#include "reference_kernels.hpp"
#include "support/cpu_backend.hpp"

namespace dfm::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Inputs of one case: A, B, C (NaN where beta = 0 must ignore it), the bias,
// and aux: pre-activations in [-4, 4] for GELU_BACKWARD to read, NaN where
// the kernel must write (BIAS_GELU) or must not touch (BIAS, and the padding).
struct EpilogueInputs {
  std::vector<float> a, b, c, bias, aux;

  EpilogueInputs(const dfm_matmul_desc& d, const dfm_matmul_epilogue& e, uint64_t seed)
      : a(random_floats(matrices_elements(d.stride_a, 1), seed)),
        b(random_floats(matrices_elements(d.stride_b, 1), seed + 1)),
        c(random_floats(matrices_elements(d.stride_c, 1), seed + 2)),
        bias(random_floats(static_cast<size_t>(std::max<int64_t>(1, d.n)), seed + 3)),
        aux(matrices_elements(d.m * e.ld_aux, 1), kNaN) {
    if (d.beta == 0.0f) std::fill(c.begin(), c.end(), kNaN);
    if (e.kind != DFM_EPILOGUE_GELU_BACKWARD) return;
    const auto pre = random_floats(aux.size(), seed + 4, -4.0f, 4.0f);
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t j = 0; j < d.n; ++j) aux[i * e.ld_aux + j] = pre[i * e.ld_aux + j];
  }
};

dfm_matmul_epilogue make_epilogue(const EpilogueCase& ec, dfm_epilogue_kind kind) {
  return {sizeof(dfm_matmul_epilogue), kind, nullptr, nullptr, ec.gemm.n + ec.aux_pad};
}

TEST_F(CpuKernels, MatmulEpilogueMatchesReference) {
  uint64_t seed = 900;
  for (const EpilogueCase& ec : kEpilogueCases)
    for (const dfm_epilogue_kind kind : kEpilogueKinds) {
      SCOPED_TRACE(describe_matmul(ec.gemm) << " aux_pad " << ec.aux_pad << " kind " << kind);
      dfm_matmul_desc d = make_matmul_desc(ec.gemm);
      dfm_matmul_epilogue e = make_epilogue(ec, kind);
      const EpilogueInputs in(d, e, seed += 10);
      Buffer<float> da(device, in.a), db(device, in.b), dc(device, in.c), dbias(device, in.bias), daux(device, in.aux);
      d.a = da.data();
      d.b = db.data();
      d.c = dc.data();
      e.bias = dbias.data();
      e.aux = daux.data();
      DFM_ASSERT_OK(device, api.matmul_epilogue(ctx(), &d, &e));

      ref::Vec expected_c = to_double(in.c), expected_aux = to_double(in.aux);
      ref::matmul_epilogue(d, e, to_double(in.a), to_double(in.b), to_double(in.bias), expected_c, expected_aux);
      // The matmul test's bound for the product; GELU and its derivative
      // change it by at most a factor 1.2, and evaluate to ~1e-6 relative.
      const double atol = 1.2e-6 * static_cast<double>(ec.gemm.k + 2) * std::abs(ec.gemm.alpha) + 2e-6;
      expect_close(dc.read(), expected_c, atol, 1e-5, "C");
      expect_close(daux.read(), expected_aux, atol, 1e-6, "aux");
    }
}

// Stands in for the slot where the host must not call it.
dfm_status must_not_be_called(void*, const dfm_matmul_desc*, const dfm_matmul_epilogue*) { return DFM_ERR_RUNTIME; }

// The host runs matmul, bias_add, copy and the GELU kernels for a backend
// whose table predates the slot (ABI 1.2: the slot past its struct_size is
// never read) or leaves it NULL: on the cpu backend that is the fused pass's
// arithmetic, element for element.
TEST(ComputeBackendEpilogue, ComposedPathForOlderBackendsGivesTheSameResult) {
  EditedCpuPlugin cpu;
  const int64_t m = 37, n = 48, k = 29;
  for (const bool older_table : {true, false})
    for (const dfm_epilogue_kind kind : kEpilogueKinds) {
      SCOPED_TRACE(::testing::Message() << (older_table ? "a 1.2 table" : "a NULL slot") << ", kind " << kind);
      cpu.table = *static_cast<const dfm_compute_v1*>(cpu.original().descriptor->table);
      if (older_table) {
        cpu.table.struct_size = DFM_COMPUTE_V1_2_SIZE;
        cpu.table.matmul_epilogue = must_not_be_called;
      } else {
        cpu.table.matmul_epilogue = nullptr;
      }
      dfm::ComputeBackend fused(cpu.original(), 1, 0), composed(cpu.edited(), 1, 0);
      const EpilogueCase ec{{m, n, k, 0, 1, 1.0f, 0.0f, 1, 0}, 0};
      std::vector<std::vector<float>> results;
      for (dfm::ComputeBackend* backend : {&fused, &composed}) {
        dfm_matmul_desc d = make_matmul_desc(ec.gemm);
        dfm_matmul_epilogue e = make_epilogue(ec, kind);
        const EpilogueInputs in(d, e, 77);
        DeviceBuffer<float> da(*backend, m * k), db(*backend, n * k), dc(*backend, m * n), dbias(*backend, n),
            daux(*backend, m * n);
        da.upload(in.a);
        db.upload(in.b);
        dbias.upload(in.bias);
        daux.upload(in.aux);
        d.a = da.data();
        d.b = db.data();
        d.c = dc.data();
        e.bias = dbias.data();
        e.aux = daux.data();
        backend->matmul_epilogue(d, e);
        results.push_back(dc.download());
        if (kind == DFM_EPILOGUE_BIAS_GELU) results.push_back(daux.download());
      }
      const size_t half = results.size() / 2;
      for (size_t i = 0; i < half; ++i) EXPECT_EQ(results[i], results[half + i]) << (i == 0 ? "C" : "aux");
    }
}

}  // namespace
}  // namespace dfm::test
