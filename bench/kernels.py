#!/usr/bin/env python3
"""Runs the kernel benchmarks and prints time, GB/s and the ratio to memcpy
of the same volume, at 1 thread and at all threads, from one run.

    bench/kernels.py [--quick] [--build DIR]
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="256x256x100 instead of 512x512x300")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    binary = os.path.join(args.build, "bench", "kernels_bench")
    if not os.access(binary, os.X_OK):
        sys.exit(f"kernels.py: {binary} does not exist; run scripts/setup.sh first")
    command = [binary, "--benchmark_format=json"]
    if args.quick:
        command += ["--quick", "--benchmark_min_time=0.01"]
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    rows = {}
    memcpy = {}
    for b in report["benchmarks"]:
        kernel = b["name"].split("/")[0].removeprefix("bm_")
        threads = int(b["threads"]) if "threads" in b else 1
        threads = int(b.get("threads", threads))
        seconds = b["real_time"] / 1000  # ms
        rate = b["bytes_per_s"]
        if kernel == "memcpy":
            memcpy[threads] = rate
        rows[(kernel, threads)] = (seconds, rate)
    lines = ["| kernel | threads | time | GB/s | vs memcpy | speed-up over 1 thread |",
             "|---|---|---|---|---|---|"]
    for (kernel, threads), (seconds, rate) in rows.items():
        single = rows.get((kernel, 1))
        speedup = single[0] / seconds if single else 1
        lines.append(f"| {kernel} | {threads} | {seconds * 1000:.1f} ms | {rate / 1e9:.2f} |"
                     f" {rate / memcpy[threads]:.2f} | {speedup:.2f}x |")
    table = "\n".join(lines)
    size = "256x256x100" if args.quick else "512x512x300"
    header = f"Kernels on a {size} int16 volume ({report['context']['num_cpus']} CPUs)\n\n"
    print(header + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(header + table + "\n")


if __name__ == "__main__":
    main()
