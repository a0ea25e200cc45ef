#include "pipeline_links.hpp"

#include <string>

#include "dfm/sdk.hpp"

namespace dfm::pp {

using dfm::sdk::Error;

PipelineLinks::PipelineLinks(const dfm_host_services& host, int32_t virtual_stages)
    : host_(host),
      virtual_stages_(virtual_stages),
      pp_(dfm::sdk::execution_group(host, DFM_GROUP_PP, "pp")),
      ends_(dfm::sdk::execution_group(host, DFM_GROUP_PP_ENDS, "first and last pp stages'")) {}

PipelineLinks::~PipelineLinks() {
  // Messages still posted belong to a failing job; their buffers go with it.
  for (Posted& m : exchange_)
    if (m.work) host_.comm->work_free(m.work);
  for (float* b : staging_) host_.free(host_.host, b);
}

void PipelineLinks::check_comm(dfm_status status, const std::string& what) const {
  if (status != DFM_OK)
    throw Error(status, "pp: " + what + " over the pp group failed: " +
                            (host_.comm_last_error ? host_.comm_last_error() : "comm failed"));
}

void PipelineLinks::wait(void*& work, const std::string& what) {
  const dfm_status status = host_.comm->work_wait(work, -1);
  host_.comm->work_free(work);
  work = nullptr;
  check_comm(status, what);
}

void PipelineLinks::use_schedule(std::vector<PipeAction> schedule) {
  if (!exchange_.empty()) throw Error(DFM_ERR_RUNTIME, "pp: a new schedule in the middle of an exchange");
  schedule_ = std::move(schedule);
  next_ = 0;
}

// The schedule index of `action`: the next transfer of the step, past the computes before it.
size_t PipelineLinks::locate(const PipeAction& action) const {
  using Kind = PipeAction::Kind;
  size_t i = next_;
  while (i < schedule_.size() && (schedule_[i].kind == Kind::Forward || schedule_[i].kind == Kind::Backward)) ++i;
  if (i == schedule_.size())
    throw Error(DFM_ERR_INVALID_ARGUMENT, "pp: transfer " + to_string(action) + " after the schedule's last one");
  if (!(schedule_[i] == action))
    throw Error(DFM_ERR_INVALID_ARGUMENT,
                "pp: transfer " + to_string(action) + " where the schedule has " + to_string(schedule_[i]));
  return i;
}

// A staging buffer of `count` floats for the exchange's next send.
float* PipelineLinks::send_staging(int64_t count) {
  if (count > staging_count_) {  // a larger message than before: start the pool afresh
    if (staged_sends_ > 0) throw Error(DFM_ERR_INVALID_ARGUMENT, "pp: messages of different sizes in one exchange");
    for (float* b : staging_) host_.free(host_.host, b);
    staging_.clear();
    staging_count_ = count;
  }
  if (staged_sends_ == staging_.size()) {
    void* p = nullptr;
    if (host_.alloc(host_.host, static_cast<size_t>(staging_count_) * sizeof(float), &p) != DFM_OK)
      throw Error(DFM_ERR_OUT_OF_MEMORY,
                  "pp: cannot allocate a message buffer of " + std::to_string(staging_count_ * 4) + " bytes");
    staging_.push_back(static_cast<float*>(p));
  }
  return staging_[staged_sends_++];
}

void PipelineLinks::transfer(const PipeAction& a, float* buffer, int64_t count) {
  using Kind = PipeAction::Kind;
  if (a.kind == Kind::Forward || a.kind == Kind::Backward)
    throw Error(DFM_ERR_INVALID_ARGUMENT, "pp: pipeline_transfer of a compute action");
  const size_t index = locate(a);
  const bool batches =
      host_.comm->struct_size >= DFM_COMM_V1_4_SIZE && host_.comm->batch_begin && host_.comm->batch_end;
  if (exchange_.empty() && batches) check_comm(host_.comm->batch_begin(pp_.group), "batch_begin");

  const int64_t tag = message_id(stages(), virtual_stages_, stage(), a);
  const bool sending = a.kind == Kind::SendActivation || a.kind == Kind::SendGradient;
  Posted m{nullptr, (sending ? "send " : "receive ") + to_string(a)};
  if (sending) {
    float* staged = send_staging(count);
    const size_t bytes = static_cast<size_t>(count) * sizeof(float);
    const dfm_status copied = host_.compute->copy(host_.compute_ctx, staged, buffer, bytes, DFM_COPY_DEVICE_TO_DEVICE);
    if (copied != DFM_OK) throw Error(copied, std::string("pp: staging a send: ") + host_.compute_last_error());
    check_comm(host_.comm->send(pp_.group, staged, count, a.peer, tag, &m.work), m.what);
  } else {
    check_comm(host_.comm->recv(pp_.group, buffer, count, a.peer, tag, &m.work), m.what);
  }
  exchange_.push_back(std::move(m));
  next_ = index + 1;
  if (!ends_exchange(schedule_, index)) return;

  if (batches) check_comm(host_.comm->batch_end(pp_.group), "batch_end");
  complete_exchange();
}

// Waits for every message of the exchange, in posting order.
void PipelineLinks::complete_exchange() {
  for (Posted& m : exchange_) wait(m.work, m.what);
  exchange_.clear();
  staged_sends_ = 0;
}

void PipelineLinks::flush() {
  using Kind = PipeAction::Kind;
  if (!exchange_.empty())
    throw Error(DFM_ERR_RUNTIME, "pp: the step ended in the middle of an exchange (" + exchange_.front().what + ")");
  for (size_t i = next_; i < schedule_.size(); ++i)
    if (schedule_[i].kind != Kind::Forward && schedule_[i].kind != Kind::Backward)
      throw Error(DFM_ERR_RUNTIME, "pp: the step ended before its transfer " + to_string(schedule_[i]));
  next_ = 0;
}

void PipelineLinks::reduce_tied_gradients(float* grad, int64_t count) {
  if (ends_.size < 2 || !ends_.group) return;  // a middle stage, or one stage holds both ends
  void* work = nullptr;
  check_comm(host_.comm->all_reduce(ends_.group, grad, count, DFM_REDUCE_SUM, &work), "tied-embedding all-reduce");
  wait(work, "tied-embedding all-reduce");
}

void PipelineLinks::all_reduce(float* data, int64_t count) {
  if (pp_.size < 2) return;
  void* work = nullptr;
  check_comm(host_.comm->all_reduce(pp_.group, data, count, DFM_REDUCE_SUM, &work), "all-reduce");
  wait(work, "all-reduce");
}

void PipelineLinks::broadcast(int32_t root, float* data, int64_t count) {
  if (pp_.size < 2) return;
  void* work = nullptr;
  check_comm(host_.comm->broadcast(pp_.group, data, count, root, &work), "broadcast");
  wait(work, "broadcast");
}

}  // namespace dfm::pp
