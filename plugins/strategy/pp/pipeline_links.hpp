// The communication of pipeline parallel over the pp group: the activations
// and gradients that cross a stage boundary (point to point), the tied
// embedding's gradient over the first and last stages (DFM_GROUP_PP_ENDS),
// and the sums and broadcasts over every stage.
//
// Point-to-point messages go out in the schedule's exchanges (the runs of
// transfers between computes, pipeline_schedule.hpp). Each transfer is posted
// when the host reaches it — a send from a staging copy, so the core's buffer
// is its own again on return; a receive straight into the core's buffer —
// and the exchange's last transfer waits for all of its messages. So a
// receive's data is in place when its exchange ends, before the next compute
// (strategy.h, pipeline_transfer). It is one protocol for every comm backend:
//   - nccl runs an exchange as one group call (it holds sends back until a
//     receive or a wait comes, then issues them together), and the waits
//     order the compute stream after the messages without blocking the host;
//   - gloo posts at once and the waits block until the messages are done.
// A send thus waits for its receiver's exchange, as a blocking NCCL group
// does; the schedule simulator proves every schedule deadlock-free under that
// model, where a rank's operations run in posting order. Tags carry
// message_id, which gloo matches on; NCCL matches a pair's messages in
// posting order instead, which the schedules keep consistent (checked by the
// simulator too). Staging memory: one buffer per send of an exchange (at most
// two), reused exchange after exchange and freed when the job ends.
#pragma once

#include <cstdint>
#include <string>
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

  // The schedule the next steps run (pipeline_schedule's), whose exchanges
  // the transfers are grouped by.
  void use_schedule(std::vector<PipeAction> schedule);
  // One transfer of the schedule, in schedule order.
  void transfer(const PipeAction& action, float* buffer, int64_t count);
  // The end of a step: every exchange completed, every transfer made.
  void flush();
  void reduce_tied_gradients(float* grad, int64_t count);
  void all_reduce(float* data, int64_t count);
  void broadcast(int32_t stage, float* data, int64_t count);

 private:
  struct Posted {
    void* work = nullptr;  // the send or receive, until waited for
    std::string what;      // "send SA(3,0)>1", for errors
  };
  size_t locate(const PipeAction& action) const;
  float* send_staging(int64_t count);
  void complete_exchange();
  void wait(void*& work, const std::string& what);
  void check_comm(dfm_status status, const std::string& what) const;

  const dfm_host_services& host_;
  int32_t virtual_stages_;
  dfm_group_info pp_{}, ends_{};
  std::vector<PipeAction> schedule_;
  size_t next_ = 0;               // index in schedule_ after the last transfer made this step
  std::vector<Posted> exchange_;  // the messages of the exchange in progress
  size_t staged_sends_ = 0;       // staging buffers in use by exchange_'s sends
  std::vector<float*> staging_;   // reused exchange after exchange
  int64_t staging_count_ = 0;     // floats each staging buffer holds
};

}  // namespace dfm::pp
