// dfm/compute_checks.hpp on its own, as a third-party backend would use it:
// what each check accepts, and the exact one-line message of what it refuses.
// (The cpu and cuda backends' own tests check that they call these checks.)
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "dfm/compute_checks.hpp"

namespace dfm::test {
namespace {

const sdk::KernelArgs kArgs("mine", "kernel");

// Runs `check`, which must throw sdk::Error with `status` and exactly `message`.
template <typename Check>
void expect_refused(Check&& check, const std::string& message, dfm_status status = DFM_ERR_INVALID_ARGUMENT) {
  try {
    check();
    ADD_FAILURE() << "accepted; expected: " << message;
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    EXPECT_EQ(std::string(e.what()), message);
  }
}

TEST(ComputeChecks, MessagesNameBackendKernelAndArgument) {
  EXPECT_EQ(kArgs.where(), "mine.kernel");
  int storage = 0;
  EXPECT_EQ(kArgs.require_context(&storage), &storage);
  expect_refused([] { kArgs.require_context(nullptr); }, "mine.kernel: the context is NULL (call create first)");
  kArgs.pointer("x", nullptr, 0);  // NULL addressing nothing is fine
  expect_refused([] { kArgs.pointer("x", nullptr, 4); }, "mine.kernel: 'x' is NULL but addresses 4 elements");
  expect_refused([] { kArgs.non_negative("count", -1); }, "mine.kernel: 'count' is -1, expected >= 0");
  expect_refused([] { kArgs.positive("batch", 0); }, "mine.kernel: 'batch' is 0, expected >= 1");
  expect_refused([] { kArgs.at_least("ld", 3, 4, "vocab"); }, "mine.kernel: 'ld' is 3, expected >= vocab = 4");
  expect_refused([] { kArgs.struct_size("desc", 8, 16); },
                 "mine.kernel: 'desc' has struct_size 8, expected >= 16 (set it to sizeof the struct)");
  expect_refused([] { kArgs.unsupported("head_dim 300"); }, "mine.kernel: head_dim 300", DFM_ERR_UNSUPPORTED);
}

TEST(ComputeChecks, CreateFillsDefaultsAndRefusesShortOptions) {
  void* ctx = nullptr;
  const dfm_compute_options defaults = sdk::validate_create(kArgs, nullptr, &ctx);
  EXPECT_EQ(defaults.threads, 0);
  EXPECT_EQ(defaults.device_index, 0);
  dfm_compute_options given{};
  given.struct_size = sizeof given;
  given.threads = 3;
  given.device_index = 2;
  const dfm_compute_options read = sdk::validate_create(kArgs, &given, &ctx);
  EXPECT_EQ(read.threads, 3);
  EXPECT_EQ(read.device_index, 2);
  given.struct_size = 4;
  expect_refused([&] { sdk::validate_create(kArgs, &given, &ctx); },
                 "mine.kernel: 'options' has struct_size 4, expected >= " +
                     std::to_string(DFM_COMPUTE_OPTIONS_V1_SIZE) + " (set it to sizeof the struct)");
  expect_refused([&] { sdk::validate_create(kArgs, nullptr, nullptr); }, "mine.kernel: 'ctx' is NULL");
}

TEST(ComputeChecks, MatmulLeadingDimensionsFollowTheTransposes) {
  float x[12] = {};
  dfm_matmul_desc d{};
  d.struct_size = sizeof d;
  d.m = 3;
  d.n = 2;
  d.k = 4;
  d.batch = 1;
  d.trans_a = 1;  // stored A is k x m: rows of m = 3
  d.lda = 3;
  d.ldb = 2;
  d.ldc = 2;
  d.a = d.b = d.c = x;
  EXPECT_EQ(&sdk::validate_matmul(kArgs, &d), &d);
  d.lda = 2;
  expect_refused([&] { sdk::validate_matmul(kArgs, &d); },
                 "mine.kernel: 'lda' is 2, expected >= m (A is transposed) = 3");
  d.lda = 3;
  d.stride_b = -1;  // a single matrix's strides are not read
  sdk::validate_matmul(kArgs, &d);
  d.batch = 2;
  expect_refused([&] { sdk::validate_matmul(kArgs, &d); }, "mine.kernel: 'stride_b' is -1, expected >= 0");
  expect_refused([&] { sdk::validate_matmul(kArgs, nullptr); }, "mine.kernel: 'desc' is NULL");
}

// ABI 1.5: dtypes are checked wherever they appear; a matmul descriptor that
// stops before its dtypes reads as all fp32, whatever lies past its struct_size.
TEST(ComputeChecks, DtypesOfOptionsMatmulsAndTypedKernels) {
  void* ctx = nullptr;
  dfm_compute_options options{};
  options.struct_size = sizeof options;
  options.activation_dtype = DFM_DTYPE_BF16;
  EXPECT_EQ(sdk::validate_create(kArgs, &options, &ctx).activation_dtype, DFM_DTYPE_BF16);
  options.activation_dtype = 2;
  expect_refused([&] { sdk::validate_create(kArgs, &options, &ctx); },
                 "mine.kernel: 'activation_dtype' is 2, expected a dfm_dtype (0 fp32, 1 bf16)");

  float x[8] = {};
  dfm_matmul_desc d{};
  d.struct_size = sizeof d;
  d.m = d.n = d.k = 2;
  d.lda = d.ldb = d.ldc = 2;
  d.batch = 1;
  d.a = d.b = d.c = x;
  d.a_dtype = DFM_DTYPE_BF16;
  d.c_dtype = 9;
  expect_refused([&] { sdk::validate_matmul(kArgs, &d); },
                 "mine.kernel: 'c_dtype' is 9, expected a dfm_dtype (0 fp32, 1 bf16)");
  d.c_dtype = DFM_DTYPE_BF16;
  const sdk::MatmulDtypes read = sdk::matmul_dtypes(sdk::validate_matmul(kArgs, &d));
  EXPECT_EQ(read.a, DFM_DTYPE_BF16);
  EXPECT_EQ(read.b, DFM_DTYPE_FP32);
  EXPECT_EQ(read.c, DFM_DTYPE_BF16);
  d.struct_size = DFM_MATMUL_DESC_V1_SIZE;  // an ABI 1.0 caller: the fields past it are not its
  d.c_dtype = 9;
  EXPECT_EQ(sdk::matmul_dtypes(sdk::validate_matmul(kArgs, &d)).a, DFM_DTYPE_FP32);

  uint16_t bf16[4] = {};
  sdk::validate_convert(kArgs, bf16, DFM_DTYPE_BF16, x, DFM_DTYPE_FP32, 4);
  // 4 fp32 values from x span bytes 0..16; bf16 written at x + 2 floats overlap them.
  expect_refused([&] { sdk::validate_convert(kArgs, x + 2, DFM_DTYPE_BF16, x, DFM_DTYPE_FP32, 4); },
                 "mine.kernel: 'dst' overlaps 'src'");
  expect_refused([&] { sdk::validate_fill_typed(kArgs, nullptr, DFM_DTYPE_BF16, 3); },
                 "mine.kernel: 'dst' is NULL but addresses 3 elements");
  expect_refused([&] { sdk::validate_add_typed(kArgs, -1, x, x, x, 1); },
                 "mine.kernel: 'dtype' is -1, expected a dfm_dtype (0 fp32, 1 bf16)");
  EXPECT_EQ(sdk::dtype_size(DFM_DTYPE_BF16), 2u);
  EXPECT_EQ(sdk::dtype_size(DFM_DTYPE_FP32), 4u);
}

TEST(ComputeChecks, AttentionCountsValuesNotTokens) {
  dfm_attention_desc d{};
  d.struct_size = sizeof d;
  d.batch = 2;
  d.heads = 3;
  d.head_dim = 4;
  d.q_len = 5;
  d.kv_len = 0;  // no keys: k and v may be NULL
  d.q_token_stride = d.kv_token_stride = d.o_token_stride = 12;
  d.scale = 0.5f;
  float x[1] = {};
  sdk::validate_attention_forward(kArgs, &d, x, nullptr, nullptr, x, x);
  expect_refused([&] { sdk::validate_attention_forward(kArgs, &d, x, nullptr, nullptr, x, nullptr); },
                 "mine.kernel: 'lse' is NULL but addresses 30 elements");  // batch 2 * heads 3 * q_len 5
  expect_refused([&] { sdk::validate_attention_backward(kArgs, &d, x, nullptr, nullptr, x, x, x, nullptr, x, x); },
                 "mine.kernel: 'dq' is NULL but addresses 120 elements");  // 2 * 5 tokens * 3 * 4
  d.o_token_stride = 11;
  expect_refused([&] { sdk::validate_attention_desc(kArgs, &d); },
                 "mine.kernel: 'o_token_stride' is 11, expected >= heads * head_dim = 12");
  d.o_token_stride = 12;
  d.scale = std::numeric_limits<float>::infinity();
  expect_refused([&] { sdk::validate_attention_desc(kArgs, &d); }, "mine.kernel: 'scale' is not finite");
}

TEST(ComputeChecks, ScalarRulesOfLayerNormAdamWAndTargets) {
  float x[4] = {};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  expect_refused([&] { sdk::validate_layernorm_forward(kArgs, x, x, x, x, x, x, 1, 4, nan); },
                 "mine.kernel: 'eps' is nan, expected >= 0");
  expect_refused([&] { sdk::validate_layernorm_forward(kArgs, x, x, x, x, x, x, 1, 0, 1e-5f); },
                 "mine.kernel: 'dim' is 0, expected >= 1 (a row needs elements to normalise)");
  sdk::validate_layernorm_forward(kArgs, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 0, 1e-5f);
  expect_refused([&] { sdk::validate_adamw_update(kArgs, x, x, x, x, 4, 0.9f, 1.0f, 1); },
                 "mine.kernel: 'beta2' is 1.000000, expected in [0, 1)");
  expect_refused([&] { sdk::validate_adamw_update(kArgs, x, x, x, x, 4, 0.9f, 0.999f, 0); },
                 "mine.kernel: 'step' is 0, expected >= 1");
  expect_refused([&] { sdk::validate_sum_squares(kArgs, x, 0, nullptr); }, "mine.kernel: 'out' is NULL");
  const int32_t targets[3] = {2, -1, 3};
  sdk::validate_targets_in_host_memory(kArgs, targets, 2, 3);
  expect_refused([&] { sdk::validate_targets_in_host_memory(kArgs, targets, 3, 3); },
                 "mine.kernel: targets[2] is 3, expected < vocab = 3 (or < 0 to ignore the row)");
  expect_refused([&] { sdk::validate_copy(kArgs, x, x, 4, static_cast<dfm_copy_kind>(7)); },
                 "mine.kernel: 'kind' is 7, expected a dfm_copy_kind");
}

}  // namespace
}  // namespace dfm::test
