#!/usr/bin/env bash
# dfm against PyTorch on the Llama shape of bench_train_throughput --arch llama
# (12 layers, d_model 768, 12 heads sharing 4 key/value heads, ffn 2048,
# vocab 32000, seq 256, batch 4, fp32, 2 threads), in pairs in one session so
# both see the same machine: prints each run's tokens/s and the medians.
# PyTorch comes from PYTHONPATH (pip install torch into a folder of your own;
# it is not a dependency of dfm's build or tests).
# Usage: bench/llama_vs_torch.sh [PAIRS=3]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pairs=${1:-3}
export OMP_NUM_THREADS=2
dfm=() torch=() fraction=()
for ((i = 1; i <= pairs; ++i)); do
  out=$("$here/build/bin/bench_train_throughput" --arch llama --steps 3 --threads 2)
  dfm+=("$(sed -n 's/^tokens\/s: //p' <<<"$out")")
  fraction+=("$(sed -n 's/^end-to-end fraction of the GEMM rate: \([0-9.]*\)%/\1/p' <<<"$out")")
  gemm=$(sed -n 's/^GEMM rate .*: \([0-9.]*\) GFLOP\/s/\1/p' <<<"$out")
  t=$(python3 "$here/bench/torch_train_throughput.py" --steps 3 --threads 2 2>/dev/null | sed -n 's/^tokens\/s: //p')
  torch+=("$t")
  echo "pair $i: dfm ${dfm[-1]} tokens/s (${fraction[-1]}% of the GEMM rate, $gemm GFLOP/s), PyTorch $t tokens/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
d=$(median "${dfm[@]}") t=$(median "${torch[@]}") f=$(median "${fraction[@]}")
echo "median: dfm $d tokens/s ($f% of the GEMM rate), PyTorch $t tokens/s, dfm / PyTorch = $(awk -v a="$d" -v b="$t" 'BEGIN {printf "%.2f", a / b}')"
