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
  for (auto* list : {&receives_, &sends_})
    for (Message& m : *list)
      if (m.work) host_.comm->work_free(m.work);
  for (float* b : buffers_) host_.free(host_.host, b);
}

void PipelineLinks::check_comm(dfm_status status, const std::string& what) const {
  if (status != DFM_OK)
    throw Error(status, "pp: " + what + " over the pp group failed: " +
                            (host_.comm_last_error ? host_.comm_last_error() : "comm failed"));
}

void PipelineLinks::wait(void*& work, const char* what) {
  const dfm_status status = host_.comm->work_wait(work, -1);
  host_.comm->work_free(work);
  work = nullptr;
  check_comm(status, what);
}

// Staging buffer `index` of this step, each `count` floats.
float* PipelineLinks::staging(size_t index, int64_t count) {
  if (count > buffer_count_) {  // a larger message than before: start the pool afresh
    for (float* b : buffers_) host_.free(host_.host, b);
    buffers_.clear();
    buffer_count_ = count;
  }
  while (buffers_.size() <= index) {
    void* p = nullptr;
    if (host_.alloc(host_.host, static_cast<size_t>(buffer_count_) * sizeof(float), &p) != DFM_OK)
      throw Error(DFM_ERR_OUT_OF_MEMORY,
                  "pp: cannot allocate a message buffer of " + std::to_string(buffer_count_ * 4) + " bytes");
    buffers_.push_back(static_cast<float*>(p));
  }
  return buffers_[index];
}

void PipelineLinks::post_receives(int64_t count) {
  using Kind = PipeAction::Kind;
  step_count_ = count;
  for (const PipeAction& a : schedule_) {
    if (a.kind != Kind::RecvActivation && a.kind != Kind::RecvGradient) continue;
    Message m{message_id(stages(), virtual_stages_, stage(), a), staging(receives_.size(), count), nullptr};
    check_comm(host_.comm->recv(pp_.group, m.staging, count, a.peer, m.tag, &m.work),
               "receive from stage " + std::to_string(a.peer));
    receives_.push_back(m);
  }
}

void PipelineLinks::transfer(const PipeAction& a, float* buffer, int64_t count) {
  using Kind = PipeAction::Kind;
  if (a.kind == Kind::Forward || a.kind == Kind::Backward)
    throw Error(DFM_ERR_INVALID_ARGUMENT, "pp: pipeline_transfer of a compute action");
  if (step_count_ == 0) post_receives(count);
  if (count != step_count_)
    throw Error(DFM_ERR_INVALID_ARGUMENT, "pp: a transfer of " + std::to_string(count) + " floats in a step of " +
                                              std::to_string(step_count_) + "-float messages");
  const int64_t tag = message_id(stages(), virtual_stages_, stage(), a);
  const size_t bytes = static_cast<size_t>(count) * sizeof(float);
  if (a.kind == Kind::SendActivation || a.kind == Kind::SendGradient) {
    Message m{tag, staging(receives_.size() + sends_.size(), count), nullptr};
    const dfm_status copied = host_.compute->copy(host_.compute_ctx, m.staging, buffer, bytes, DFM_COPY_DEVICE_TO_DEVICE);
    if (copied != DFM_OK) throw Error(copied, std::string("pp: staging a send: ") + host_.compute_last_error());
    check_comm(host_.comm->send(pp_.group, m.staging, count, a.peer, tag, &m.work),
               "send to stage " + std::to_string(a.peer));
    sends_.push_back(m);
    return;
  }
  for (Message& m : receives_) {
    if (m.tag != tag) continue;
    if (!m.work) throw Error(DFM_ERR_INVALID_ARGUMENT, "pp: message " + std::to_string(tag) + " received twice");
    wait(m.work, "receive");
    const dfm_status copied = host_.compute->copy(host_.compute_ctx, buffer, m.staging, bytes, DFM_COPY_DEVICE_TO_DEVICE);
    if (copied != DFM_OK) throw Error(copied, std::string("pp: delivering a message: ") + host_.compute_last_error());
    return;
  }
  throw Error(DFM_ERR_INVALID_ARGUMENT, "pp: a receive that is not in the schedule (message " + std::to_string(tag) + ")");
}

void PipelineLinks::flush() {
  for (Message& m : sends_) wait(m.work, "send");
  for (const Message& m : receives_)
    if (m.work) throw Error(DFM_ERR_RUNTIME, "pp: the step ended with message " + std::to_string(m.tag) + " unreceived");
  sends_.clear();
  receives_.clear();
  step_count_ = 0;
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
