#!/usr/bin/env bash
# Runs dfm's GPU checks on a machine with an NVIDIA GPU, from the relocatable
# bundle (packaging/make-bundle.sh) and this source tree's configs/:
#   1. the kernel table on the cuda plugin against the cpu plugin
#      (dfm-test-backend --backend cuda), the cuda plugin's own contract
#      (test_cuda_backend), the nccl comm plugin on groups of one GPU
#      (test_nccl), GPT training cuda vs cpu (test_gpt_cuda) and bf16
#      activation storage (test_bf16_activations);
#   2. GPT and Llama training on cuda fp32 against cpu: per-step loss over 20 steps;
#   3. the exported GPT-2 and Llama against Hugging Face transformers (if torch is there);
#   4. throughput of GPT-2 124M and 350M shapes at seq_len 1024, fp32 and bf16
#      (bf16 activations, and fp32 ones for comparison; bf16 with the MFU
#      against the GPU's bf16 dense peak when the GPU is known);
#   5. causal attention forward+backward TFLOP/s at seq 4K, head_dim 64 and 128,
#      fp32 (dfm's kernel) and bf16 (cuDNN's fused flash attention);
#   6. the GPU time of each kernel in a bf16 GPT-2 124M step (DFM_CUDA_KERNEL_TIMES);
#   7. the kernels' own durations from Nsight Compute, where ncu is installed.
# Prints a short table at the end; every step's log stays in LOG_DIR (default: a
# fresh temporary folder). DFM_GPU_CHECK_STEPS picks steps ("1 4", say: the
# tests and the throughput, when device time is short); all by default.
# Usage: tools/gpu-check.sh BUNDLE_DIR [LOG_DIR]
set -uo pipefail
bundle=$(cd "${1:?usage: tools/gpu-check.sh BUNDLE_DIR}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
work=${2:-$(mktemp -d)}
mkdir -p "$work"
# Each step is cut off after this many seconds, so one hung step cannot eat the machine's time.
step_limit=${DFM_GPU_STEP_LIMIT_S:-150}
limited() { timeout --kill-after=10 "$step_limit" "$@"; }
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# cuDNN and NCCL may come with the toolkit or as Python wheels (nvidia-cudnn-cu13,
# nvidia-nccl-cu13): take a wheel's library folder where the system has none.
for wheel_lib in cudnn:libcudnn.so.9 nccl:libnccl.so.2; do
  module=${wheel_lib%%:*} soname=${wheel_lib#*:}
  if ! ldconfig -p | grep -q "$soname" && [[ ! -e /usr/local/cuda/lib64/$soname ]]; then
    wheel_dir=$(python3 -c "import nvidia.$module, os; print(os.path.join(list(nvidia.$module.__path__)[0], 'lib'))" 2>/dev/null)
    [[ -n $wheel_dir ]] && export LD_LIBRARY_PATH="$wheel_dir:$LD_LIBRARY_PATH"
  fi
done
export DFM_TEST_PLUGIN_DIR="$bundle/lib/dfm/plugins"
summary=()
note() { summary+=("$(printf '%-34s %s' "$1" "$2")"); }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$bundle/bin/dfm-run" --list-plugins
for plugin in "$bundle"/lib/dfm/plugins/*.so; do  # a library the plugins cannot find, named now
  ldd "$plugin" | sed -n "s|^\s*\(.*not found\)|$(basename "$plugin"): \1|p"
done

# Runs a GoogleTest program of the bundle and notes PASS, SKIPPED or FAIL.
gtest_step() {  # label program
  local label=$1 program=$2
  limited "$bundle/bin/$program" --gtest_brief=1 >"$work/$program.log" 2>&1
  local rc=$? passed skipped
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$work/$program.log")
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$work/$program.log")
  if ((rc == 124 || rc == 137)); then
    note "$label" "FAIL (cut off after ${step_limit} s)"
  elif ((rc != 0)); then
    note "$label" "FAIL"
  elif [[ -n $skipped ]]; then
    note "$label" "PASS (${passed:-0} cases), SKIPPED ($skipped cases; the log says why)"
  else
    note "$label" "PASS (${passed:-0} cases)"
  fi
  tail -n 30 "$work/$program.log"
}

# Runs the kernel table on a backend (dfm-test-backend) and notes its count.
kernel_table_step() {  # label backend
  local label=$1 backend=$2
  limited "$bundle/bin/dfm-test-backend" --backend "$backend" >"$work/kernels-$backend.log" 2>&1
  local rc=$? counts
  counts=$(tail -n 1 "$work/kernels-$backend.log")
  if ((rc == 124 || rc == 137)); then
    note "$label" "FAIL (cut off after ${step_limit} s)"
  elif ((rc == 0)); then
    note "$label" "PASS ($counts)"
  elif ((rc == 77)); then
    note "$label" "SKIPPED ($counts; the log says why)"
  else
    note "$label" "FAIL ($counts)"
  fi
  grep -v '^PASS' "$work/kernels-$backend.log" | tail -n 30
}

# Runs one of the repository's jobs (DFM_GPU_CHECK_CONFIG, configs/default.toml
# by default; 20 steps) on a backend.
run_job() {  # backend out_dir [extra --set ...]
  local backend=$1 out=$2
  shift 2
  limited "$bundle/bin/dfm-run" "$here/configs/${DFM_GPU_CHECK_CONFIG:-default}.toml" --set train.steps=20 \
    --set sample.every=0 --set "backend.compute=\"$backend\"" --set "job.out_dir=\"$out\"" "$@" >"$out.log" 2>&1
}

step_1() {
  echo "== 1. the kernel table: cuda vs cpu"
  kernel_table_step "kernel table (cuda vs cpu)" cuda
  gtest_step "cuda plugin contract test" test_cuda_backend
  echo "== 1b. nccl comm plugin, groups of one GPU"
  gtest_step "nccl comm plugin test" test_nccl
  echo "== 1c. GPT training, cuda vs cpu backend (CTest's GPU equivalence test)"
  gtest_step "GPT cuda vs cpu test" test_gpt_cuda
  echo "== 1d. bf16 activations: each backend's bf16-storage kernels vs its fp32 ones"
  gtest_step "bf16 activations test" test_bf16_activations
}

step_2() {
  for model in default llama-tiny-cpu; do
    echo "== 2. $model fp32: cuda vs cpu, 20 steps"
    DFM_GPU_CHECK_CONFIG=$model run_job cpu "$work/$model-cpu" || tail -n 5 "$work/$model-cpu.log"
    DFM_GPU_CHECK_CONFIG=$model run_job cuda "$work/$model-cuda" || tail -n 5 "$work/$model-cuda.log"
    python3 - "$work/$model-cpu/metrics.jsonl" "$work/$model-cuda/metrics.jsonl" <<'PY' | tee "$work/$model.txt"
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"steps {len(a)}: first loss {a[0]:.6f} vs {b[0]:.6f}, last {a[-1]:.6f} vs {b[-1]:.6f}, max relative difference {worst:.2e}")
PY
    note "$model fp32 cuda vs cpu (20 steps)" "$(sed -n 's/.*max relative difference /max rel diff /p' "$work/$model.txt")"
  done
}

step_3() {
  echo "== 3. export vs Hugging Face transformers"
  if ! python3 -c "import torch, transformers, safetensors" 2>/dev/null; then
    note "export vs transformers" "SKIPPED (no torch/transformers here)"
    return
  fi
  head -c 200000 "$here/README.md" "$here"/docs/*.md >"$work/text.txt"
  "$bundle/bin/dfm-data" encode "$work/text.txt" --out "$work/text.bin" >/dev/null
  for model in default llama-tiny-cpu; do
    local data=(--set 'data.source="tokens"' --set "data.path=\"$work/text.bin\"")
    DFM_GPU_CHECK_CONFIG=$model run_job cuda "$work/$model-hf0" --set train.steps=0 "${data[@]}"
    DFM_GPU_CHECK_CONFIG=$model run_job cuda "$work/$model-hf1" --set train.steps=1 "${data[@]}"
    if python3 "$here/tools/hf_check.py" "$work/$model-hf0/final" "$work/text.bin" "$work/$model-hf1/metrics.jsonl" 16 |
      tee "$work/$model-hf.txt"; then
      note "$model export vs transformers" "PASS ($(sed -n 's/.*relative difference /rel diff /p' "$work/$model-hf.txt"))"
    else
      note "$model export vs transformers" "FAIL"
    fi
  done
}

# bf16 dense tensor-core peak (TFLOP/s, NVIDIA data sheets) of the GPU, for the MFU.
bf16_peak_tflops() {
  case "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)" in
    *H100*PCIe*) echo 756 ;;
    *H100* | *H200* | *GH200*) echo 989 ;;
    *A100*) echo 312 ;;
    *L40S*) echo 362 ;;
    *) echo 0 ;;
  esac
}

bench() {  # name peak-tflops (0: no MFU) args...
  local name=$1 peak_tflops=$2
  shift 2
  if ! limited "$bundle/bin/bench_train_throughput" --compute cuda --peak-tflops "$peak_tflops" "$@" 2>&1 |
    tee "$work/bench-$name.txt"; then
    note "$name" "FAIL ($(tail -n 1 "$work/bench-$name.txt"))"
    return
  fi
  local mfu
  mfu=$(sed -n 's/^MFU: \([0-9.]*%\).*/, MFU \1/p' "$work/bench-$name.txt")
  note "$name tokens/s" "$(sed -n 's/^tokens\/s: //p' "$work/bench-$name.txt") ($(sed -n 's/^model FLOP\/s: \([0-9.]*\) GFLOP.*/\1 GFLOP\/s/p' "$work/bench-$name.txt")$mfu)"
}

step_4() {
  echo "== 4. throughput"
  local peak
  peak=$(bf16_peak_tflops)
  bench "GPT-2 124M seq 1024 b8 fp32" 0 --seq 1024 --batch 8 --steps 5
  bench "GPT-2 350M seq 1024 b8 fp32" 0 --layers 24 --d-model 1024 --heads 16 --seq 1024 --batch 8 --steps 5
  bench "GPT-2 124M seq 1024 b8 bf16, fp32 act" "$peak" --seq 1024 --batch 8 --steps 5 --precision bf16 --activations fp32
  bench "GPT-2 124M seq 1024 b8 bf16" "$peak" --seq 1024 --batch 8 --steps 5 --precision bf16
  bench "GPT-2 124M seq 1024 b32 bf16" "$peak" --seq 1024 --batch 32 --steps 5 --precision bf16
  bench "GPT-2 350M seq 1024 b8 bf16" "$peak" --layers 24 --d-model 1024 --heads 16 --seq 1024 --batch 8 --steps 5 --precision bf16
}

step_5() {
  echo "== 5. attention, causal, seq 4096 (fp32: dfm's kernel; bf16: cuDNN)"
  local precision head_dim out
  for precision in fp32 bf16; do
    for head_dim in 64 128; do
      out="$work/attention-$precision-$head_dim.txt"
      limited "$bundle/bin/bench_attention_throughput" --compute cuda --precision "$precision" --seq 4096 \
        --heads $((1024 / head_dim)) --head-dim "$head_dim" --batch 4 --reps 5 | tee "$out"
      note "attention $precision fwd+bwd head_dim $head_dim" "$(sed -n 's/^forward+backward: //p' "$out")"
    done
  done
}

step_6() {
  echo "== 6. where the GPU time goes: GPT-2 124M, seq 1024, b8, bf16 (DFM_CUDA_KERNEL_TIMES)"
  DFM_CUDA_KERNEL_TIMES=1 limited "$bundle/bin/bench_train_throughput" --compute cuda --seq 1024 --batch 8 --steps 5 \
    --precision bf16 2>&1 | sed -n '/cuda kernel times/,$p' | tee "$work/kernel-times.txt"
}

step_7() {
  echo "== 7. the kernels' own GPU time (Nsight Compute): the first launches of a GPT-2 124M bf16 job"
  # The profiler times each kernel with the host out of the picture; against
  # step 6's call times this shows how much of a call is the GPU's.
  if ! command -v ncu >/dev/null; then
    note "kernel GPU time (ncu)" "SKIPPED (no ncu on PATH)"
    return
  fi
  limited ncu --csv --metrics gpu__time_duration.sum --cache-control none --clock-control none --launch-count 2000 \
    "$bundle/bin/bench_train_throughput" --compute cuda --seq 1024 --batch 8 --steps 1 --precision bf16 \
    >"$work/ncu.csv" 2>"$work/ncu.log"
  if python3 "$here/tools/ncu_summary.py" "$work/ncu.csv" 30 | tee "$work/ncu-summary.txt"; then
    note "kernel GPU time (ncu)" "$(sed -n 's/^GPU time of //p' "$work/ncu-summary.txt") (table above)"
  else
    note "kernel GPU time (ncu)" "FAIL (see $work/ncu.log)"
  fi
}

for step in ${DFM_GPU_CHECK_STEPS:-1 2 3 4 5 6 7}; do
  if [[ $(type -t "step_$step") != function ]]; then
    echo "tools/gpu-check.sh: DFM_GPU_CHECK_STEPS has '$step', expected step numbers 1 to 7" >&2
    exit 2
  fi
  "step_$step"
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
