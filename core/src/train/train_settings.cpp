#include "dfm/core/train/train_settings.hpp"

#include "dfm/core/config/config.hpp"
#include "dfm/core/data/data_loader.hpp"

namespace dfm {

TrainSettings read_train_settings(const Config& c) {
  TrainSettings s;
  s.job_name = c.get_string("job.name");
  s.seed = static_cast<uint64_t>(c.get_int("job.seed"));
  const std::string out = c.get_string("job.out_dir");
  s.out_dir = out.empty() ? std::filesystem::path("runs") / s.job_name : std::filesystem::path(out);
  const Architecture* arch = find_architecture(c.get_string("model.arch"));
  if (!arch) throw ConfigError(c.format_error("model.arch", "not an architecture"));
  s.model = arch->from_config(c);
  s.data_source = c.get_string("data.source");
  s.data_path = c.get_string("data.path");
  s.shuffle = c.get_bool("data.shuffle");
  s.steps = c.get_int("train.steps");
  s.global_batch = c.get_int("train.global_batch");
  s.micro_batch = c.get_int("train.micro_batch");
  s.lr.lr = c.get_float("train.lr");
  s.lr.min_lr = c.get_float("train.min_lr");
  s.lr.warmup_steps = c.get_int("train.warmup_steps");
  s.lr.total_steps = s.steps;
  s.lr.shape = parse_lr_shape(c.get_string("train.lr_schedule"));
  s.adamw.weight_decay = c.get_float("train.weight_decay");
  s.adamw.beta1 = c.get_float("train.beta1");
  s.adamw.beta2 = c.get_float("train.beta2");
  s.adamw.eps = c.get_float("train.eps");
  s.adamw.max_norm = c.get_float("train.max_norm");
  s.skip_nonfinite = c.get_string("train.on_nonfinite") == "skip";
  s.threads = c.get_int("backend.threads");
  s.log_every = c.get_int("log.every");
  s.progress = c.get_bool("log.progress");
  s.trace = c.get_bool("log.trace");
  s.tensorboard = c.get_bool("log.tensorboard");
  s.peak_tflops = c.get_float("log.peak_tflops");
  s.sample_every = c.get_int("sample.every");
  s.sample_tokens = c.get_int("sample.tokens");
  s.sample_prompt = c.get_string("sample.prompt");
  s.sample_temperature = c.get_float("sample.temperature");
  s.eval_every = c.get_int("eval.every");
  s.eval_batches = c.get_int("eval.batches");
  s.eval_path = c.get_string("eval.path");
  s.eval_holdout = c.get_float("eval.holdout");
  s.checkpoint_dir = c.get_string("checkpoint.dir");
  s.checkpoint_every = c.get_int("checkpoint.every");
  s.checkpoint_keep = c.get_int("checkpoint.keep");
  s.checkpoint_resume = c.get_string("checkpoint.resume");
  s.init_from = c.get_string("model.init_from");
  return s;
}

namespace {

// Where the held-out tokens come from, and that they hold a whole window
// while leaving the training data some tokens.
void check_eval_settings(const Config& c, const ModelDims& dims, std::vector<std::string>& errors) {
  const std::string path = c.get_string("eval.path");
  const double holdout = c.get_float("eval.holdout");
  if (!path.empty() && holdout > 0) {
    errors.push_back(c.format_error("eval.holdout", "set eval.path or eval.holdout, not both"));
    return;
  }
  if (!path.empty()) {
    for (const std::string& problem : token_file_problems(path, dims.vocab_size))
      errors.push_back(c.format_error("eval.path", problem));
    return;
  }
  if (holdout == 0) {
    if (c.get_int("eval.every") > 0)
      errors.push_back(c.format_error("eval.every", "validation needs held-out tokens: set eval.path (a glob of "
                                                    "token files) or eval.holdout (a fraction of the training data)"));
    return;
  }
  const bool synthetic = c.get_string("data.source") == "synthetic";
  int64_t total = kSyntheticCorpusBytes;
  try {
    if (!synthetic) total = token_file_tokens(c.get_string("data.path"));
  } catch (const std::exception&) {
    return;  // an unreadable token file is data.path's error, reported with it
  }
  if (total == 0) return;  // no file matches data.path: reported with it
  const int64_t held = held_out_tokens(total, holdout), seq_len = dims.seq_len;
  if (held < seq_len + 1)
    errors.push_back(c.format_error("eval.holdout", std::to_string(holdout) + " of the " + std::to_string(total) +
                                                        " training tokens is " + std::to_string(held) +
                                                        " tokens, less than one window of model.seq_len + 1 = " +
                                                        std::to_string(seq_len + 1)));
}

}  // namespace

void check_train_settings(const Config& c, std::vector<std::string>& errors) {
  const Architecture* arch = find_architecture(c.get_string("model.arch"));
  if (!arch) return;  // add_model_schema reported it
  arch->check(c, errors);
  const int64_t global = c.get_int("train.global_batch"), micro = c.get_int("train.micro_batch");
  if (micro > 0 && global % micro != 0)
    errors.push_back(c.format_error("train.global_batch", std::to_string(global) + " sequences do not split into micro-batches of " +
                                                              std::to_string(micro) + " (train.micro_batch)"));
  const std::string source = c.get_string("data.source");
  const int64_t vocab = arch->from_config(c)->dims().vocab_size;
  if (source == "synthetic" && vocab < 256)
    errors.push_back(c.format_error("model.vocab_size",
                                    "the synthetic corpus is bytes and needs vocab_size >= 256, got " +
                                        std::to_string(vocab)));
  if (source == "tokens" && c.get_string("data.path").empty())
    errors.push_back(c.format_error("data.path", "data.source = \"tokens\" needs a path (a glob of token files)"));
  else if (source == "tokens")
    for (const std::string& problem : token_file_problems(c.get_string("data.path"), vocab))
      errors.push_back(c.format_error("data.path", problem));
  check_eval_settings(c, arch->from_config(c)->dims(), errors);
  if (c.get_float("train.min_lr") > c.get_float("train.lr"))
    errors.push_back(c.format_error("train.min_lr", "min_lr " + std::to_string(c.get_float("train.min_lr")) +
                                                        " is above lr " + std::to_string(c.get_float("train.lr"))));
}

}  // namespace dfm
