// One plugin source for the loader tests, built many times by
// tests/plugins/CMakeLists.txt. DFM_TEST_KIND picks the kind; at most one
// DFM_TEST_DEFECT_* macro breaks the plugin in exactly one way, so each build
// exercises exactly one refusal of the registry.
#include <cstddef>
#include <string>

#include "dfm/comm.h"
#include "dfm/compute.h"
#include "dfm/sdk.hpp"
#include "dfm/strategy.h"

#ifndef DFM_TEST_KIND
#error "DFM_TEST_KIND must be DFM_PLUGIN_STRATEGY, DFM_PLUGIN_COMPUTE or DFM_PLUGIN_COMM"
#endif
#ifndef DFM_TEST_NAME
#error "DFM_TEST_NAME must name the plugin"
#endif

namespace {

dfm::sdk::Host host;

const dfm_option_spec kOptions[] = {
    {sizeof(dfm_option_spec), "level", DFM_VALUE_INT, "1", "a test option"},
    {sizeof(dfm_option_spec), "mode", DFM_VALUE_STRING, "\"a\"", "another test option"},
};

dfm_status init(const dfm_host_services* services) {
  host = dfm::sdk::Host(services);
#if defined(DFM_TEST_DEFECT_INIT_FAILS)
  return dfm::sdk::fail(DFM_ERR_RUNTIME, "cannot open /dev/dfm_test_device");
#elif defined(DFM_TEST_DEFECT_INIT_UNAVAILABLE)
  return dfm::sdk::fail(DFM_ERR_UNAVAILABLE, "no dfm test device on this machine");
#else
  host.log(DFM_LOG_DEBUG, "test plugin initialised");
  return DFM_OK;
#endif
}

dfm_status validate(const dfm_job_shape*) { return DFM_OK; }

dfm_strategy_v1 make_strategy() {
  dfm_strategy_v1 t{};
  t.struct_size = sizeof t;
  t.axis = DFM_AXIS_DP;
  t.options = kOptions;
  t.option_count = sizeof kOptions / sizeof kOptions[0];
  t.validate = validate;
#if defined(DFM_TEST_DEFECT_SMALL_TABLE)
  t.struct_size = offsetof(dfm_strategy_v1, destroy);  // as if built before destroy existed
#elif defined(DFM_TEST_DEFECT_NULL_VALIDATE)
  t.validate = nullptr;
#elif defined(DFM_TEST_DEFECT_BAD_AXIS)
  t.axis = static_cast<dfm_axis>(9);
#endif
  return t;
}

// Backend tables: only struct_size is set; every kernel slot is NULL ("not
// supported"), which is all the loader looks at.
template <typename Table>
Table make_backend() {
  Table t{};
  t.struct_size = sizeof t;
#if defined(DFM_TEST_DEFECT_SMALL_TABLE)
  t.struct_size = sizeof(size_t);
#endif
  return t;
}

#if defined(DFM_TEST_DEFECT_SMALL_OPTION_SPEC)
// Options whose specs claim to be smaller than ABI 1.0's (no help field).
const dfm_option_spec kShortOptions[] = {{offsetof(dfm_option_spec, help), "level", DFM_VALUE_INT, "1", nullptr}};
#endif

const dfm_strategy_v1 kStrategy = [] {
  dfm_strategy_v1 t = make_strategy();
#if defined(DFM_TEST_DEFECT_SMALL_OPTION_SPEC)
  t.options = kShortOptions;
  t.option_count = 1;
#endif
  return t;
}();
const dfm_compute_v1 kCompute = make_backend<dfm_compute_v1>();
const dfm_comm_v1 kComm = make_backend<dfm_comm_v1>();

const void* kind_table() {
#if defined(DFM_TEST_DEFECT_NULL_TABLE)
  return nullptr;
#else
  switch (DFM_TEST_KIND) {
    case DFM_PLUGIN_STRATEGY: return &kStrategy;
    case DFM_PLUGIN_COMPUTE: return &kCompute;
    case DFM_PLUGIN_COMM: return &kComm;
  }
  return nullptr;
#endif
}

const dfm_plugin_descriptor kDescriptor = [] {
  dfm_plugin_descriptor d{};
  d.struct_size = sizeof d;
  d.abi_major = DFM_ABI_MAJOR;
  d.abi_minor = DFM_ABI_MINOR;
  d.kind = DFM_TEST_KIND;
  d.name = DFM_TEST_NAME;
  d.version = "0.7.1";
  d.description = "loader test plugin (" DFM_TEST_NAME ")";
  d.init = init;
  d.last_error = dfm::sdk::last_error;
  d.table = kind_table();
#if defined(DFM_TEST_DEFECT_SMALL_DESCRIPTOR)
  d.struct_size = offsetof(dfm_plugin_descriptor, table);  // as if built without the table field
#elif defined(DFM_TEST_DEFECT_ABI_MAJOR_2)
  d.abi_major = 2;
  d.abi_minor = 3;
#elif defined(DFM_TEST_DEFECT_BAD_KIND)
  d.kind = static_cast<dfm_plugin_kind>(42);
#endif
  return d;
}();

}  // namespace

#if defined(DFM_TEST_DEFECT_NULL_ENTRY)
extern "C" DFM_PLUGIN_EXPORT const dfm_plugin_descriptor* dfm_plugin_entry_v1(void) { return nullptr; }
#elif defined(DFM_TEST_DEFECT_NO_ENTRY)
// An entry under the wrong name, as a plugin of another ABI generation would have it.
extern "C" DFM_PLUGIN_EXPORT const dfm_plugin_descriptor* dfm_plugin_entry_v0(void) { return &kDescriptor; }
#else
DFM_DEFINE_PLUGIN_ENTRY(kDescriptor)
#endif
