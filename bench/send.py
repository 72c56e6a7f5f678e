#!/usr/bin/env python3
"""Send benchmark: the same files sent to the same receiver (storescp --fork,
fresh output folder every run) by dcmstreams send, DCMTK storescu and DCMTK
dcmsend, over 1 and 4 associations, in one run, on loopback with
TCP_NODELAY=1. Prints instances/s, MB/s and the ratio of dcmstreams to each.

    bench/send.py [--quick] [--runs N] [--build DIR] [--out DIR]
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from common import ENV, ROOT, median_and_spread, split_study, storescp_receiver, synth


def senders(binary):
    # Each returns the commands that send `folders` (one per association).
    return {
        "dcmstreams send": lambda folders, port: [
            [binary, "send", "--aec", "ANY-SCP", "--associations", str(len(folders)),
             "127.0.0.1", str(port)] + folders],
        "storescu": lambda folders, port: [
            ["storescu", "-aec", "ANY-SCP", "+sd", "+r", "127.0.0.1", str(port), folder]
            for folder in folders],
        "dcmsend": lambda folders, port: [
            ["dcmsend", "-aec", "ANY-SCP", "+sd", "+r", "127.0.0.1", str(port), folder]
            for folder in folders],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    binary = os.path.join(args.build, "main", "dcmstreams")
    if not os.access(binary, os.X_OK):
        sys.exit(f"send.py: {binary} does not exist; run scripts/setup.sh first")
    runs = args.runs or (1 if args.quick else 3)
    sizes = [("8 KB", 64, 100 if args.quick else 500), ("512 KB", 512, 20 if args.quick else 100)]
    receiver = storescp_receiver(fork=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dcmstreams-send-data-") as data:
        for label, pixels, count in sizes:
            files, total = synth(binary, os.path.join(data, f"s{pixels}"), count, pixels)
            for associations in (1, 4):
                folders = split_study(files, associations,
                                      os.path.join(data, f"split-{pixels}-{associations}"))
                for name, build in senders(binary).items():
                    samples = [run_with(build, folders, receiver, len(files), total)
                               for _ in range(runs)]
                    rate, spread = median_and_spread([s[0] for s in samples])
                    mb, _ = median_and_spread([s[1] for s in samples])
                    rows.append({"size": label, "associations": associations, "sender": name,
                                 "instances_per_s": rate, "spread": spread, "mb_per_s": mb})
                    print(f"{label:>7} {associations} assoc {name:<16} {rate:8.0f} inst/s"
                          f" {mb:8.1f} MB/s", flush=True)
    lines = ["| size | assoc | dcmstreams send | storescu | dcmsend | vs storescu | vs dcmsend |",
             "|---|---|---|---|---|---|---|"]
    for label, _, _ in sizes:
        for associations in (1, 4):
            r = {row["sender"]: row["instances_per_s"] for row in rows
                 if row["size"] == label and row["associations"] == associations}
            lines.append(f"| {label} | {associations} | {r['dcmstreams send']:.0f}/s |"
                         f" {r['storescu']:.0f}/s | {r['dcmsend']:.0f}/s |"
                         f" {r['dcmstreams send'] / r['storescu']:.2f}x |"
                         f" {r['dcmstreams send'] / r['dcmsend']:.2f}x |")
    table = "\n".join(lines)
    print("\n" + table)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"{stamp}-{platform.node()}-send")
    with open(base + ".json", "w") as f:
        json.dump({"quick": args.quick, "runs": runs, "results": rows}, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(f"# Send benchmark {stamp} on {platform.node()}\n\nReceiver: storescp --fork, "
                f"fresh folder per run; median of {runs} run(s), instances/s.\n\n{table}\n")
    print(f"\nwrote {base}.json and {base}.md")


def run_with(build, folders, receiver, expected, total):
    with tempfile.TemporaryDirectory(prefix="dcmstreams-send-") as work:
        receiver.start(work)
        commands = build(folders, receiver.port)
        start = time.perf_counter()
        processes = [subprocess.Popen(c, env=ENV, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE) for c in commands]
        errors = [p.communicate()[1] for p in processes]
        elapsed = time.perf_counter() - start
        time.sleep(0.3)  # forked children finish writing
        stored = receiver.stored()
        receiver.stop()
    if stored != expected or any(p.returncode != 0 for p in processes):
        raise RuntimeError(f"stored {stored} of {expected}: "
                           + b"".join(errors).decode(errors="replace")[-400:])
    return expected / elapsed, total / 1e6 / elapsed


if __name__ == "__main__":
    main()
