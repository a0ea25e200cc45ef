/*
 * dfm plugin ABI, version 1 — the part every plugin kind shares.
 *
 * A plugin is a shared object that exports exactly one symbol, the entry point
 * named by DFM_PLUGIN_ENTRY_SYMBOL, which returns a pointer to a constant
 * descriptor. Everything else the plugin offers is reached through tables of
 * function pointers hanging off that descriptor. The rules (see docs/plugins.md):
 *
 *  1. Only C types cross the boundary: opaque handles, NUL-terminated UTF-8
 *     strings, POD structs and function pointers. No C++ type and no exception
 *     ever crosses it; every function that can fail returns a dfm_status and
 *     leaves a message that the caller reads with the descriptor's last_error.
 *  2. Every struct that crosses starts with `size_t struct_size`, set by whoever
 *     fills the struct to sizeof() of the version it was compiled against.
 *     Fields are only ever appended. A reader accepts any struct_size at least
 *     the size it requires (DFM_*_V1_SIZE below) and never reads past
 *     struct_size, so old plugins keep working with new hosts and vice versa.
 *  3. A NULL function pointer in a table means "not supported"; the host says so
 *     by name instead of crashing.
 *  4. Whoever allocates frees: the host frees nothing a plugin allocated and the
 *     plugin frees nothing the host allocated.
 *  5. abi_major changes only when an existing field changes meaning; the host
 *     refuses a plugin of a different major. abi_minor grows when fields are
 *     appended; a plugin built against an older minor still loads.
 */
#ifndef DFM_ABI_H
#define DFM_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DFM_ABI_MAJOR 1
#define DFM_ABI_MINOR 7

/* The entry point's name carries the major version, so a loader of another
 * major does not even find it by mistake. */
#define DFM_PLUGIN_ENTRY_SYMBOL "dfm_plugin_entry_v1"

#if defined(_WIN32)
#define DFM_PLUGIN_EXPORT __declspec(dllexport)
#else
#define DFM_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Size of a struct up to and including `last_field`: what a reader requires. */
#define DFM_STRUCT_SIZE(type, last_field) \
  (offsetof(type, last_field) + sizeof(((type*)0)->last_field))

typedef enum dfm_status {
  DFM_OK = 0,
  DFM_ERR_INVALID_ARGUMENT = 1, /* a caller passed something out of contract */
  DFM_ERR_UNSUPPORTED = 2,      /* the operation or shape is not offered */
  DFM_ERR_OUT_OF_MEMORY = 3,
  DFM_ERR_CONFIG = 4,           /* the job's configuration is wrong; see host report_config_error */
  DFM_ERR_RUNTIME = 5,          /* anything else that went wrong while running */
  DFM_ERR_TIMEOUT = 6,
  DFM_ERR_UNAVAILABLE = 7       /* the plugin cannot work here (no device, no driver) */
} dfm_status;

typedef enum dfm_plugin_kind {
  DFM_PLUGIN_STRATEGY = 1, /* a parallelism strategy: strategy.h */
  DFM_PLUGIN_COMPUTE = 2,  /* a compute backend: compute.h */
  DFM_PLUGIN_COMM = 3      /* a communication backend: comm.h */
} dfm_plugin_kind;

struct dfm_host_services; /* host.h */

/*
 * What the entry point returns. The plugin owns it; it must stay valid and
 * unchanged until the process exits (the host never unloads a plugin).
 */
typedef struct dfm_plugin_descriptor {
  size_t struct_size;
  uint16_t abi_major;      /* DFM_ABI_MAJOR the plugin was built with */
  uint16_t abi_minor;      /* DFM_ABI_MINOR the plugin was built with */
  dfm_plugin_kind kind;
  const char* name;        /* unique per kind, [a-z0-9_]+, e.g. "tp", "cpu", "gloo" */
  const char* version;     /* the plugin's own version, free text, e.g. "1.2.0" */
  const char* description; /* one line for --list-plugins; may be NULL */

  /* Called once, after the descriptor was accepted and before anything else.
   * `host` stays valid until exit. A plugin that cannot work on this machine
   * (a GPU plugin without a device) returns DFM_ERR_UNAVAILABLE with a reason
   * in last_error; the host then lists it as unavailable and never calls it
   * again. May be NULL when there is nothing to initialise. */
  dfm_status (*init)(const struct dfm_host_services* host);

  /* Message of the last failed call made on the calling thread, or "" when
   * none. Owned by the plugin; valid until the next call into the plugin on
   * the same thread. Must not be NULL. */
  const char* (*last_error)(void);

  /* The kind's own table: const dfm_strategy_v1*, const dfm_compute_v1* or
   * const dfm_comm_v1*, chosen by `kind`. Same lifetime as the descriptor. */
  const void* table;
} dfm_plugin_descriptor;

#define DFM_PLUGIN_DESCRIPTOR_V1_SIZE DFM_STRUCT_SIZE(dfm_plugin_descriptor, table)

/* The one symbol a plugin exports. Returns NULL only if the plugin cannot
 * describe itself at all (the host reports "entry returned NULL"). */
typedef const dfm_plugin_descriptor* (*dfm_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* DFM_ABI_H */
