#include "dfm/core/plugins/compute_backend.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "dfm/compute_checks.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {

bool offers_typed_kernels(const dfm_compute_v1& table) {
  return table.struct_size >= DFM_COMPUTE_V1_5_SIZE && table.fill_typed && table.add_typed && table.convert;
}

ComputeBackend::ComputeBackend(const LoadedPlugin& plugin, int64_t threads, int64_t device_index,
                               dfm_precision precision, dfm_dtype activations)
    : descriptor_(plugin.descriptor),
      table_(static_cast<const dfm_compute_v1*>(plugin.descriptor->table)),
      name_(plugin.name),
      activations_(activations) {
  if (plugin.kind != DFM_PLUGIN_COMPUTE)
    throw std::logic_error("plugin '" + plugin.name + "' is not a compute backend");
  if (!plugin.available) throw std::runtime_error(name_ + " backend: " + plugin.unavailable_reason);
  if (table_->struct_size < DFM_COMPUTE_V1_SIZE)
    throw std::runtime_error("compute backend '" + name_ + "' has a table older than ABI 1.0");
  // A backend built before ABI 1.1 cannot read the precision: it computes fp32 only.
  if (precision != DFM_PRECISION_FP32 && table_->struct_size < DFM_COMPUTE_V1_1_SIZE)
    throw std::runtime_error("compute backend '" + name_ +
                             "' predates backend.precision (ABI 1.1) and computes fp32 "
                             "only; set backend.precision = \"fp32\"");
  if (activations != DFM_DTYPE_FP32 && !offers_typed_kernels(*table_))
    throw std::runtime_error("compute backend '" + name_ +
                             "' predates backend.activations (ABI 1.5) and keeps fp32 "
                             "activations only; set backend.activations = \"fp32\"");
  dfm_compute_options options{};
  options.struct_size = sizeof options;
  options.threads = threads;
  options.device_index = device_index;
  options.precision = precision;
  options.activation_dtype = activations;
  check(table_->create(&options, &ctx_), "create");
}

ComputeBackend::~ComputeBackend() {
  if (ctx_) table_->destroy(ctx_);
}

void* ComputeBackend::native_stream() const {
  if (table_->struct_size < DFM_COMPUTE_V1_2_SIZE || table_->native_stream == nullptr) return nullptr;
  return table_->native_stream(ctx_);
}

void ComputeBackend::check(dfm_status status, const char* what) const {
  if (status == DFM_OK) return;
  const char* message = descriptor_->last_error ? descriptor_->last_error() : "";
  throw std::runtime_error("compute backend '" + name_ + "': " + what + ": " +
                           (message && *message ? message : "failed with status " + std::to_string(status)));
}

void* ComputeBackend::alloc(size_t bytes) {
  void* ptr = nullptr;
  check(table_->alloc(ctx_, bytes, &ptr), "alloc");
  const std::lock_guard lock(allocations_mutex_);
  allocations_[ptr] = bytes;
  allocated_ += static_cast<int64_t>(bytes);
  allocated_peak_ = std::max(allocated_peak_, allocated_);
  return ptr;
}

void ComputeBackend::free(void* ptr) noexcept {
  table_->free(ctx_, ptr);
  const std::lock_guard lock(allocations_mutex_);
  if (const auto it = allocations_.find(ptr); it != allocations_.end()) {
    allocated_ -= static_cast<int64_t>(it->second);
    allocations_.erase(it);
  }
}

int64_t ComputeBackend::allocated_bytes() const {
  const std::lock_guard lock(allocations_mutex_);
  return allocated_;
}

int64_t ComputeBackend::allocated_peak_bytes() const {
  const std::lock_guard lock(allocations_mutex_);
  return allocated_peak_;
}

void ComputeBackend::reset_allocated_peak() {
  const std::lock_guard lock(allocations_mutex_);
  allocated_peak_ = allocated_;
}

void ComputeBackend::synchronize() { check(table_->synchronize(ctx_), "synchronize"); }

void ComputeBackend::upload(void* device_dst, const void* host_src, size_t bytes) {
  check(table_->copy(ctx_, device_dst, host_src, bytes, DFM_COPY_HOST_TO_DEVICE), "copy to device");
}

void ComputeBackend::copy(void* device_dst, const void* device_src, size_t bytes) {
  check(table_->copy(ctx_, device_dst, device_src, bytes, DFM_COPY_DEVICE_TO_DEVICE), "copy on the device");
}

void ComputeBackend::download(void* host_dst, const void* device_src, size_t bytes) {
  check(table_->copy(ctx_, host_dst, device_src, bytes, DFM_COPY_DEVICE_TO_HOST), "copy to host");
  synchronize();
}

void ComputeBackend::fill(float* dst, float value, int64_t count) {
  check(table_->fill(ctx_, dst, value, count), "fill");
}

size_t ComputeBackend::activation_size() const { return sdk::dtype_size(activations_); }

void ComputeBackend::fill_activations(float* dst, float value, int64_t count) {
  if (activations_ == DFM_DTYPE_FP32) return fill(dst, value, count);
  check(table_->fill_typed(ctx_, dst, activations_, value, count), "fill_typed");
}

void ComputeBackend::add_activations(float* out, const float* a, const float* b, int64_t count) {
  if (activations_ == DFM_DTYPE_FP32) return check(table_->add(ctx_, out, a, b, count), "add");
  check(table_->add_typed(ctx_, activations_, out, a, b, count), "add_typed");
}

void ComputeBackend::activations_to_fp32(float* dst, const float* act, int64_t count) {
  if (activations_ == DFM_DTYPE_FP32) return copy(dst, act, static_cast<size_t>(count) * sizeof(float));
  check(table_->convert(ctx_, dst, DFM_DTYPE_FP32, act, activations_, count), "convert");
}

void ComputeBackend::matmul_epilogue(const dfm_matmul_desc& d, const dfm_matmul_epilogue& e) {
  if (table_->struct_size >= DFM_COMPUTE_V1_3_SIZE && table_->matmul_epilogue != nullptr) {
    check(table_->matmul_epilogue(ctx_, &d, &e), "matmul_epilogue");
    return;
  }
  if (d.ldc != d.n || (e.kind != DFM_EPILOGUE_BIAS && e.ld_aux != d.n))
    throw std::logic_error("ComputeBackend::matmul_epilogue: without the backend's slot C and aux must be dense");
  check(table_->matmul(ctx_, &d), "matmul");
  const int64_t count = d.m * d.n;
  switch (e.kind) {
    case DFM_EPILOGUE_BIAS: check(table_->bias_add(ctx_, d.c, e.bias, d.m, d.n), "bias_add"); return;
    case DFM_EPILOGUE_BIAS_GELU:
      check(table_->bias_add(ctx_, d.c, e.bias, d.m, d.n), "bias_add");
      copy(e.aux, d.c, static_cast<size_t>(count) * sdk::dtype_size(sdk::matmul_dtypes(d).c));
      check(table_->gelu_forward(ctx_, d.c, d.c, count), "gelu_forward");
      return;
    case DFM_EPILOGUE_GELU_BACKWARD:
      check(table_->gelu_backward(ctx_, d.c, e.aux, d.c, count), "gelu_backward");
      return;
    default: throw std::logic_error("ComputeBackend::matmul_epilogue: unknown epilogue kind " + std::to_string(e.kind));
  }
}

}  // namespace dfm
