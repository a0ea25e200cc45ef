#include "dfm/core/train/trainer.hpp"

#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "dfm/core/parallel/activation_slots.hpp"
#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/checkpoint/hf_export.hpp"
#include "dfm/core/train/sampler.hpp"

namespace dfm {

namespace {
constexpr int64_t kSyntheticCorpusBytes = int64_t{1} << 21;
}

Trainer::Trainer(const TrainSettings& settings, ComputeBackend& backend, JobRuntime runtime)
    : s_(settings),
      backend_(backend),
      runtime_(std::move(runtime)),
      rank_batch_(settings.global_batch / runtime_.dp_size),
      micro_batches_(rank_batch_ / settings.micro_batch),
      local_pipeline_(settings.shape.n_layer),
      schedule_(pipeline().schedule(micro_batches_)),
      params_(backend, settings.shape, *runtime_.placement, TensorSplit::or_none(runtime_.tensor).rank(),
              TensorSplit::or_none(runtime_.tensor).size(), held_units(pipeline(), settings.shape.n_layer)),
      model_(backend, params_, *runtime_.placement, settings.shape, settings.micro_batch, runtime_.sequence,
             runtime_.tensor, model_layout(pipeline(), schedule_)),
      optimizer_(backend, settings.adamw),
      stream_(make_stream()),
      local_positions_(local_positions(settings.shape.seq_len, runtime_)),
      local_tokens_(static_cast<int64_t>(local_positions_.size())),
      micro_rows_(settings.micro_batch * local_tokens_),
      host_inputs_(static_cast<size_t>(micro_rows_)),
      host_targets_(host_inputs_.size()),
      window_inputs_(static_cast<size_t>(settings.shape.seq_len)),
      window_targets_(window_inputs_.size()),
      inputs_(backend, micro_batches_ * micro_rows_),
      targets_(backend, micro_batches_ * micro_rows_),
      positions_(backend, micro_rows_) {
  params_.initialise(s_.seed);
  for (const dfm_unit& u : params_.units()) runtime_.placement->on_unit(u.index, DFM_UNIT_PARAMS_UPDATED, nullptr);
  // Every sequence of a micro-batch has this rank's tokens at their true positions.
  std::vector<int32_t> positions(host_inputs_.size());
  for (size_t i = 0; i < positions.size(); ++i)
    positions[i] = static_cast<int32_t>(local_positions_[i % local_positions_.size()]);
  positions_.upload(positions);
  if (s_.trace) {
    trace_ = std::make_unique<TraceWriter>(runtime_.rank);
    trace_->name_lane(0, "compute");
    trace_->name_lane(1, "send / receive");
  }
}

std::vector<bool> Trainer::held_units(const Pipeline& pipeline, int64_t n_layer) {
  std::vector<bool> held(static_cast<size_t>(n_layer + 1));
  for (size_t u = 0; u < held.size(); ++u) held[u] = pipeline.holds(static_cast<int32_t>(u));
  return held;
}

// A slot per micro-batch a chunk holds at once (ActivationSlots).
ModelLayout Trainer::model_layout(const Pipeline& pipeline, const std::vector<PipelineAction>& schedule) {
  return {pipeline.my_chunks(), ActivationSlots::needed(pipeline.my_chunks(), schedule)};
}

std::vector<int64_t> Trainer::local_positions(int64_t seq_len, const JobRuntime& runtime) {
  if (runtime.sequence) return runtime.sequence->positions(seq_len, seq_len / runtime.cp_size);
  std::vector<int64_t> all(static_cast<size_t>(seq_len));
  std::iota(all.begin(), all.end(), int64_t{0});
  return all;
}

std::unique_ptr<TokenStream> Trainer::make_stream() const {
  const auto& sh = s_.shape;
  if (s_.data_source == "synthetic")
    return std::make_unique<TokenStream>(synthetic_corpus(s_.seed, kSyntheticCorpusBytes), "synthetic corpus",
                                         sh.seq_len, sh.vocab_size, s_.shuffle, s_.seed);
  return std::make_unique<TokenStream>(expand_glob(s_.data_path), sh.seq_len, sh.vocab_size, s_.shuffle, s_.seed);
}

// Rows dp_rank * rank_batch .. of the global batch, micro_batch at a time:
// the same windows in the same order as one process would see them.
// With a sequence split (cp), the rank keeps its own tokens of each window.
void Trainer::load_micro_batch(int64_t step, int64_t micro) {
  for (int64_t j = 0; j < s_.micro_batch; ++j) {
    const int64_t window = step * s_.global_batch + runtime_.dp_rank * rank_batch_ + micro * s_.micro_batch + j;
    stream_->window(window, window_inputs_, window_targets_);
    for (int64_t t = 0; t < local_tokens_; ++t) {
      const auto at = static_cast<size_t>(local_positions_[static_cast<size_t>(t)]);
      host_inputs_[static_cast<size_t>(j * local_tokens_ + t)] = window_inputs_[at];
      host_targets_[static_cast<size_t>(j * local_tokens_ + t)] = window_targets_[at];
    }
  }
  const size_t bytes = host_inputs_.size() * sizeof(int32_t);
  backend_.upload(inputs_.data() + micro * micro_rows_, host_inputs_.data(), bytes);
  backend_.upload(targets_.data() + micro * micro_rows_, host_targets_.data(), bytes);
}

void Trainer::load_step(int64_t step) {
  for (int64_t micro = 0; micro < micro_batches_; ++micro) load_micro_batch(step, micro);
}

StepResult Trainer::train_step(int64_t step) {
  // The loss is the mean over every token of the global batch, so each
  // token's gradient is scaled by 1 / (global_batch * seq_len) on every rank,
  // and the strategies' reductions sum the ranks' gradients.
  const double tokens = static_cast<double>(s_.global_batch * s_.shape.seq_len);
  params_.zero_grad_shards();
  dfm_step_info info{sizeof(dfm_step_info), step, 0, micro_batches_};
  const double loss_sum = run_schedule(step, info);
  runtime_.placement->finish_gradients(info);
  reduce_replicated_gradients();
  reduce_tied_gradients();
  // The stop request rides on the loss reduction, so every rank sees the
  // same answer at the same step (SIGTERM reaches ranks at different times).
  // The last stage computed the loss; the data ranks each a part of it.
  double reduced[2] = {loss_sum, stop_signal_pending() ? 1.0 : 0.0};
  sum_over_stages(reduced, 2);
  runtime_.sum_over_data_ranks(reduced, 2);

  StepResult r;
  r.loss = reduced[0] / tokens;
  r.stop_requested = reduced[1] > 0;
  r.grad_norm = std::sqrt(global_grad_sum_squares());
  r.lr = s_.lr.at(step + 1);
  optimizer_.step(params_, r.lr, step + 1, clip_coefficient(r.grad_norm, s_.adamw.max_norm));
  for (const dfm_unit& u : params_.units()) runtime_.placement->on_unit(u.index, DFM_UNIT_PARAMS_UPDATED, nullptr);
  return r;
}

void Trainer::sum_over_stages(double* values, size_t count) {
  if (pipeline().stages() == 1) return;
  std::vector<float> host(values, values + count);
  DeviceBuffer<float> device(backend_, static_cast<int64_t>(count));
  device.upload(host);
  pipeline().all_reduce(device.data(), static_cast<int64_t>(count));
  host = device.download();
  for (size_t i = 0; i < count; ++i) values[i] = host[i];
}

// Sequence parallel leaves each tensor slice its own tokens' part of the
// replicated parameters' gradients (LayerNorms, wpe, row-parallel biases);
// the strategy completes them, for the whole model in one call.
void Trainer::reduce_replicated_gradients() {
  const TensorSplit& tensor = TensorSplit::or_none(runtime_.tensor);
  if (!tensor.split()) return;
  std::vector<std::pair<float*, int64_t>> parts;
  int64_t total = 0;
  for (const ParamInfo& info : params_.infos()) {
    const auto [begin, end] = params_.shard_range(info);
    if (info.cut != TensorCut::Replicated || begin >= end) continue;
    const dfm_unit& u = params_.unit(info.unit);
    parts.emplace_back(u.grad_shard + (begin - u.shard_offset), end - begin);
    total += end - begin;
  }
  if (replicated_scratch_.count() < total) replicated_scratch_ = DeviceBuffer<float>(backend_, total);
  int64_t at = 0;
  for (const auto& [grad, count] : parts) {
    backend_.copy(replicated_scratch_.data() + at, grad, static_cast<size_t>(count) * sizeof(float));
    at += count;
  }
  tensor.reduce_replicated_gradients(replicated_scratch_.data(), total);
  at = 0;
  for (const auto& [grad, count] : parts) {
    backend_.copy(grad, replicated_scratch_.data() + at, static_cast<size_t>(count) * sizeof(float));
    at += count;
  }
}

// The first and last stages both hold the root unit; the head's gradient of
// the tied embedding and the embedding's own are summed over the two, so
// the two copies stay identical.
void Trainer::reduce_tied_gradients() {
  const dfm_unit& root = params_.unit(0);
  if (pipeline().stages() > 1 && root.shard_numel > 0)
    pipeline().reduce_tied_gradients(root.grad_shard, root.shard_numel);
}

// Every element of the model once: the placement sums its shards, the
// tensor slices their slices (the replicated parameters counted by slice 0),
// the stages their units (the root, held twice, counted by its first holder).
double Trainer::global_grad_sum_squares() {
  const TensorSplit& tensor = TensorSplit::or_none(runtime_.tensor);
  const bool counts_root = pipeline().stage() == pipeline().holder_of(0);
  double sum = runtime_.placement->reduce_grad_sum_squares(optimizer_.local_grad_sum_squares(
      params_, [&](const ParamInfo& info) {
        return (info.unit != 0 || counts_root) && (info.cut != TensorCut::Replicated || tensor.rank() == 0);
      }));
  if (tensor.split()) {
    DeviceBuffer<float> value(backend_, 1);
    const float local = static_cast<float>(sum);
    value.upload(std::span<const float>(&local, 1));
    tensor.all_reduce(value.data(), 1, DFM_REDUCE_SUM);
    sum = static_cast<double>(value.download()[0]);
  }
  sum_over_stages(&sum, 1);
  return sum;
}

// Every rank samples (the forward may gather sharded parameters, a
// collective, and walks the pipeline's stages); rank 0 prints.
void Trainer::print_sample(int64_t step) {
  SampleRequest request{encode_prompt(s_.sample_prompt, s_.shape.vocab_size), s_.sample_tokens, s_.sample_temperature,
                        s_.seed, step};
  const auto generated = sample_tokens([this](const std::vector<int32_t>& window,
                                              float* logits) { next_token_logits(window, logits); },
                                       s_.shape.vocab_size, s_.shape.seq_len, request);
  if (runtime_.is_rank0())
    LOG(INFO) << "sample at step " << step << ": " << decode_tokens(request.prompt, s_.shape.vocab_size) << "|"
              << decode_tokens(generated, s_.shape.vocab_size);
}

// Every rank takes part in gathering the units (and, under a tensor split,
// every slice of them; under a pipeline, the stage holding each unit sends
// it to the others); rank 0 assembles the whole tensors and writes the files.
void Trainer::export_final() {
  const TensorSplit& tensor = TensorSplit::or_none(runtime_.tensor);
  const int32_t slices = tensor.size();
  std::vector<std::vector<ParamInfo>> slice_infos;  // each slice's parameter list, in the same order
  for (int32_t slice = 0; slice < slices; ++slice) slice_infos.push_back(gpt_param_infos(s_.shape, slice, slices));
  std::vector<int64_t> unit_numel(params_.units().size(), 0);  // as its holder stores it
  for (const ParamInfo& info : params_.infos()) unit_numel[static_cast<size_t>(info.unit)] += info.local_count();
  HfExportWriter writer(s_.shape);
  for (const dfm_unit& u : params_.units()) {
    const int64_t numel = unit_numel[static_cast<size_t>(u.index)];
    const int32_t holder = pipeline().holder_of(u.index);
    DeviceBuffer<float> all_slices(backend_, slices * numel);  // [slices, numel]
    if (pipeline().stage() == holder) {
      runtime_.placement->on_unit(u.index, DFM_UNIT_GATHER, nullptr);
      if (tensor.split())
        tensor.all_gather(u.full_param, all_slices.data(), numel);
      else
        backend_.copy(all_slices.data(), u.full_param, static_cast<size_t>(numel) * sizeof(float));
      runtime_.placement->on_unit(u.index, DFM_UNIT_RELEASE, nullptr);
    }
    pipeline().broadcast(holder, all_slices.data(), slices * numel);
    if (!runtime_.is_rank0()) continue;
    const std::vector<float> host = all_slices.download();
    for (size_t p = 0; p < params_.infos().size(); ++p) {
      const ParamInfo& info = params_.infos()[p];
      if (info.unit != u.index) continue;
      std::vector<float> whole(static_cast<size_t>(info.count()));
      for (int32_t slice = 0; slice < slices; ++slice)
        scatter_slice(slice_infos[static_cast<size_t>(slice)][p], host.data() + slice * numel + info.offset,
                      whole.data());
      writer.add(info, whole.data());
    }
  }
  if (runtime_.is_rank0()) {
    writer.write(s_.out_dir / "final", params_.infos());
    LOG(INFO) << "wrote " << (s_.out_dir / "final" / "model.safetensors").string() << " and config.json";
  }
}

StepMetrics Trainer::step_metrics(int64_t step, const StepResult& r, double seconds,
                                  const std::map<std::string, uint64_t>& bytes_before) {
  StepMetrics m;
  m.step = step + 1;
  m.loss = r.loss;
  m.lr = r.lr;
  m.grad_norm = r.grad_norm;
  m.step_ms = seconds * 1e3;
  m.tokens_per_s = static_cast<double>(s_.global_batch * s_.shape.seq_len) / seconds;
  // This rank's model state: its shards of parameters, gradients and the two
  // moments, plus the peak of what the strategies materialised during the step.
  m.param_bytes = params_.shard_bytes();
  m.grad_bytes = params_.shard_bytes();
  m.optimizer_bytes = 2 * params_.shard_bytes();
  m.gathered_peak_bytes = runtime_.strategy_memory_peak();
  m.activation_bytes = model_.activation_bytes();
  m.activation_sets_peak = activation_sets_peak_;
  m.strategy_peak_bytes = runtime_.strategy_memory_peaks();
  for (const auto& [axis, total] : runtime_.bytes_sent()) {
    const auto before = bytes_before.find(axis);
    m.comm_bytes[axis] = total - (before == bytes_before.end() ? 0 : before->second);
  }
  m.strategy = runtime_.take_strategy_metrics();
  return m;
}

std::filesystem::path Trainer::checkpoint_dir() const {
  return s_.checkpoint_dir.empty() ? s_.out_dir / "checkpoints" : s_.checkpoint_dir;
}

// Rank 0 picks the checkpoint (and clears interrupted saves) and tells the
// others, so every rank loads the same one; each rank then reads its shards.
int64_t Trainer::resume() {
  namespace fs = std::filesystem;
  nlohmann::json choice = {{"path", ""}, {"error", ""}};
  if (runtime_.is_rank0()) {
    try {
      if (const int64_t n = remove_incomplete_checkpoints(checkpoint_dir()); n > 0)
        LOG(INFO) << "removed " << n << " interrupted checkpoint save(s) from " << checkpoint_dir().string();
      if (const auto source = resume_source(s_.checkpoint_resume, checkpoint_dir())) choice["path"] = source->string();
    } catch (const std::exception& e) {
      choice["error"] = e.what();
    }
  }
  choice = nlohmann::json::parse(runtime_.exchange("resume", choice.dump()).front());
  if (choice["error"] != "") throw std::runtime_error(choice["error"].get<std::string>());
  if (choice["path"] == "") return 0;
  const fs::path path = choice["path"].get<std::string>();
  const TrainerState st = load_checkpoint({backend_, params_, runtime_, s_.shape}, path);
  // The data order and the schedule are functions of (seed, step, global
  // batch): a checkpoint only continues the same run.
  const std::string where = (path / "index.json").string() + ": ";
  if (st.seed != s_.seed || st.global_batch != s_.global_batch)
    throw std::runtime_error(where + "written with job.seed " + std::to_string(st.seed) + " and train.global_batch " +
                             std::to_string(st.global_batch) + "; this job has " + std::to_string(s_.seed) + " and " +
                             std::to_string(s_.global_batch) + " (resume = \"never\" starts afresh)");
  if (st.data_position != st.step * st.global_batch || st.lr_step != st.step || st.adam_step != st.step)
    throw std::runtime_error(where + "trainer state is inconsistent (data_position, lr_step and adam_step must follow step)");
  for (const dfm_unit& u : params_.units()) runtime_.placement->on_unit(u.index, DFM_UNIT_PARAMS_UPDATED, nullptr);
  if (runtime_.is_rank0()) {
    LOG(INFO) << "resumed from " << path.string() << " at step " << st.step;
    // metrics.jsonl restarts with this launch; the lines of the steps the
    // checkpoint covers are kept beside it.
    const fs::path metrics = s_.out_dir / "metrics.jsonl";
    if (fs::exists(metrics)) {
      std::ifstream in(metrics);
      std::ofstream kept(s_.out_dir / ("metrics.until-step-" + std::to_string(st.step) + ".jsonl"));
      for (std::string line; std::getline(in, line);)
        if (nlohmann::json::accept(line) && nlohmann::json::parse(line).value("step", int64_t{0}) <= st.step) kept << line << "\n";
    }
  }
  return st.step;
}

std::filesystem::path Trainer::save_checkpoint_after(int64_t steps_done) {
  const TrainerState state{steps_done, steps_done * s_.global_batch, steps_done, steps_done, s_.seed, s_.global_batch};
  const auto t0 = std::chrono::steady_clock::now();
  const auto path = save_checkpoint({backend_, params_, runtime_, s_.shape}, checkpoint_dir(), state, s_.checkpoint_keep);
  if (runtime_.is_rank0())
    LOG(INFO) << "saved checkpoint " << path.string() << " in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s";
  return path;
}

void Trainer::run() {
  const bool rank0 = runtime_.is_rank0();
  if (rank0) {
    std::filesystem::create_directories(s_.out_dir);
    LOG(INFO) << "data: " << stream_->describe();
    LOG(INFO) << "model: GPT-2, " << s_.shape.n_layer << " layers, " << s_.shape.n_head << " heads, d_model "
              << s_.shape.d_model << ", vocab " << s_.shape.vocab_size << ", seq_len " << s_.shape.seq_len << ", "
              << params_.total_count() << " parameters";
  }
  if (s_.steps == 0) {
    export_final();
    if (rank0) LOG(INFO) << "train.steps = 0: wrote the initial weights to " << (s_.out_dir / "final").string();
    return;
  }
  const int64_t first_step = resume();
  std::unique_ptr<MetricsWriter> metrics;
  std::unique_ptr<ProgressReporter> progress;
  if (rank0) {
    metrics = std::make_unique<MetricsWriter>(s_.out_dir / "metrics.jsonl");
    progress = std::make_unique<ProgressReporter>(s_.steps, s_.log_every, s_.progress && isatty(STDOUT_FILENO));
  }
  for (int64_t step = first_step; step < s_.steps; ++step) {
    runtime_.reset_strategy_memory_peak();
    runtime_.take_strategy_metrics();  // what sampling or the export reported is not this step's
    const auto bytes_before = runtime_.bytes_sent();
    const auto t0 = std::chrono::steady_clock::now();
    const StepResult r = train_step(step);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const StepMetrics m = step_metrics(step, r, seconds, bytes_before);
    if (rank0) {
      metrics->write(m);
      progress->step(m);
    }
    if (s_.sample_every > 0 && m.step % s_.sample_every == 0) {
      if (progress) progress->clear_line();
      print_sample(m.step);
    }
    const bool periodic = s_.checkpoint_every > 0 && m.step % s_.checkpoint_every == 0;
    if (!periodic && !r.stop_requested) continue;
    if (progress) progress->clear_line();
    const auto saved = save_checkpoint_after(m.step);
    if (r.stop_requested) {
      write_trace();
      if (rank0) LOG(INFO) << "SIGTERM: stopped after step " << m.step << " and saved " << saved.string()
                           << "; the next launch resumes from it";
      return;
    }
  }
  if (rank0) progress->finish();
  write_trace();
  export_final();
}

}  // namespace dfm
