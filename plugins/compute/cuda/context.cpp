// Context lifetime and CUDA error reporting.
#include <algorithm>
#include <cstdint>
#include <memory>

#include "cuda_backend.hpp"
#include "cudnn_attention.hpp"
#include "lt_gemm.hpp"

namespace dfm::cuda {
namespace {

// One grid-stride loop needs no more blocks than this to fill any current GPU.
constexpr int64_t kMaxGrid = 1 << 16;

// bf16 attention runs on cuDNN where it can; without a usable cuDNN the job
// still runs (on the fp32 attention kernel) and the log says why.
void use_cudnn_attention(Context& context) {
  try {
    context.cudnn = std::make_unique<CudnnAttention>(context.stream);
    job_log(DFM_LOG_INFO, "cuda: bf16 attention on " + CudnnAttention::version() + " fused flash attention");
  } catch (const sdk::Error& e) {
    job_log(DFM_LOG_WARNING, std::string("cuda: cuDNN is not usable (") + e.what() +
                                 "); bf16 attention runs on dfm's fp32 attention kernel");
  }
}

// The staging copies (staging.hpp) come from the device's default
// stream-ordered pool, which by default hands its free memory back to the
// driver at every synchronize — twice a training step — so that each step
// would map it again. Keeping it makes the copies' allocations cheap.
void keep_pool_memory(const Args& args, int device) {
  cudaMemPool_t pool = nullptr;
  args.cuda(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
  uint64_t keep_all = UINT64_MAX;
  args.cuda(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all),
            "cudaMemPoolSetAttribute(ReleaseThreshold)");
}

}  // namespace

Context::~Context() {
  // Teardown is best effort: a failed call here has no one left to report to.
  if (stream != nullptr) cudaStreamSynchronize(stream);
  if (times) {
    times->collect();
    job_log(DFM_LOG_INFO, times->report());
  }
  cudnn.reset();  // its handle uses the stream
  lt.reset();
  if (sum_partials != nullptr) cudaFree(sum_partials);
  if (bad_target != nullptr) cudaFree(bad_target);
  if (blas != nullptr) cublasDestroy(blas);
  if (stream != nullptr) cudaStreamDestroy(stream);
}

Args::Args(const char* kernel, void* ctx)
    : KernelArgs("cuda", kernel), ctx_(static_cast<Context*>(require_context(ctx))) {
  // The calling thread may not be the one that made the context.
  cuda(cudaSetDevice(ctx_->device), "cudaSetDevice");
  if (ctx_->times) ctx_->times->begin(kernel, ctx_->stream);
}

Args::~Args() {
  if (ctx_->times) ctx_->times->end(ctx_->stream);
}

void Args::cuda(cudaError_t status, const char* call) const {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clears a non-sticky error so the next call does not see it again
  const dfm_status code = status == cudaErrorMemoryAllocation ? DFM_ERR_OUT_OF_MEMORY : DFM_ERR_RUNTIME;
  fail(code, std::string(call) + " failed: " + cudaGetErrorString(status));
}

void Args::blas(cublasStatus_t status, const char* call) const {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const dfm_status code = status == CUBLAS_STATUS_ALLOC_FAILED ? DFM_ERR_OUT_OF_MEMORY : DFM_ERR_RUNTIME;
  fail(code, std::string(call) + " failed: " + cublasGetStatusString(status));
}

unsigned grid_for(int64_t count, int threads) {
  return static_cast<unsigned>(std::clamp<int64_t>((count + threads - 1) / threads, 1, kMaxGrid));
}

dfm_status create(const dfm_compute_options* options, void** ctx) {
  return sdk::guard([&] {
    const sdk::KernelArgs checks("cuda", "create");
    const dfm_compute_options checked = sdk::validate_create(checks, options, ctx);
    const int64_t device = checked.device_index;
    int devices = 0;
    const cudaError_t counted = cudaGetDeviceCount(&devices);
    if (counted != cudaSuccess)
      checks.fail(DFM_ERR_UNAVAILABLE, std::string("no CUDA device: ") + cudaGetErrorString(counted));
    if (device < 0 || device >= devices)
      checks.fail("'device_index' is " + std::to_string(device) + ", expected 0 .. " + std::to_string(devices - 1) +
                  " (the CUDA devices this process sees)");

    auto context = std::make_unique<Context>();
    context->device = static_cast<int>(device);
    context->bf16 = checked.precision == DFM_PRECISION_BF16;
    context->activations = checked.activation_dtype;
    const Args args("create", context.get());  // makes the device current
    int shared_optin = 0;
    args.cuda(cudaDeviceGetAttribute(&shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, context->device),
              "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
    context->max_shared_bytes = static_cast<size_t>(shared_optin);
    args.cuda(cudaStreamCreateWithFlags(&context->stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    args.blas(cublasCreate(&context->blas), "cublasCreate");
    args.blas(cublasSetStream(context->blas, context->stream), "cublasSetStream");
    // fp32 GEMMs stay fp32: no TF32 tensor cores (the numerics contract is fp32 == cpu within 1e-5);
    // bf16 asks for them per call (gemm.cu).
    args.blas(cublasSetMathMode(context->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    context->lt = std::make_unique<LtGemm>(args);
    keep_pool_memory(args, context->device);
    args.cuda(cudaMalloc(&context->sum_partials, kSumSquaresBlocks * sizeof(double)), "cudaMalloc");
    args.cuda(cudaMalloc(&context->bad_target, sizeof(BadTarget)), "cudaMalloc");
    // On the context's stream: a non-blocking stream does not wait for the legacy default stream.
    args.cuda(cudaMemsetAsync(context->bad_target, 0, sizeof(BadTarget), context->stream), "cudaMemsetAsync");
    if (context->bf16) use_cudnn_attention(*context);
    context->times = KernelTimes::from_environment();
    *ctx = context.release();
  });
}

void destroy(void* ctx) {
  auto* context = static_cast<Context*>(ctx);
  if (context == nullptr) return;
  cudaSetDevice(context->device);
  delete context;
}

dfm_status synchronize(void* ctx) {
  return sdk::guard([&] {
    const Args args("synchronize", ctx);
    Context& context = args.context();
    args.cuda(cudaStreamSynchronize(context.stream), "waiting for the kernels and copies issued earlier");
    if (context.times) context.times->collect();
    if (!context.targets_unchecked) return;
    context.targets_unchecked = false;
    BadTarget bad{};
    args.cuda(cudaMemcpyAsync(&bad, context.bad_target, sizeof bad, cudaMemcpyDeviceToHost, context.stream),
              "cudaMemcpyAsync");
    args.cuda(cudaStreamSynchronize(context.stream), "cudaStreamSynchronize");
    if (bad.row_plus_one == 0) return;
    args.cuda(cudaMemsetAsync(context.bad_target, 0, sizeof bad, context.stream), "cudaMemsetAsync");
    throw sdk::Error(DFM_ERR_INVALID_ARGUMENT,
                     "cuda.softmax_cross_entropy (found at synchronize): " +
                         sdk::target_out_of_range(static_cast<int64_t>(bad.row_plus_one - 1), bad.target, bad.vocab) +
                         "; that row's loss is NaN and its gradient 0");
  });
}

void* native_stream(void* ctx) { return ctx == nullptr ? nullptr : static_cast<Context*>(ctx)->stream; }

}  // namespace dfm::cuda
