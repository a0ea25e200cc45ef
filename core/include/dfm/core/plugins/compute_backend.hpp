// C++ view of a compute plugin for the core: checks every status and turns a
// failure into an exception carrying the plugin's message, and owns device
// memory through DeviceBuffer (RAII) so nothing leaks on an error path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dfm/abi.h"
#include "dfm/compute.h"

namespace dfm {

struct LoadedPlugin;

// Whether a compute table has ABI 1.5's typed kernels, which activations other than fp32 need.
bool offers_typed_kernels(const dfm_compute_v1& table);

class ComputeBackend {
 public:
  // `plugin` must be a loaded compute plugin; threads 0 = all cores.
  // `activations` is the storage of the kernels' [act] arguments (compute.h);
  // anything but fp32 needs a backend of ABI 1.5 that offers it.
  ComputeBackend(const LoadedPlugin& plugin, int64_t threads, int64_t device_index,
                 dfm_precision precision = DFM_PRECISION_FP32, dfm_dtype activations = DFM_DTYPE_FP32);
  ~ComputeBackend();
  ComputeBackend(const ComputeBackend&) = delete;
  ComputeBackend& operator=(const ComputeBackend&) = delete;

  const dfm_compute_v1& table() const { return *table_; }
  void* ctx() const { return ctx_; }
  // The backend's native stream (compute.h native_stream, ABI 1.2) for the
  // comm groups: NULL for a host backend, and for one whose table predates
  // the slot or leaves it NULL.
  void* native_stream() const;
  const std::string& name() const { return name_; }
  const char* (*last_error_function() const)(void) { return descriptor_->last_error; }

  // Throws std::runtime_error "compute backend 'cpu': <what>: <plugin message>" unless status is DFM_OK.
  void check(dfm_status status, const char* what) const;

  void* alloc(size_t bytes);
  void free(void* ptr) noexcept;
  // Device bytes allocated through this backend (by the core and, through the
  // host services, by strategies) now, and at most since the last reset.
  int64_t allocated_bytes() const;
  int64_t allocated_peak_bytes() const;
  void reset_allocated_peak();
  void synchronize();
  void upload(void* device_dst, const void* host_src, size_t bytes);
  void download(void* host_dst, const void* device_src, size_t bytes);
  void copy(void* device_dst, const void* device_src, size_t bytes);
  void fill(float* dst, float value, int64_t count);

  // ---- activations, in the dtype the context was created with ----
  dfm_dtype activation_dtype() const { return activations_; }
  size_t activation_size() const;  // bytes of one activation
  // `act` moved on by `elements` activations (the kernels' [act] arguments are float*).
  float* activation_at(const float* act, int64_t elements) const {
    return reinterpret_cast<float*>(const_cast<char*>(reinterpret_cast<const char*>(act)) +
                                    elements * static_cast<int64_t>(activation_size()));
  }
  void fill_activations(float* dst, float value, int64_t count);
  // out = a + b; out may alias a or b.
  void add_activations(float* out, const float* a, const float* b, int64_t count);
  // `count` activations into fp32 (a plain copy when the activations are fp32).
  void activations_to_fp32(float* dst, const float* act, int64_t count);
  // matmul with a fused epilogue (compute.h matmul_epilogue, ABI 1.3). A
  // backend without the slot gets matmul and the separate kernels (the same
  // result); that path needs C and aux dense (ldc = ld_aux = n).
  void matmul_epilogue(const dfm_matmul_desc& desc, const dfm_matmul_epilogue& epilogue);

 private:
  const dfm_plugin_descriptor* descriptor_ = nullptr;
  const dfm_compute_v1* table_ = nullptr;
  void* ctx_ = nullptr;
  std::string name_;
  dfm_dtype activations_ = DFM_DTYPE_FP32;
  // Sizes of the live allocations: free() is told only the pointer. Guarded,
  // since a strategy may allocate from its own threads.
  mutable std::mutex allocations_mutex_;
  std::unordered_map<void*, size_t> allocations_;
  int64_t allocated_ = 0, allocated_peak_ = 0;
};

// Device memory of `count` elements of T, freed with its backend.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // count 0 allocates nothing (data() is null).
  DeviceBuffer(ComputeBackend& backend, int64_t count)
      : backend_(&backend),
        count_(count),
        data_(count > 0 ? static_cast<T*>(backend.alloc(static_cast<size_t>(count) * sizeof(T))) : nullptr) {}
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      backend_ = std::exchange(o.backend_, nullptr);
      count_ = std::exchange(o.count_, 0);
      data_ = std::exchange(o.data_, nullptr);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() const { return data_; }
  int64_t count() const { return count_; }
  size_t bytes() const { return static_cast<size_t>(count_) * sizeof(T); }

  void upload(std::span<const T> host) { backend_->upload(data_, host.data(), host.size_bytes()); }
  std::vector<T> download() const {
    std::vector<T> host(static_cast<size_t>(count_));
    backend_->download(host.data(), data_, bytes());
    return host;
  }

 private:
  void reset() noexcept {
    if (backend_ && data_) backend_->free(data_);
    data_ = nullptr;
  }
  ComputeBackend* backend_ = nullptr;
  int64_t count_ = 0;
  T* data_ = nullptr;
};

// Device memory for `count` activations in the backend's activation dtype.
class ActivationBuffer {
 public:
  ActivationBuffer() = default;
  ActivationBuffer(ComputeBackend& backend, int64_t count)
      : backend_(&backend), bytes_(backend, count * static_cast<int64_t>(backend.activation_size())) {}

  // The buffer as the kernels' [act] arguments take it.
  float* data() const { return reinterpret_cast<float*>(bytes_.data()); }
  // Activation `element` of the buffer.
  float* at(int64_t element) const { return backend_->activation_at(data(), element); }
  size_t bytes() const { return bytes_.bytes(); }

 private:
  ComputeBackend* backend_ = nullptr;
  DeviceBuffer<std::byte> bytes_;
};

}  // namespace dfm
