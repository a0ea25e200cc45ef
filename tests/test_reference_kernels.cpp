// The kernel table's closed-form references against finite differences of
// its forward references, on shapes small enough for those: the table holds
// backends to the closed forms only where finite differences would be too slow.
#include <gtest/gtest.h>

#include "backend_device.hpp"
#include "cases/attention_shapes.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

TEST(ReferenceKernels, AttentionBackwardClosedFormEqualsFiniteDifferences) {
  const AttentionCase shapes[] = {
      {1, 1, 3, 4, 4, 0, 0, 1, 0},  // causal
      {2, 2, 5, 6, 9, 3, 0, 1, 1},  // offsets and strides
      {1, 2, 4, 5, 6, 0, 2, 1, 0},  // two queries see no key
      {1, 1, 4, 7, 5, 0, 0, 0, 2},  // non-causal
  };
  uint64_t seed = 1;
  for (const AttentionCase& shape : shapes) {
    SCOPED_TRACE(describe_attention(shape));
    const dfm_attention_desc d = make_desc(shape);
    ref::Vec q = to_double(random_floats(q_elements(d), seed++, -2.0f, 2.0f));
    ref::Vec k = to_double(random_floats(kv_elements(d), seed++, -2.0f, 2.0f));
    ref::Vec v = to_double(random_floats(kv_elements(d), seed++));
    const ref::Vec r = to_double(random_floats(o_elements(d), seed++));
    ref::Vec out(o_elements(d), 0.0), lse(lse_elements(d));
    ref::attention(d, q, k, v, out, lse);
    ref::Vec dq, dk, dv;
    ref::attention_backward(d, q, k, v, out, r, lse, dq, dk, dv);
    auto loss = [&] {
      ref::Vec o(o_elements(d), 0.0), l(lse_elements(d));
      ref::attention(d, q, k, v, o, l);
      return ref::dot(o, r);
    };
    const ref::Vec fq = ref::numerical_gradient(loss, q, 1e-5), fk = ref::numerical_gradient(loss, k, 1e-5),
                   fv = ref::numerical_gradient(loss, v, 1e-5);
    for (size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(dq[i], fq[i], 1e-8) << "dq " << i;
    for (size_t i = 0; i < k.size(); ++i) EXPECT_NEAR(dk[i], fk[i], 1e-8) << "dk " << i;
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(dv[i], fv[i], 1e-8) << "dv " << i;
  }
}

}  // namespace
}  // namespace dfm::kernel_test
