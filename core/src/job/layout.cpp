// Layout planning: axis sizes from [fsdp] and the world size, the strategy
// chain, and the ABI's job shape.
#include "dfm/core/job/layout.hpp"

#include <optional>

#include "dfm/core/config/config.hpp"
#include "dfm/core/models/architecture.hpp"

namespace dfm {
namespace {

constexpr const char* kTpKey = "fsdp.tp_size";
constexpr const char* kCpKey = "fsdp.cp_size";
constexpr const char* kPpKey = "fsdp.pp_size";
constexpr const char* kDpKey = "fsdp.dp_size";

// The product, or nullopt when it does not fit in 64 bits.
std::optional<int64_t> product_of(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t factor : factors) {
    if (__builtin_mul_overflow(product, factor, &product)) return std::nullopt;
  }
  return product;
}

std::string product_text(const std::optional<int64_t>& product) {
  return product ? std::to_string(*product) : "more than 2^63";
}

// The key a divisibility error points at: the first size the user wrote.
std::string blamed_size_key(const Config& config) {
  for (const char* key : {kTpKey, kCpKey, kPpKey}) {
    if (config.is_set(key)) return key;
  }
  return kTpKey;
}

}  // namespace

Layout resolve_layout(const Config& config, int64_t world_size, std::vector<std::string>& errors) {
  Layout layout;
  layout.dp_computed = !config.is_set(kDpKey);
  if (world_size < 1) {
    errors.push_back(config.source_name() + ": world size " + std::to_string(world_size) + ": expected at least 1 rank");
    return layout;
  }
  layout.world = world_size;
  // A size of the wrong type or below 1 is check_schema's to report.
  for (const char* key : {kTpKey, kCpKey, kPpKey}) {
    if (!config.is_valid(key)) return layout;
  }
  if (!layout.dp_computed && !config.is_valid(kDpKey)) return layout;
  layout.tp = config.get_int(kTpKey);
  layout.cp = config.get_int(kCpKey);
  layout.pp = config.get_int(kPpKey);
  const std::string sizes =
      "tp " + std::to_string(layout.tp) + " x cp " + std::to_string(layout.cp) + " x pp " + std::to_string(layout.pp);

  if (!layout.dp_computed) {
    const int64_t dp = config.get_int(kDpKey);
    const auto product = product_of({layout.tp, layout.cp, layout.pp, dp});
    if (product != world_size) {
      errors.push_back(config.format_error(kDpKey, sizes + " x dp " + std::to_string(dp) + " = " + product_text(product) +
                                                       " does not equal world size " + std::to_string(world_size)));
      return layout;
    }
    layout.dp = dp;
    return layout;
  }
  const auto product = product_of({layout.tp, layout.cp, layout.pp});
  if (!product || world_size % *product != 0) {
    errors.push_back(config.format_error(blamed_size_key(config), sizes + " = " + product_text(product) +
                                                                      " does not divide world size " +
                                                                      std::to_string(world_size)));
    return layout;
  }
  layout.dp = world_size / *product;
  return layout;
}

std::vector<std::string> resolve_chain(const Config& config, const Layout& layout) {
  if (config.is_set("strategy.chain") && config.is_valid("strategy.chain")) return config.get_string_array("strategy.chain");
  std::vector<std::string> chain;
  if (layout.pp > 1) chain.push_back("pp");
  if (layout.tp > 1) chain.push_back("tp");
  if (layout.cp > 1) chain.push_back("cp");
  // fsdp2 also runs when only cp is split: cp ranks hold the same weights and
  // see other tokens, so their gradients are reduced over dp x cp together.
  if (layout.dp * layout.cp > 1) chain.push_back("fsdp2");
  return chain;
}

dfm_job_shape make_job_shape(const Config& config, const ModelSpec& model, const Layout& layout,
                             const std::vector<const char*>& chain_names, int64_t sequence_pieces) {
  dfm_job_shape shape{};
  shape.struct_size = sizeof(dfm_job_shape);
  shape.world_size = layout.world;
  shape.axis_size[DFM_AXIS_TP] = layout.tp;
  shape.axis_size[DFM_AXIS_CP] = layout.cp;
  shape.axis_size[DFM_AXIS_DP] = layout.dp;
  shape.axis_size[DFM_AXIS_PP] = layout.pp;
  shape.dp_size_computed = layout.dp_computed ? 1 : 0;
  const ModelDims dims = model.dims();
  shape.n_layer = dims.n_layer;
  shape.n_head = dims.n_head;
  shape.d_model = dims.d_model;
  shape.vocab_size = dims.vocab_size;
  shape.seq_len = dims.seq_len;
  shape.global_batch = config.get_int("train.global_batch");
  shape.micro_batch = config.get_int("train.micro_batch");
  shape.chain = chain_names.data();
  shape.chain_length = chain_names.size();
  shape.sequence_pieces = sequence_pieces;
  shape.n_kv_head = dims.n_kv_head;
  shape.ffn_dim = dims.ffn_dim;
  return shape;
}

}  // namespace dfm
