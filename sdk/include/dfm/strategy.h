/*
 * Strategy plugins: one parallelism axis each (tp, cp, pp, dp), chained per job
 * by `[strategy] chain` in the job's TOML file.
 *
 * Life cycle, all on the host's main thread:
 *   1. the host loads the plugin, checks its descriptor and calls init once;
 *   2. before any process group exists (also for --dry-run), the host checks
 *      `[strategy.<name>]` against `options` (unknown keys, types) and then
 *      calls validate with the job's shape;
 *   3. for a real run, the host calls create once per job and destroy at the
 *      end.
 *
 * ABI 1.0 carries what a strategy needs to declare and check itself. The
 * execution hooks (plan, region enter/exit, attention, block before/after,
 * loss, schedule, gradient finalisation; see docs/plugins.md) are appended to
 * dfm_strategy_v1 in later minors. The host knows from struct_size whether a
 * plugin's table reaches them, and refuses, before starting, to run a job
 * whose chain holds a strategy that cannot execute.
 */
#ifndef DFM_STRATEGY_H
#define DFM_STRATEGY_H

#include "dfm/abi.h"
#include "dfm/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One option of the plugin's `[strategy.<name>]` table. The host type-checks
 * the job's table against these before validate is called, and lists them in
 * `dfm-run --list-plugins -v` and in error messages for misspelled keys. */
typedef struct dfm_option_spec {
  size_t struct_size;
  const char* key;           /* e.g. "sequence_parallel" */
  dfm_value_type type;
  const char* default_value; /* as TOML text ("false", "1", "\"ring\""); NULL = required */
  const char* help;          /* one line */
} dfm_option_spec;

#define DFM_OPTION_SPEC_V1_SIZE DFM_STRUCT_SIZE(dfm_option_spec, help)

/* The shape of the job a strategy is asked to accept. Filled by the host. */
typedef struct dfm_job_shape {
  size_t struct_size;
  int64_t world_size;
  int64_t axis_size[DFM_AXIS_COUNT]; /* indexed by dfm_axis */
  int32_t dp_size_computed;          /* 1 when [fsdp] dp_size was left out */
  /* model */
  int64_t n_layer, n_head, d_model, vocab_size, seq_len;
  /* batch: sequences per optimizer step and per forward/backward */
  int64_t global_batch, micro_batch;
  /* the names of the whole chain, in application order (host-owned) */
  const char* const* chain;
  size_t chain_length;
} dfm_job_shape;

#define DFM_JOB_SHAPE_V1_SIZE DFM_STRUCT_SIZE(dfm_job_shape, chain_length)

typedef struct dfm_strategy_v1 {
  size_t struct_size;

  /* The mesh axis this strategy parallelises over. Two strategies of the same
   * axis in one chain are refused by the host. */
  dfm_axis axis;

  /* The options table schema; `options` may be NULL when option_count is 0.
   * Owned by the plugin, valid until exit. */
  const dfm_option_spec* options;
  size_t option_count;

  /* Checks that the job can be run with this strategy: divisibility of heads,
   * layers, sequence, batch by the axis sizes, and the values of its own
   * options (read with services->get_config). Reports each problem with
   * services->report_config_error and returns DFM_ERR_CONFIG, or returns DFM_OK.
   * Must not allocate device memory or talk to other ranks. Required. */
  dfm_status (*validate)(const dfm_job_shape* job);

  /* Creates the per-job instance; *instance is owned by the plugin and passed
   * back to every later call and to destroy. NULL = nothing to create. */
  dfm_status (*create)(const dfm_job_shape* job, void** instance);

  /* Frees the instance and joins every thread the plugin started for it.
   * NULL when create is NULL. */
  void (*destroy)(void* instance);
} dfm_strategy_v1;

#define DFM_STRATEGY_V1_SIZE DFM_STRUCT_SIZE(dfm_strategy_v1, destroy)

#ifdef __cplusplus
}
#endif

#endif /* DFM_STRATEGY_H */
