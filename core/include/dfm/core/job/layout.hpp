// Layout planning: the sizes of the four mesh axes from [fsdp] and the world
// size, the strategy chain, and the text --dry-run prints (and a real run logs
// at start). Runs before any process or process group exists, so every
// message shows the arithmetic instead of failing later in a collective
// (torchtitan's parallel_dims does the same).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/core/job/mesh.hpp"
#include "dfm/strategy.h"

namespace dfm {

class Config;
class ModelSpec;

struct Layout {
  int64_t world = 1, tp = 1, cp = 1, dp = 1, pp = 1;
  bool dp_computed = true;  // [fsdp] dp_size was left out
};

// Resolves the sizes from [fsdp] and the world size. dp_size omitted:
// dp = world / (tp x cp x pp), which must divide exactly; given: the product
// of the four must equal the world size. Appends one message per problem:
//   job.toml:7:1: fsdp.tp_size: tp 4 x cp 2 x pp 2 = 16 does not divide world size 24
//   job.toml:9:1: fsdp.dp_size: tp 2 x cp 1 x pp 1 x dp 3 = 6 does not equal world size 8
// Sizes that fail their own schema check (wrong type, < 1) are left to
// check_schema and skip the arithmetic. Never throws; when it appended
// errors the returned sizes are only placeholders (each >= 1, so a Mesh can
// still be built from them).
Layout resolve_layout(const Config& config, int64_t world_size, std::vector<std::string>& errors);

// [strategy] chain when the file or --set gives a valid one; otherwise the
// default: the first-party plugin of every axis of size > 1 in application
// order, "pp", "tp", "cp", then "fsdp2" when dp x cp > 1 (DESIGN §4: pp decides
// which blocks a rank builds, tp and cp shape them, fsdp2 shards the rest).
std::vector<std::string> resolve_chain(const Config& config, const Layout& layout);

// The resolved plan as text: world size, each axis size (saying which was
// computed and how), the strategy chain, the rank -> (tp, cp, dp, pp) table
// and each rank's process groups. Worlds larger than max_ranks_listed are
// summarised: the first and last ranks with the formula, the groups of the
// first and last rank, and the number of groups of each kind.
std::string describe_layout(const Layout& layout, const Mesh& mesh, const std::vector<std::string>& chain,
                            int64_t max_ranks_listed = 16);

// The ABI's view of the job for the strategies' validate and create. The
// struct points into `chain_names` (and does not copy it): keep the vector
// alive and unchanged while the shape is in use. Reads [model] and [train]
// keys, so call it only after check_schema passed (it throws ConfigError on a
// value of the wrong type).
// `sequence_pieces`: into how many equal pieces the sequence strategy cuts
// each sequence (1 without one; dfm_job_shape.sequence_pieces).
dfm_job_shape make_job_shape(const Config& config, const ModelSpec& model, const Layout& layout,
                             const std::vector<const char*>& chain_names, int64_t sequence_pieces);

}  // namespace dfm
