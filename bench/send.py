#!/usr/bin/env python3
"""Send benchmark: the same files sent to the same receiver (storescp --fork,
fresh output folder every run) by dcmstreams send, DCMTK storescu and DCMTK
dcmsend, over 1 and 4 associations, in one run, on loopback with
TCP_NODELAY=1. Prints instances/s, MB/s and the ratio of dcmstreams to each.

    bench/send.py [--quick] [--runs N] [--build DIR] [--out DIR]
"""

import os
import subprocess
import tempfile
import time

from common import (ENV, driver_arguments, median_and_spread, split_study,
                    storescp_receiver, synth, write_report)


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
    args = driver_arguments("send.py", __doc__)
    binary = args.binary
    runs = args.runs
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
    write_report(args.out, "send", "Send benchmark",
                 f"Receiver: storescp --fork, fresh folder per run; median of {runs} run(s), "
                 "instances/s.", table, {"quick": args.quick, "runs": runs, "results": rows})


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
