#!/usr/bin/env python3
"""Ingest benchmark: the same synthetic study sent by DCMTK storescu to
dcmstreams and to storescp, in the same run, on loopback with TCP_NODELAY=1.

Every receiver starts fresh for every run (empty store / output folder).
Prints instances/s, MB/s, receiver CPU per instance and the ratio of
dcmstreams to storescp, and writes bench/results/<date>-<host>-ingest.{json,md}.

    bench/ingest.py [--quick] [--runs N] [--build DIR]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import (ENV, ROOT, cpu_seconds, dcmstreams_receiver, split_study,
                    storescp_receiver, synth)
def run_case(receiver, folders, expected, bytes_total):
    with tempfile.TemporaryDirectory(prefix="dcmstreams-bench-") as work:
        receiver.start(work)
        cpu_before = cpu_seconds(receiver.proc.pid)
        start = time.perf_counter()
        senders = [subprocess.Popen(["storescu", "-aec", receiver.aec, "+sd", "+r", "127.0.0.1",
                                     str(receiver.port), folder], env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                   for folder in folders]
        errors = [s.communicate()[1] for s in senders]
        elapsed = time.perf_counter() - start
        time.sleep(0.2)  # let forked children be reaped before reading CPU time
        cpu = cpu_seconds(receiver.proc.pid) - cpu_before
        stored = receiver.stored()
        receiver.stop()
    if stored != expected or any(s.returncode != 0 for s in senders):
        raise RuntimeError(f"{receiver.name}: stored {stored} of {expected}: "
                           + b"".join(errors).decode(errors="replace")[-500:])
    return {"seconds": elapsed, "instances_per_s": expected / elapsed,
            "mb_per_s": bytes_total / 1e6 / elapsed, "cpu_ms_per_instance": 1000 * cpu / expected}


def summarize(samples):
    values = [s["instances_per_s"] for s in samples]
    return {"instances_per_s": statistics.median(values),
            "spread": [min(values), max(values)],
            "mb_per_s": statistics.median(s["mb_per_s"] for s in samples),
            "cpu_ms_per_instance": statistics.median(s["cpu_ms_per_instance"] for s in samples)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small studies, one run each")
    parser.add_argument("--runs", type=int, default=None, help="runs per case (default 3, quick 1)")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"), help="build folder")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"),
                        help="folder for the report")
    args = parser.parse_args()
    binary = os.path.join(args.build, "main", "dcmstreams")
    if not os.access(binary, os.X_OK):
        sys.exit(f"ingest.py: {binary} does not exist; run scripts/setup.sh first")
    for tool in ("storescu", "storescp", "echoscu"):
        if not shutil.which(tool):
            sys.exit(f"ingest.py: {tool} is missing; install the dcmtk package")
    runs = args.runs or (1 if args.quick else 3)
    sizes = [("8 KB", 64, 200 if args.quick else 1000), ("512 KB", 512, 40 if args.quick else 200)]
    association_counts = [1, 4]
    receivers = [dcmstreams_receiver(binary, "instance"), dcmstreams_receiver(binary, "none"),
                 storescp_receiver(), storescp_receiver(fork=True)]

    results = []
    with tempfile.TemporaryDirectory(prefix="dcmstreams-bench-data-") as data:
        for label, rows, instances in sizes:
            files, bytes_total = synth(binary, os.path.join(data, f"study-{rows}"), instances,
                                       rows)
            for associations in association_counts:
                folders = split_study(files, associations,
                                      os.path.join(data, f"split-{rows}-{associations}"))
                for receiver in receivers:
                    samples = [run_case(receiver, folders, len(files), bytes_total)
                               for _ in range(runs)]
                    row = {"size": label, "instances": len(files), "associations": associations,
                           "receiver": receiver.name, **summarize(samples), "runs": samples}
                    results.append(row)
                    print(f"{label:>7} x{len(files):<5} {associations} assoc  {receiver.name:<26}"
                          f" {row['instances_per_s']:8.0f} inst/s {row['mb_per_s']:8.1f} MB/s"
                          f" {row['cpu_ms_per_instance']:6.2f} ms CPU/inst", flush=True)

    def find(size, associations, name):
        return next(r for r in results if r["size"] == size and r["associations"] == associations
                    and r["receiver"] == name)

    lines = ["| size | assoc | dcmstreams sync instance | dcmstreams sync none | storescp |"
             " storescp --fork | durable / storescp | durable / storescp --fork |",
             "|---|---|---|---|---|---|---|---|"]
    for label, _, _ in sizes:
        for associations in association_counts:
            durable = find(label, associations, "dcmstreams (sync instance)")
            fast = find(label, associations, "dcmstreams (sync none)")
            scp = find(label, associations, "storescp")
            fork = find(label, associations, "storescp --fork")
            lines.append(
                f"| {label} | {associations} | {durable['instances_per_s']:.0f}/s |"
                f" {fast['instances_per_s']:.0f}/s | {scp['instances_per_s']:.0f}/s |"
                f" {fork['instances_per_s']:.0f}/s |"
                f" {durable['instances_per_s'] / scp['instances_per_s']:.2f}x |"
                f" {durable['instances_per_s'] / fork['instances_per_s']:.2f}x |")
    table = "\n".join(lines)
    print()
    print(table)

    machine = {"host": platform.node(), "cores": os.cpu_count(), "kernel": platform.release(),
               "dcmtk": subprocess.run(["storescp", "--version"], capture_output=True,
                                       text=True).stdout.splitlines()[0] if True else ""}
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"{stamp}-{platform.node()}-ingest")
    with open(base + ".json", "w") as f:
        json.dump({"machine": machine, "quick": args.quick, "runs": runs, "results": results}, f,
                  indent=2)
    with open(base + ".md", "w") as f:
        f.write(f"# Ingest benchmark {stamp} on {platform.node()}\n\n"
                f"{os.cpu_count()} cores, {machine['dcmtk']}, storescu senders, TCP_NODELAY=1, "
                f"median of {runs} run(s), instances/s.\n\n{table}\n")
    print(f"\nwrote {base}.json and {base}.md")


if __name__ == "__main__":
    main()
