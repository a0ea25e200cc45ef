#!/usr/bin/env python3
"""Summarises `ncu --csv --metrics gpu__time_duration.sum` output: the GPU
time of each kernel (by function name, templates and arguments dropped),
busiest first, with launches, total and median per launch. These are the
kernels' own durations, measured by the profiler with the host out of the
picture, so against DFM_CUDA_KERNEL_TIMES (which times whole calls on the
stream) they show how much of a call's time is the GPU's.

Usage: tools/ncu_summary.py NCU_CSV [TOP]"""
import csv
import re
import statistics
import sys
from collections import defaultdict

UNIT_TO_MS = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}


def short_name(kernel: str) -> str:
    """'void dfm::cuda::(anon)::layernorm_forward_kernel<bf16>(...)' -> 'layernorm_forward_kernel'."""
    name = kernel.replace("(anonymous namespace)", "anon")
    name = re.sub(r"\(.*$", "", name)  # arguments
    while "<" in name:  # template arguments, innermost first
        stripped = re.sub(r"<[^<>]*>", "", name)
        if stripped == name:
            break
        name = stripped
    words = name.split("::")[-1].split()
    return words[-1] if words else kernel


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    times = defaultdict(list)
    with open(sys.argv[1], newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu prints its own messages around the table
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        scale = UNIT_TO_MS.get(row.get("Metric Unit", ""), None)
        if scale is None:
            continue
        value = float(row["Metric Value"].replace(",", ""))
        times[short_name(row["Kernel Name"])].append(value * scale)
    if not times:
        print("no gpu__time_duration rows in", sys.argv[1])
        return 1
    total = sum(sum(v) for v in times.values())
    print(f"GPU time of {sum(len(v) for v in times.values())} profiled launches: {total:.2f} ms")
    print(f"  {'kernel':<56} {'share':>6} {'total ms':>9} {'launches':>8} {'median ms':>10}")
    for name, values in sorted(times.items(), key=lambda item: -sum(item[1]))[:top]:
        print(f"  {name[:56]:<56} {100 * sum(values) / total:5.1f}% {sum(values):9.3f} {len(values):8d} "
              f"{statistics.median(values):10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
