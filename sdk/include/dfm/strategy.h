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
 * Execution (a strategy that runs, not only checks): the core's model is a
 * list of *units* whose parameters are stored as one flat segment each —
 * unit 0 is the root (token and position embeddings, final LayerNorm, and the
 * LM head tied to the token embedding), units 1..n_layer the transformer
 * blocks. A strategy that owns parameter placement (fsdp2 on the dp axis)
 * decides how much of each unit this rank stores (plan_unit), materialises the
 * full parameters when the core needs them and reduces the gradients when
 * they are final (on_unit), and finishes the step (finish_gradients,
 * reduce_grad_sum_squares). Each unit event comes in this order for each
 * micro-batch m of a step:
 *
 *   FORWARD_BEGIN(0) FORWARD_BEGIN(1) FORWARD_END(1) ... FORWARD_BEGIN(n) FORWARD_END(n)
 *   FORWARD_END(0)                  -- after the head and the loss
 *   BACKWARD_BEGIN(0)               -- before the head's backward
 *   BACKWARD_BEGIN(n) BACKWARD_END(n) ... BACKWARD_BEGIN(1) BACKWARD_END(1)
 *   BACKWARD_END(0)                 -- after the embeddings' backward
 *
 * so a strategy can prefetch unit u+1 at FORWARD_BEGIN(u) and unit u-1 at
 * BACKWARD_BEGIN(u). Forward-only passes (sampling) send the forward events
 * alone. The execution slots may be NULL: such a strategy declares and checks
 * itself but cannot run yet, and the host refuses to start a job that needs it,
 * naming it.
 *
 * A strategy that splits the sequence (context parallel) fills the sequence
 * slots instead: which token positions this rank processes, and the attention
 * over the whole sequence from those tokens (ring attention passes K/V blocks
 * around the axis). Its weight gradients are reduced by the placement
 * strategy over the data and context ranks together (DFM_GROUP_DP_CP).
 *
 * A strategy that splits tensors (tensor parallel, ABI 1.1) fills the tensor
 * slots. The core marks what is split and where the split regions begin and
 * end; the strategy says how many slices there are and which one this rank
 * holds, and does every collective at a region's edge:
 *   - parameters: the fused QKV and the first MLP linear are split by output
 *     columns (column-parallel; QKV per head, so Q, K and V each keep whole
 *     heads), the attention and MLP output projections by input rows
 *     (row-parallel), the token embedding by vocabulary rows (padded up to a
 *     multiple of the slice count with zero rows that never reach the loss or
 *     an export); LayerNorms, position embeddings and row-parallel biases are
 *     replicated (the biases are added once, after the reduction);
 *   - activations: a region is entered before a column-parallel linear (or the
 *     head) and left after a row-parallel one (or the embedding lookup); the
 *     four edges are Megatron's f and g (Shoeybi et al. 2019) or, with sequence
 *     parallel, their all-gather / reduce-scatter forms (Korthikanti et al. 2022);
 *   - the vocabulary-parallel loss reduces each row's softmax statistics over
 *     the slices (tensor_all_reduce, compute.h's cross_entropy_* phases).
 * Units then hold this rank's slices, so a placement strategy (fsdp2) shards
 * the already tensor-split parameters.
 *
 * A strategy that pipelines the model (pipeline parallel, ABI 1.1) fills the
 * pipeline slots. It says which model chunks (runs of transformer blocks,
 * with the embeddings on the first virtual stage and the final LayerNorm,
 * head and loss on the last) each pp rank holds, and in what order this rank
 * runs the forwards, backwards and point-to-point transfers of one optimizer
 * step's micro-batches (its schedule: 1F1B, interleaved 1F1B, or a third
 * party's own). The core runs the schedule: it stores only the units of its
 * chunks (the others have numel 0: no storage and no events), keeps the
 * activations of each micro-batch in flight, and hands every transfer to the
 * strategy. The first and last stages both hold the root unit, whose
 * embedding the head is tied to, and keep it identical by summing its
 * gradient over the two (reduce_tied_gradients); the loss and the gradient
 * norm are summed over the stages (pipeline_all_reduce).
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
  /* ABI 1.6: into how many equal pieces the job's sequence strategy cuts
   * every sequence (its sequence_pieces slot; the cp axis size when the slot
   * is NULL; 1 without a sequence strategy). The host has checked that
   * seq_len divides by it. A strategy that splits the pieces further (tp's
   * sequence parallel) checks its own multiple of this, without knowing
   * which sequence strategy runs. */
  int64_t sequence_pieces;
  /* ABI 1.7: the model's key/value heads (grouped-query attention; n_head
   * for a model without it) and the width of its MLP's hidden layer
   * (4 d_model for GPT-2, ffn_dim for a Llama), which a tensor split must
   * also divide. */
  int64_t n_kv_head, ffn_dim;
} dfm_job_shape;

#define DFM_JOB_SHAPE_V1_SIZE DFM_STRUCT_SIZE(dfm_job_shape, chain_length)
#define DFM_JOB_SHAPE_V1_6_SIZE DFM_STRUCT_SIZE(dfm_job_shape, sequence_pieces)
#define DFM_JOB_SHAPE_V1_7_SIZE DFM_STRUCT_SIZE(dfm_job_shape, ffn_dim)

/* One unit of parameters as the core and the strategy share it. The core
 * owns the struct (its address is stable for the whole job) and the shard
 * buffers; the strategy owns whatever it points full_param/full_grad at. */
typedef struct dfm_unit {
  size_t struct_size;
  int32_t index;          /* 0 = root, 1..n_layer = transformer blocks */
  int64_t numel;          /* elements of the unit's parameters, unsharded */
  /* What this rank stores (planned by plan_unit), owned by the core:
   * elements [shard_offset, shard_offset + shard_numel) of the unit's flat
   * parameters, zero-padded past numel; the optimizer updates them. */
  int64_t shard_offset, shard_numel;
  float* param_shard;
  float* grad_shard;      /* gradients of the shard; the core zeroes it before each step */
  /* Set by the strategy: numel elements each, valid from FORWARD_BEGIN /
   * BACKWARD_BEGIN (and GATHER) until the strategy releases them. The core's
   * backward accumulates into full_grad, which the strategy zeroes before the
   * first micro-batch of a step. */
  float* full_param;
  float* full_grad;
} dfm_unit;

#define DFM_UNIT_V1_SIZE DFM_STRUCT_SIZE(dfm_unit, full_grad)

typedef enum dfm_unit_event {
  DFM_UNIT_FORWARD_BEGIN = 0,
  DFM_UNIT_FORWARD_END = 1,
  DFM_UNIT_BACKWARD_BEGIN = 2,
  DFM_UNIT_BACKWARD_END = 3,   /* the unit's gradients of this micro-batch are complete */
  DFM_UNIT_PARAMS_UPDATED = 4, /* param_shard changed: after initialisation and each optimizer step */
  DFM_UNIT_GATHER = 5,         /* make full_param valid outside training (export, checkpoint) */
  DFM_UNIT_RELEASE = 6         /* the core is done with a GATHER */
} dfm_unit_event;

typedef struct dfm_step_info {
  size_t struct_size;
  int64_t step;           /* optimizer step, from 0 */
  int64_t micro_batch;    /* this micro-batch, from 0 */
  int64_t micro_batches;  /* per optimizer step on this rank */
} dfm_step_info;

#define DFM_STEP_INFO_V1_SIZE DFM_STRUCT_SIZE(dfm_step_info, micro_batches)

/* How a tensor strategy cuts this rank's parameters and activations (ABI 1.1). */
typedef struct dfm_tensor_layout {
  size_t struct_size;
  int32_t rank;    /* this rank's slice of every split dimension, 0..size-1 */
  int32_t size;    /* slices per split dimension */
  /* Outside the regions, each rank holds tokens rank*T/size .. (rank+1)*T/size - 1
   * of every sequence's T tokens (sequence parallel) instead of all of them. */
  int32_t sequence_parallel;
} dfm_tensor_layout;

#define DFM_TENSOR_LAYOUT_V1_SIZE DFM_STRUCT_SIZE(dfm_tensor_layout, sequence_parallel)

/* The four edges of a tensor-parallel region (forward and backward of its
 * entry and of its exit). */
typedef enum dfm_region_edge {
  DFM_REGION_ENTER_FORWARD = 0,  /* f: identity; sequence parallel: all-gather the tokens */
  DFM_REGION_ENTER_BACKWARD = 1, /* f's gradient: all-reduce; sequence parallel: reduce-scatter the tokens */
  DFM_REGION_EXIT_FORWARD = 2,   /* g: all-reduce; sequence parallel: reduce-scatter the tokens */
  DFM_REGION_EXIT_BACKWARD = 3   /* g's gradient: identity; sequence parallel: all-gather the tokens */
} dfm_region_edge;

/* The activations crossing an edge: `sequences` sequences of `tokens` tokens
 * each inside the region (row-major [sequences, tokens, width], device
 * memory). Outside the region a rank holds the same shape, or, when
 * sequence_split is set, its tokens/size of each sequence
 * ([sequences, tokens/size, width]). The core sets sequence_split to the
 * layout's sequence_parallel for training passes and to 0 for forward-only
 * passes of any length (sampling). */
typedef struct dfm_region_desc {
  size_t struct_size;
  int64_t sequences, tokens, width;
  int32_t sequence_split;
} dfm_region_desc;

#define DFM_REGION_DESC_V1_SIZE DFM_STRUCT_SIZE(dfm_region_desc, sequence_split)

/* A model chunk of a pp rank: transformer blocks first_layer ..
 * first_layer + layers - 1 (0-based, as Hugging Face's h.<i>), with the
 * embeddings in front (embedding = 1, the first virtual stage) and the final
 * LayerNorm, head and loss behind (head = 1, the last virtual stage). */
typedef struct dfm_pipeline_chunk {
  size_t struct_size;
  int64_t first_layer, layers;
  int32_t embedding, head;
} dfm_pipeline_chunk;

#define DFM_PIPELINE_CHUNK_V1_SIZE DFM_STRUCT_SIZE(dfm_pipeline_chunk, head)

typedef enum dfm_pipeline_op {
  DFM_PIPELINE_FORWARD = 0,
  DFM_PIPELINE_BACKWARD = 1,
  DFM_PIPELINE_SEND_ACTIVATION = 2, /* the chunk's output, to the next virtual stage */
  DFM_PIPELINE_RECV_ACTIVATION = 3, /* the chunk's input, from the previous virtual stage */
  DFM_PIPELINE_SEND_GRADIENT = 4,   /* the gradient of the chunk's input, to the previous virtual stage */
  DFM_PIPELINE_RECV_GRADIENT = 5    /* the gradient of the chunk's output, from the next virtual stage */
} dfm_pipeline_op;

/* One action of a rank's schedule: `op` on micro-batch `micro_batch` (0..m-1)
 * of this rank's chunk `chunk`. */
typedef struct dfm_pipeline_action {
  size_t struct_size;
  dfm_pipeline_op op;
  int32_t micro_batch, chunk;
} dfm_pipeline_action;

#define DFM_PIPELINE_ACTION_V1_SIZE DFM_STRUCT_SIZE(dfm_pipeline_action, chunk)

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

  /* ---- execution (all NULL for a strategy that cannot run yet) ----
   * Called after create, on every rank, with the host services' execution
   * fields (compute, comm, groups, memory) filled in. */

  /* How much of unit `index` (numel elements) this rank stores: elements
   * [*shard_offset, *shard_offset + *shard_numel). The same numel always
   * gives the same plan. */
  dfm_status (*plan_unit)(void* instance, int32_t index, int64_t numel, int64_t* shard_offset,
                          int64_t* shard_numel);
  /* The units, once planned and allocated; `units` stays valid for the job. */
  dfm_status (*bind_units)(void* instance, dfm_unit* units, size_t count);
  /* One unit event (see the header comment); `step` is NULL outside a step. */
  dfm_status (*on_unit)(void* instance, int32_t index, dfm_unit_event event, const dfm_step_info* step);
  /* After the last backward of a step: every grad_shard must hold the
   * gradient of the whole global batch when this returns. */
  dfm_status (*finish_gradients)(void* instance, const dfm_step_info* step);
  /* *sum (host memory) holds this rank's sum of squares over its grad_shards;
   * make it the sum over the whole model, counting every element once. */
  dfm_status (*reduce_grad_sum_squares)(void* instance, double* sum);

  /* ---- sequence execution (all NULL for a strategy that does not split the
   * sequence; context parallel on the cp axis fills them) ---- */

  /* The global positions, in local order, of the `count` tokens of every
   * sequence this rank processes (count = seq_len / cp size). The core feeds
   * these tokens, with their true positions, to the model; the loss is still
   * the mean over every token of the global batch. */
  dfm_status (*sequence_positions)(void* instance, int64_t seq_len, int64_t* positions, int64_t count);
  /* Causal attention of this rank's tokens over the whole sequence, in place
   * of the compute backend's attention. `local` describes the local tensors
   * (q_len = kv_len = local tokens; positions are the strategy's own). `lse`
   * holds batch * heads * local tokens floats, owned by the core; its layout
   * is the strategy's (only its attention_backward reads it). Called by every
   * rank of the axis in the same order (it communicates). */
  dfm_status (*attention_forward)(void* instance, const dfm_attention_desc* local, const float* q,
                                  const float* k, const float* v, float* out, float* lse);
  /* Gradients of the above: dq, dk, dv += (local layouts, as q, k, v). */
  dfm_status (*attention_backward)(void* instance, const dfm_attention_desc* local, const float* q,
                                   const float* k, const float* v, const float* out, const float* dout,
                                   const float* lse, float* dq, float* dk, float* dv);

  /* ---- tensor execution (ABI 1.1; all NULL for a strategy that does not
   * split tensors; tensor parallel on the tp axis fills them) ---- */

  /* This rank's slice (see dfm_tensor_layout). The same for the whole job. */
  dfm_status (*tensor_layout)(void* instance, dfm_tensor_layout* layout);
  /* One edge of a region: `in` (the side the data comes from) -> `out`. In
   * place (in == out) when the two sides have the same shape. Called by every
   * rank of the axis in the same order (it communicates). */
  dfm_status (*region)(void* instance, dfm_region_edge edge, const dfm_region_desc* desc, const float* in,
                       float* out);
  /* data = op(data over the ranks of the axis), `count` device floats, in
   * place: the vocabulary-parallel loss statistics and the gradient norm. */
  dfm_status (*tensor_all_reduce)(void* instance, float* data, int64_t count, dfm_reduce_op op);
  /* out (size * count device floats) = every rank's `in` in slice order:
   * assembling whole tensors for an export, whole logits for sampling. */
  dfm_status (*tensor_all_gather)(void* instance, const float* in, float* out, int64_t count);
  /* `grad` (count device floats) is a step's gradient of replicated
   * parameters (LayerNorms, position embeddings, row-parallel biases) as
   * this rank computed it; make it the gradient of the whole model. With
   * sequence parallel each rank saw only its tokens, so the ranks sum their
   * parts; without it every rank already holds the whole gradient. */
  dfm_status (*reduce_replicated_gradients)(void* instance, float* grad, int64_t count);

  /* ---- pipeline execution (ABI 1.1; all NULL for a strategy that does not
   * pipeline the model; pipeline parallel on the pp axis fills them) ---- */

  /* The chunks pp rank `stage` holds, in its chunk order: *count of them
   * (at most `capacity` are written; call with capacity 0 to learn *count).
   * The same for the whole job; every rank can ask about every stage. */
  dfm_status (*pipeline_chunks)(void* instance, int32_t stage, dfm_pipeline_chunk* chunks, size_t capacity,
                                size_t* count);
  /* This rank's actions for one optimizer step of `micro_batches`
   * micro-batches, in order (same capacity/count protocol). Every forward and
   * backward of every (micro-batch, chunk) appears once; a transfer comes
   * before the compute that needs it or after the one that produced it. */
  dfm_status (*pipeline_schedule)(void* instance, int64_t micro_batches, dfm_pipeline_action* actions,
                                  size_t capacity, size_t* count);
  /* One transfer action of the schedule with `count` device floats, called
   * in schedule order. A send may return before the peer received (the
   * strategy keeps what it needs; `buffer` is the core's again on return).
   * The transfers between two computes of the schedule form one exchange,
   * which the strategy may post whole before it waits for any of it (NCCL
   * needs that, pipeline_schedule.hpp of the pp plugin says why): a
   * receive's `buffer` holds the data once the exchange's last transfer has
   * returned, and the host leaves it alone until then. */
  dfm_status (*pipeline_transfer)(void* instance, const dfm_pipeline_action* action, float* buffer, int64_t count);
  /* The end of a step's schedule: every send has completed. */
  dfm_status (*pipeline_flush)(void* instance);
  /* `grad` (count device floats, the root unit's gradient shard on the first
   * and on the last stage) = its sum over those two stages; a no-op on the
   * other stages and when one stage is both. */
  dfm_status (*reduce_tied_gradients)(void* instance, float* grad, int64_t count);
  /* data = its sum over the stages (count device floats, in place). */
  dfm_status (*pipeline_all_reduce)(void* instance, float* data, int64_t count);
  /* data (count device floats) of pp rank `stage` to every stage: whole
   * tensors for an export. */
  dfm_status (*pipeline_broadcast)(void* instance, int32_t stage, float* data, int64_t count);

  /* ---- ABI 1.6, optional, for a strategy that splits the sequence ----
   * Into how many equal pieces it cuts each sequence of `job` (its own
   * options read through the host as in validate; called before validate,
   * with job->sequence_pieces not yet set). Ring cp with load balancing cuts
   * 2 x cp pieces and gives each rank two; without, cp pieces. NULL: the cp
   * axis size. The host checks seq_len against it and passes it to every
   * strategy's validate as dfm_job_shape.sequence_pieces. */
  dfm_status (*sequence_pieces)(const dfm_job_shape* job, int64_t* pieces);
} dfm_strategy_v1;

/* A table must reach `destroy`. It places parameters when it reaches the
 * execution slots and none of them is NULL; it splits the sequence when it
 * reaches the sequence slots and none of them is NULL; it splits tensors when
 * it reaches the tensor slots and none of them is NULL; it pipelines the model
 * when it reaches the pipeline slots and none of them is NULL. A strategy that
 * does none of these cannot run yet. */
#define DFM_STRATEGY_V1_SIZE DFM_STRUCT_SIZE(dfm_strategy_v1, destroy)
#define DFM_STRATEGY_V1_EXECUTION_SIZE DFM_STRUCT_SIZE(dfm_strategy_v1, reduce_grad_sum_squares)
#define DFM_STRATEGY_V1_SEQUENCE_SIZE DFM_STRUCT_SIZE(dfm_strategy_v1, attention_backward)
#define DFM_STRATEGY_V1_TENSOR_SIZE DFM_STRUCT_SIZE(dfm_strategy_v1, reduce_replicated_gradients)
#define DFM_STRATEGY_V1_PIPELINE_SIZE DFM_STRUCT_SIZE(dfm_strategy_v1, pipeline_broadcast)
#define DFM_STRATEGY_V1_6_SIZE DFM_STRUCT_SIZE(dfm_strategy_v1, sequence_pieces)

#ifdef __cplusplus
}
#endif

#endif /* DFM_STRATEGY_H */
