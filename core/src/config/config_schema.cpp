// The core configuration schema: every section and key dfm itself reads, with
// its type, default, bounds and one line of documentation. docs/config.md is
// rendered from this table (config_reference.cpp), so the two never drift.
#include "dfm/core/config/config.hpp"

namespace dfm {

const std::vector<SectionSpec>& Config::core_sections() {
  static const std::vector<SectionSpec> sections = {
      {"job", "The run itself: its name, random seed and output folder."},
      {"model", "The model: `arch` picks the architecture, and the architecture's own keys (tables below) shape it."},
      {"data", "Where the training tokens come from."},
      {"train", "Optimisation: steps, batch sizes, learning-rate schedule, AdamW and gradient clipping."},
      {"backend", "The compute and communication plugins, arithmetic precision and threads."},
      {"strategy", "Which parallelism strategy plugins run, in which order. Each plugin's own options live in a "
                   "`[strategy.<name>]` table (see below)."},
      {"fsdp", "The parallel layout. The world size is tp_size x cp_size x pp_size x dp_size; ranks are ordered "
               "tp fastest, then cp, dp, and pp slowest."},
      {"checkpoint", "Sharded checkpoints: where, how often, how many are kept, and resuming."},
      {"log", "Console output: log lines, the live progress line, and tracing."},
      {"sample", "Text generated from a prompt during training, to watch the model learn."},
      {"eval", "Validation loss on held-out tokens every N steps: its own token files, or the tail of the training "
               "data, which training then never reads (docs/training.md)."},
  };
  return sections;
}

const std::vector<KeySpec>& Config::core_schema() {
  using T = ValueType;
  static const std::vector<KeySpec> schema = {
      // [job]
      {.key = "job.name", .type = T::String, .default_toml = "\"dfm\"",
       .doc = "Name of the job; the output folder is `runs/<name>` when out_dir is empty."},
      {.key = "job.seed", .type = T::Int, .default_toml = "1234",
       .doc = "Seed of everything random: initial weights (the same for every layout), synthetic data, shuffling, "
              "sampling.",
       .min = 0},
      {.key = "job.out_dir", .type = T::String, .default_toml = "\"\"",
       .doc = "Folder for metrics.jsonl, logs, checkpoints and the final model; empty means `runs/<job.name>`."},

      // [model]
      {.key = "model.arch", .type = T::String, .default_toml = "\"gpt\"",
       .doc = "Model architecture; its keys follow in [model] (one table per architecture below)."},
      {.key = "model.init_from", .type = T::String, .default_toml = "\"\"",
       .doc = "A Hugging Face checkpoint folder to fine-tune (config.json + model.safetensors, or shards listed in "
              "model.safetensors.index.json; F32, BF16 or F16): its config.json fills model.arch and the [model] keys "
              "it defines (a key the job sets differently is an error), its tensors are the initial weights. Empty: "
              "initialise from job.seed (docs/models.md)."},

      // [data]
      {.key = "data.source", .type = T::String, .default_toml = "\"synthetic\"",
       .doc = "synthetic: a built-in corpus generated from job.seed; tokens: llm.c token files matched by data.path.",
       .choices = {"synthetic", "tokens"}},
      {.key = "data.path", .type = T::String, .default_toml = "\"\"",
       .doc = "Glob of token files in llm.c's format, read when source is tokens."},
      {.key = "data.shuffle", .type = T::Bool, .default_toml = "false",
       .doc = "Visit the training windows in a seeded random order (the same for every layout)."},

      // [train]
      {.key = "train.steps", .type = T::Int, .default_toml = "200",
       .doc = "Optimizer steps to run; 0 writes the initial weights and exits.", .min = 0},
      {.key = "train.global_batch", .type = T::Int, .default_toml = "16",
       .doc = "Sequences per optimizer step, over all data-parallel ranks.", .min = 1},
      {.key = "train.micro_batch", .type = T::Int, .default_toml = "16",
       .doc = "Sequences per forward/backward pass; gradients accumulate over global_batch / (micro_batch x dp) "
              "micro-batches.",
       .min = 1},
      {.key = "train.lr", .type = T::Float, .default_toml = "1e-3",
       .doc = "Peak learning rate, reached at the end of the warm-up.", .min = 0},
      {.key = "train.min_lr", .type = T::Float, .default_toml = "1e-4",
       .doc = "Learning rate at the last step of a cosine or linear decay.", .min = 0},
      {.key = "train.warmup_steps", .type = T::Int, .default_toml = "10",
       .doc = "Steps of linear learning-rate warm-up up to lr.", .min = 0},
      {.key = "train.lr_schedule", .type = T::String, .default_toml = "\"cosine\"",
       .doc = "Learning rate after the warm-up: constant at lr, or a cosine or linear decay to min_lr.",
       .choices = {"constant", "cosine", "linear"}},
      {.key = "train.weight_decay", .type = T::Float, .default_toml = "0.1",
       .doc = "AdamW decoupled weight decay, on parameters with two or more dimensions only.", .min = 0},
      {.key = "train.beta1", .type = T::Float, .default_toml = "0.9", .doc = "AdamW decay of the first moment.",
       .min = 0, .max = 1, .max_exclusive = true},
      {.key = "train.beta2", .type = T::Float, .default_toml = "0.95", .doc = "AdamW decay of the second moment.",
       .min = 0, .max = 1, .max_exclusive = true},
      {.key = "train.eps", .type = T::Float, .default_toml = "1e-8", .doc = "AdamW epsilon added to the denominator.",
       .min = 0, .min_exclusive = true},
      {.key = "train.max_norm", .type = T::Float, .default_toml = "1.0",
       .doc = "Clip the global gradient norm to this value; 0 turns clipping off.", .min = 0},
      {.key = "train.on_nonfinite", .type = T::String, .default_toml = "\"abort\"",
       .doc = "A step whose loss or gradient norm is NaN or infinite: abort stops the job naming the step and the "
              "first rank whose own loss or gradients were not finite; skip drops the step's update (the weights "
              "and AdamW's moments and step count stay as they were; the learning-rate schedule and the data move "
              "on), logs a warning and counts it in metrics.jsonl (skipped, skipped_steps).",
       .choices = {"abort", "skip"}},

      // [backend]
      {.key = "backend.compute", .type = T::String, .default_toml = "\"cpu\"",
       .doc = "Compute backend plugin: cpu, cuda, or the name of a third-party plugin."},
      {.key = "backend.comm", .type = T::String, .default_toml = "\"gloo\"",
       .doc = "Communication backend plugin: gloo, nccl, or the name of a third-party plugin."},
      {.key = "backend.precision", .type = T::String, .default_toml = "\"fp32\"",
       .doc = "Arithmetic of the compute backend. fp32: every kernel in fp32. bf16 (cuda): matmuls on bf16 "
              "tensor cores with fp32 accumulation, attention on cuDNN's fused flash attention (bf16 operands, "
              "fp32 statistics); weights, gradients, optimizer state and reductions stay fp32 (the storage of "
              "activations is backend.activations). bf16 (cpu): matmul inputs rounded to bf16 with fp32 "
              "accumulation, the cuda backend's GEMM numerics at fp32 speed, so a GPU job's precision runs on a "
              "laptop.",
       .choices = {"fp32", "bf16"}},
      {.key = "backend.activations", .type = T::String, .default_toml = "\"auto\"",
       .doc = "Storage of the activations (the tensors between kernels, kept for the backward). bf16 halves "
              "their memory and traffic; kernels still compute in fp32 and round each result once. auto: bf16 "
              "when backend.precision is bf16, the compute backend offers it (ABI 1.5) and no strategy in the "
              "chain exchanges activations (tp, cp and pp send them through the comm ABI, which carries fp32), "
              "else fp32.",
       .choices = {"auto", "fp32", "bf16"}},
      {.key = "backend.threads", .type = T::Int, .default_toml = "0",
       .doc = "CPU threads per process; 0 means the cores this process may use, shared evenly by the ranks on its machine.", .min = 0},
      {.key = "backend.comm_timeout_s", .type = T::Float, .default_toml = "300.0",
       .doc = "Seconds a collective may wait for its peers before the job stops with a timeout.", .min = 0,
       .min_exclusive = true},

      // [strategy]
      {.key = "strategy.chain", .type = T::StringArray,
       .doc = "Strategy plugins in application order, e.g. [\"pp\", \"tp\", \"cp\", \"fsdp2\"]. Omitted: the "
              "first-party plugin of every axis of size > 1, in the order pp, tp, cp, then fsdp2 for dp "
              "(and for cp: its gradients are reduced over dp x cp)."},

      // [fsdp]
      {.key = "fsdp.tp_size", .type = T::Int, .default_toml = "1",
       .doc = "Tensor-parallel ranks (each layer's weights split by columns and rows); best within one node.",
       .min = 1},
      {.key = "fsdp.cp_size", .type = T::Int, .default_toml = "1",
       .doc = "Context-parallel ranks (the sequence split into chunks, ring attention).", .min = 1},
      {.key = "fsdp.pp_size", .type = T::Int, .default_toml = "1",
       .doc = "Pipeline stages (the layers split into stages, 1F1B schedule).", .min = 1},
      {.key = "fsdp.dp_size", .type = T::Int,
       .doc = "Data-parallel ranks (FSDP2 sharding). Omitted: world size / (tp_size x cp_size x pp_size), which "
              "must divide exactly. Given: the product of the four sizes must equal the world size.",
       .min = 1},

      // [checkpoint]
      {.key = "checkpoint.dir", .type = T::String, .default_toml = "\"\"",
       .doc = "Checkpoint folder; empty means `<out_dir>/checkpoints`."},
      {.key = "checkpoint.every", .type = T::Int, .default_toml = "0",
       .doc = "Save a checkpoint every N steps; 0 saves only when SIGTERM stops the job.", .min = 0},
      {.key = "checkpoint.keep", .type = T::Int, .default_toml = "3",
       .doc = "How many of the newest checkpoints are kept; older ones are deleted.", .min = 1},
      {.key = "checkpoint.resume", .type = T::String, .default_toml = "\"auto\"",
       .doc = "auto: continue from the newest checkpoint in dir when there is one; never: start afresh; "
              "or the path of a checkpoint to start from."},

      // [log]
      {.key = "log.every", .type = T::Int, .default_toml = "10",
       .doc = "Write a log line every N steps (when stdout is not a terminal, or the progress line is off).",
       .min = 1},
      {.key = "log.trace", .type = T::Bool, .default_toml = "false",
       .doc = "Write a Chrome/Perfetto trace of every rank's compute, communication and pipeline schedule."},
      {.key = "log.tensorboard", .type = T::Bool, .default_toml = "true",
       .doc = "Write TensorBoard event files of the step metrics to `<out_dir>/tensorboard/` (rank 0)."},
      {.key = "log.peak_tflops", .type = T::Float, .default_toml = "0.0",
       .doc = "One device's peak dense TFLOP/s at the run's precision (989 for an H100 SXM in bf16): with it, "
              "metrics.jsonl and TensorBoard report MFU; 0 leaves MFU out.",
       .min = 0},
      {.key = "log.flight_recorder", .type = T::Int, .default_toml = "2000",
       .doc = "Communication operations each rank keeps in its flight recorder, dumped to "
              "`logs/flight-rank<r>.json` when the job fails or times out; 0 turns the recorder off.",
       .min = 0},
      {.key = "log.progress", .type = T::Bool, .default_toml = "true",
       .doc = "Show a live progress line on rank 0 when stdout is a terminal."},

      // [sample]
      {.key = "sample.every", .type = T::Int, .default_toml = "0",
       .doc = "Print a generated continuation of the prompt every N steps; 0 turns sampling off.", .min = 0},
      {.key = "sample.prompt", .type = T::String, .default_toml = "\"The \"",
       .doc = "The prompt, as text (bytes for the byte-level vocabulary)."},
      {.key = "sample.tokens", .type = T::Int, .default_toml = "64", .doc = "Tokens to generate per sample.",
       .min = 1},
      {.key = "sample.temperature", .type = T::Float, .default_toml = "1.0",
       .doc = "Sampling temperature; lower is greedier.", .min = 0, .min_exclusive = true},

      // [eval]
      {.key = "eval.every", .type = T::Int, .default_toml = "0",
       .doc = "Compute the validation loss after every N-th step and after the last; 0 turns validation off.",
       .min = 0},
      {.key = "eval.batches", .type = T::Int, .default_toml = "4",
       .doc = "Held-out windows per validation, in global batches: the first batches x train.global_batch windows "
              "of the held-out tokens, in order, the same ones every time.",
       .min = 1},
      {.key = "eval.path", .type = T::String, .default_toml = "\"\"",
       .doc = "Glob of token files (llm.c's format, as data.path) to validate on; empty: use eval.holdout."},
      {.key = "eval.holdout", .type = T::Float, .default_toml = "0.0",
       .doc = "Fraction of the training tokens, at the end of the data, kept for validation and never trained on "
              "(when eval.path is empty).",
       .min = 0, .max = 0.5},
  };
  return schema;
}

}  // namespace dfm
