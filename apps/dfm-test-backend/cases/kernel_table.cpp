#include "families.hpp"

namespace dfm::kernel_test {

std::vector<KernelCase> kernel_table() {
  std::vector<KernelCase> table;
  add_matmul_cases(table);
  add_elementwise_cases(table);
  add_embedding_cases(table);
  add_layernorm_cases(table);
  add_rmsnorm_cases(table);
  add_rope_cases(table);
  add_swiglu_cases(table);
  add_attention_cases(table);
  add_cross_entropy_cases(table);
  add_optimizer_cases(table);
  return table;
}

}  // namespace dfm::kernel_test
