/*
 * Services the dfm host gives every plugin, so that a plugin links nothing
 * from the core: logging, read access to the job's configuration, the device
 * mesh, and error reporting that points at the offending config line.
 *
 * The host fills one dfm_host_services per loaded plugin and passes it to the
 * plugin's init. It stays valid until the process exits. Every function takes
 * `services->host` as its first argument (an opaque pointer the plugin never
 * looks into). Fields are appended in later minors; check struct_size before
 * using a field beyond DFM_HOST_SERVICES_V1_SIZE.
 */
#ifndef DFM_HOST_H
#define DFM_HOST_H

#include "dfm/abi.h"
#include "dfm/comm.h"
#include "dfm/compute.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dfm_log_level {
  DFM_LOG_DEBUG = 0, /* shown with -v 1 or GLOG_v=1 */
  DFM_LOG_INFO = 1,
  DFM_LOG_WARNING = 2,
  DFM_LOG_ERROR = 3
} dfm_log_level;

/* Mesh axes, in rank order: tp varies fastest, pp slowest.
 * rank = tp_i + tp*(cp_i + cp*(dp_i + dp*pp_i)). */
typedef enum dfm_axis {
  DFM_AXIS_TP = 0,
  DFM_AXIS_CP = 1,
  DFM_AXIS_DP = 2,
  DFM_AXIS_PP = 3,
  DFM_AXIS_COUNT = 4
} dfm_axis;

typedef enum dfm_value_type {
  DFM_VALUE_NONE = 0, /* key absent and without default */
  DFM_VALUE_BOOL = 1,
  DFM_VALUE_INT = 2,
  DFM_VALUE_FLOAT = 3,
  DFM_VALUE_STRING = 4,
  DFM_VALUE_INT_ARRAY = 5,
  DFM_VALUE_STRING_ARRAY = 6
} dfm_value_type;

/* A configuration value. Strings and arrays are owned by the host and stay
 * valid until the process exits. */
typedef struct dfm_value {
  size_t struct_size;
  dfm_value_type type;
  int32_t is_default;       /* 1 when the config file left the key out */
  int64_t as_int;           /* DFM_VALUE_INT, and BOOL as 0/1 */
  double as_float;          /* DFM_VALUE_FLOAT, and INT converted */
  const char* as_string;    /* DFM_VALUE_STRING */
  const int64_t* int_items; /* DFM_VALUE_INT_ARRAY */
  const char* const* string_items; /* DFM_VALUE_STRING_ARRAY */
  size_t item_count;        /* both array types */
} dfm_value;

/* Process groups of the mesh a plugin may communicate on. */
typedef enum dfm_group_kind {
  DFM_GROUP_TP = 0,
  DFM_GROUP_CP = 1,
  DFM_GROUP_DP = 2,
  DFM_GROUP_PP = 3,
  DFM_GROUP_DP_CP = 4,   /* the ranks that see the same weights but other tokens
                          * (data x context parallel): gradients are reduced
                          * over it. Equals the dp group when cp is 1, the cp
                          * group when dp is 1. */
  DFM_GROUP_PP_ENDS = 5  /* first and last pipeline stage (tied embedding) */
} dfm_group_kind;

typedef struct dfm_group_info {
  size_t struct_size;
  void* group;      /* pass to the dfm_comm_v1 functions; NULL when size is 1 */
  int64_t size;     /* members */
  int64_t index;    /* this rank's position in the group */
} dfm_group_info;

#define DFM_GROUP_INFO_V1_SIZE DFM_STRUCT_SIZE(dfm_group_info, index)

typedef struct dfm_host_services {
  size_t struct_size;
  void* host; /* opaque; pass back as the first argument of every call */

  /* The dotted path of this plugin's own options table, e.g. "strategy.tp"
   * or "backend.cpu". Owned by the host. */
  const char* options_table;

  /* Writes one line to the job log, prefixed with the rank and the plugin's
   * name. `message` is copied; the plugin keeps ownership. */
  void (*log)(void* host, dfm_log_level level, const char* message);

  /* Reads any configuration key by its dotted path ("model.n_head",
   * "strategy.tp.sequence_parallel"), after defaults and --set overrides.
   * Returns DFM_OK and fills *out, or DFM_ERR_INVALID_ARGUMENT for a key the
   * config schema does not know (*out->type is then DFM_VALUE_NONE). The
   * caller sets out->struct_size. */
  dfm_status (*get_config)(void* host, const char* key, dfm_value* out);

  /* Records a configuration error about `key` (a dotted path). The host
   * prints it as "file:line:col: key: message" with the key's position in the
   * job file, so the plugin need not know where the key came from. The plugin
   * then returns DFM_ERR_CONFIG from the call that found the problem.
   * `message` says what was wrong and what was expected, with the numbers
   * ("12 heads do not divide by tp_size 5"). */
  void (*report_config_error)(void* host, const char* key, const char* message);

  /* The mesh of the running job. Before the processes exist (validation,
   * --dry-run) the sizes are known and the rank calls return -1. */
  int64_t (*world_size)(void* host);
  int64_t (*rank)(void* host);
  int64_t (*axis_size)(void* host, dfm_axis axis);
  int64_t (*axis_rank)(void* host, dfm_axis axis);

  /* ---- execution services: NULL until the job runs (validation and
   * --dry-run have none) ---- */
  /* The job's compute backend and its context: kernels and copies on the
   * device that holds the model. */
  const dfm_compute_v1* compute;
  void* compute_ctx;
  /* The compute plugin's last_error (its descriptor's), for its failed calls. */
  const char* (*compute_last_error)(void);
  /* Device memory counted in the job's memory metrics (peak bytes per rank);
   * use these rather than compute->alloc so the numbers are measured. */
  dfm_status (*alloc)(void* host, size_t bytes, void** ptr);
  void (*free)(void* host, void* ptr);
  /* The job's communication backend and its process groups. comm is NULL in
   * a single-process job. */
  const dfm_comm_v1* comm;
  const char* (*comm_last_error)(void);
  dfm_status (*get_group)(void* host, dfm_group_kind kind, dfm_group_info* out);
  /* Adds `value` to the step metric `name` ([a-z0-9_]+), reported in
   * metrics.jsonl under "strategy" as "<plugin>.<name>" and reset each step
   * (e.g. fsdp2's comm_wait_ms: time the step waited for its collectives). */
  void (*add_metric)(void* host, const char* name, double value);
} dfm_host_services;

#define DFM_HOST_SERVICES_V1_SIZE DFM_STRUCT_SIZE(dfm_host_services, axis_rank)
#define DFM_HOST_SERVICES_V1_EXECUTION_SIZE DFM_STRUCT_SIZE(dfm_host_services, add_metric)

#ifdef __cplusplus
}
#endif

#endif /* DFM_HOST_H */
