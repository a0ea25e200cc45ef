// The communication of pipeline parallel over the pp group: the activations
// and gradients that cross a stage boundary (point to point, tagged by
// pipeline_schedule.hpp's message_id so a send meets its receive in any
// order), the tied embedding's gradient over the first and last stages
// (DFM_GROUP_PP_ENDS), and the sums and broadcasts over every stage.
//
// A step's messages are posted so that none can wait on another: when the
// step's first transfer comes, every receive of the step's schedule is
// posted at once into a staging buffer of its own; sends are posted as the
// schedule reaches them, from a staging copy. Comm backends may complete a
// group's operations in posting order (the gloo plugin does, like an NCCL
// stream); posting a receive only when the schedule reaches it would then let
// an earlier send to a peer that is itself waiting hold it back — which
// deadlocks interleaved 1F1B. With every receive posted first, a receive
// waits only for its own send, which is the buffered-send model the schedule
// simulator proves deadlock-free. The cost is staging memory for one step's
// messages (2 m v boundary tensors at most), freed when the job ends.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/host.h"
#include "dfm/strategy.h"
#include "pipeline_schedule.hpp"

namespace dfm::pp {

class PipelineLinks {
 public:
  PipelineLinks(const dfm_host_services& host, int32_t virtual_stages);
  ~PipelineLinks();
  PipelineLinks(const PipelineLinks&) = delete;
  PipelineLinks& operator=(const PipelineLinks&) = delete;

  int32_t stage() const { return static_cast<int32_t>(pp_.index); }
  int32_t stages() const { return static_cast<int32_t>(pp_.size); }

  // The schedule whose receives the next steps post (pipeline_schedule's).
  void use_schedule(std::vector<PipeAction> schedule) { schedule_ = std::move(schedule); }
  // One transfer of the schedule; every transfer of a step has the same count.
  void transfer(const PipeAction& action, float* buffer, int64_t count);
  // The end of a step: every send completed, every receive consumed.
  void flush();
  void reduce_tied_gradients(float* grad, int64_t count);
  void all_reduce(float* data, int64_t count);
  void broadcast(int32_t stage, float* data, int64_t count);

 private:
  struct Message {
    int64_t tag = 0;
    float* staging = nullptr;  // this step's copy of the data
    void* work = nullptr;      // the posted send or receive, until waited for
  };
  void post_receives(int64_t count);
  float* staging(size_t index, int64_t count);
  void wait(void*& work, const char* what);
  void check_comm(dfm_status status, const std::string& what) const;

  const dfm_host_services& host_;
  int32_t virtual_stages_;
  dfm_group_info pp_{}, ends_{};
  std::vector<PipeAction> schedule_;
  int64_t step_count_ = 0;                     // floats per message this step; 0 between steps
  std::vector<Message> receives_, sends_;      // this step's
  std::vector<float*> buffers_;                // staging, reused step after step
  int64_t buffer_count_ = 0;                   // floats each staging buffer holds
};

}  // namespace dfm::pp
