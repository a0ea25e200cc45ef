/*
 * Communication backend plugins: collectives over process groups.
 * First-party backends: "gloo" (CPU) and "nccl" (GPU).
 *
 * The host creates one communicator per process group (each mesh axis and the
 * combined groups, see docs/plugins.md) by calling group_create on every member
 * rank with the same `group_name`. Backends exchange addresses and ids through
 * the key-value store functions in `dfm_comm_rendezvous` (backed by the core's
 * rendezvous store), never through their own side channel.
 *
 * Operations are asynchronous: each returns a work handle that the caller
 * waits for with work_wait and then frees with work_free. A wait that times
 * out returns DFM_ERR_TIMEOUT and names, in last_error, the group, the
 * operation, its sequence number in that group and the ranks that did not
 * join. Buffers are device pointers of the matching compute backend and must
 * stay untouched until the work completed; on a stream-ordered backend (see
 * compute_stream) that means until work_wait returned: compute work issued
 * after it runs after the operation, work issued between the two does not.
 */
#ifndef DFM_COMM_H
#define DFM_COMM_H

#include "dfm/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dfm_reduce_op { DFM_REDUCE_SUM = 0, DFM_REDUCE_MAX = 1 } dfm_reduce_op;

/* Key-value store for rendezvous, served by rank 0 (the role of PyTorch's
 * TCPStore). Values are bytes; get blocks until the key exists or the
 * timeout passes, then returns DFM_ERR_TIMEOUT. Either returns
 * DFM_ERR_RUNTIME when the store itself failed: it did not answer (rank 0
 * is stopped) or the connection to it is lost. Owned by the host; it stays
 * valid until group_destroy of every group using it returned. set and get
 * may be called from any thread, concurrently: backends call them from
 * their own threads (e.g. gloo publishes each rank's progress). */
typedef struct dfm_comm_rendezvous {
  size_t struct_size;
  void* store;
  dfm_status (*set)(void* store, const char* key, const void* value, size_t size);
  /* Copies at most `capacity` bytes into value, stores the full size in *size. */
  dfm_status (*get)(void* store, const char* key, void* value, size_t capacity, size_t* size,
                    int64_t timeout_ms);
} dfm_comm_rendezvous;

#define DFM_COMM_RENDEZVOUS_V1_SIZE DFM_STRUCT_SIZE(dfm_comm_rendezvous, get)

typedef struct dfm_comm_group_desc {
  size_t struct_size;
  const char* group_name;     /* unique in the job, e.g. "tp/3" */
  const int64_t* ranks;       /* global ranks of the members, in group order */
  int64_t size;
  int64_t my_index;           /* this rank's position in `ranks` */
  const dfm_comm_rendezvous* rendezvous;
  int64_t timeout_ms;         /* [backend] comm_timeout_s, for every operation */
  void* compute_ctx;          /* the compute backend's context (opaque to the comm backend) */
  /* ABI 1.2: the stream the compute backend runs its kernels on, in order
   * (compute.h native_stream; a cudaStream_t for "cuda"); NULL for a host
   * backend, or from a host older than 1.2 (struct_size stops before it).
   * A GPU comm backend orders each operation after the work issued on this
   * stream before it, and work_wait makes the work issued on it afterwards
   * wait for the operation instead of blocking the host. The compute context
   * outlives the group. */
  void* compute_stream;
} dfm_comm_group_desc;

#define DFM_COMM_GROUP_DESC_V1_SIZE DFM_STRUCT_SIZE(dfm_comm_group_desc, compute_ctx)
/* Reaches compute_stream (ABI 1.2). */
#define DFM_COMM_GROUP_DESC_V1_2_SIZE DFM_STRUCT_SIZE(dfm_comm_group_desc, compute_stream)

typedef struct dfm_comm_v1 {
  size_t struct_size;

  /* Creates this rank's end of a group; blocks until every member joined or
   * the timeout passed. *group is owned by the plugin until group_destroy,
   * which lets the operations already issued finish first (after abort it
   * returns at once). Work handles stay valid after group_destroy. */
  dfm_status (*group_create)(const dfm_comm_group_desc* desc, void** group);
  void (*group_destroy)(void* group);

  /* Collectives on fp32 buffers; `count` in elements. Each returns a work
   * handle in *work (owned by the plugin until work_free). */
  /* buf = reduce(buf over the group), in place. */
  dfm_status (*all_reduce)(void* group, float* buf, int64_t count, dfm_reduce_op op, void** work);
  /* out (count elements) = sum over the group of in[my_index*count ..]; in has size*count. */
  dfm_status (*reduce_scatter)(void* group, const float* in, float* out, int64_t count, void** work);
  /* out (size*count elements) = concat over the group of in (count elements). */
  dfm_status (*all_gather)(void* group, const float* in, float* out, int64_t count, void** work);
  /* buf of the member at `root` (group index) is copied to every member. */
  dfm_status (*broadcast)(void* group, float* buf, int64_t count, int64_t root, void** work);
  /* Point-to-point with the member at group index `peer`; `tag`
   * (0..2^32-1) names the message. gloo matches a send with the recv of the
   * same tag, whatever the order they were posted in; nccl matches a pair's
   * messages in posting order (NCCL has no tags) and names the tag in
   * errors only. Portable callers post each pair's messages in the same
   * order on both sides, with the tags that order gives. */
  dfm_status (*send)(void* group, const float* buf, int64_t count, int64_t peer, int64_t tag, void** work);
  dfm_status (*recv)(void* group, float* buf, int64_t count, int64_t peer, int64_t tag, void** work);
  dfm_status (*barrier)(void* group, void** work);

  /* Waits for one operation. timeout_ms < 0 waits until it finished or
   * failed (the group's timeout bounds every operation); a wait of
   * timeout_ms >= 0 that passes first returns DFM_ERR_TIMEOUT and leaves the
   * operation running, to be waited for again.
   * Stream-ordered backends (ABI 1.2, a desc with compute_stream): a wait
   * with timeout_ms < 0 may instead return DFM_OK as soon as the work issued
   * on the compute stream afterwards is ordered after the operation, without
   * blocking the host; reading the result on the host then goes through the
   * compute backend (copy to the host and synchronize). A failure found
   * later is returned by the group's next operations. A barrier's wait
   * always blocks the host until every member arrived, and so does a wait
   * with timeout_ms >= 0 that returns DFM_OK. */
  dfm_status (*work_wait)(void* work, int64_t timeout_ms);
  void (*work_free)(void* work);

  /* Aborts every pending operation of the group so a failing rank does not
   * leave its peers hanging; the group is unusable afterwards. */
  void (*abort)(void* group);

  /* Bytes this rank has sent in the group since it was created. */
  uint64_t (*bytes_sent)(void* group);

  /* ---- ABI 1.4: batches of point-to-point messages ----
   * The send and recv calls between batch_begin and batch_end go out as one
   * unit whose messages progress together, like an NCCL group call
   * (ncclGroupStart/End) or PyTorch's batch_isend_irecv. A backend that runs
   * a group's operations one after another (NCCL) needs it when a rank's
   * messages each wait for a different peer's: a pipeline stage that sends
   * to its successor and receives from it while the successor does the
   * same. Inside a batch only send and recv may be called; their works are
   * waited for after batch_end (a work_wait or a collective inside fails
   * with DFM_ERR_INVALID_ARGUMENT), and batches do not nest. A backend
   * whose posting never blocks and whose messages complete each on its own
   * (gloo) leaves both slots NULL, and callers then just post. */
  dfm_status (*batch_begin)(void* group);
  dfm_status (*batch_end)(void* group);
} dfm_comm_v1;

#define DFM_COMM_V1_SIZE DFM_STRUCT_SIZE(dfm_comm_v1, bytes_sent)
/* Reaches batch_begin and batch_end (ABI 1.4). */
#define DFM_COMM_V1_4_SIZE DFM_STRUCT_SIZE(dfm_comm_v1, batch_end)

#ifdef __cplusplus
}
#endif

#endif /* DFM_COMM_H */
