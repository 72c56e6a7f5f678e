#!/usr/bin/env python3
"""Ingest benchmark: the same synthetic study sent by the same client to
dcmstreams and to its peers, in the same run, on loopback with TCP_NODELAY=1.

Receivers: dcmstreams with durable writes (storage.sync instance) and
without (none), storescp, storescp --fork, Orthanc, and storescp --fork
--ignore (receives and answers, writes nothing: the DICOM-without-disk
ceiling).
Clients: DCMTK storescu (one process per association) and dcmstreams send
(one process, N associations).

Method (the disk of a cloud machine varies 3x from run to run, and one run's
deletes slow the next): every receiver starts fresh in its own folder, and
nothing is deleted until all runs of an instance size are done; before and
after each run the disk is settled (sync, no request in flight, no dirty
page); receivers take turns round by round; every run checks the receiver's
count of stored instances. For each receiver the report gives instances/s
(min / median / max), MB/s, and per instance the disk's write requests and
flushes (counted from the block device, including what is written back after
the run) and the receiver's CPU time. Over one association the bound is the
no-disk time per instance plus one flush of this disk (measured in the run).
Writes bench/results/<date>-<host>-ingest.{json,md}.

    bench/ingest.py [--quick] [--runs N] [--build DIR] [--out DIR]
                    [--sizes 8KB,512KB,5MB] [--associations 1,4,8] [--clients storescu,send]
"""

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import (CEILING, ENV, block_device_stat, cpu_seconds, dcmstreams_receiver,
                    disk_counters, driver_arguments, flush_seconds, orthanc_receiver, settle,
                    split_study, storescp_receiver, synth, write_report)

# Label -> rows (= cols) of a 16-bit single-frame image, and instances in a
# full and a quick run.
SIZES = {"8KB": (64, 1000, 100), "512KB": (512, 200, 20), "5MB": (1600, 40, 6)}
DURABLE = "dcmstreams (sync instance)"


def send_commands(client, binary, receiver, study, folders):
    if client == "storescu":
        return [["storescu", "-aec", receiver.aec, "+sd", "+r", "127.0.0.1", str(receiver.port),
                 folder] for folder in folders]
    return [[binary, "send", "--aec", receiver.aec, "--associations", str(len(folders)),
             "127.0.0.1", str(receiver.port), study]]


def run_case(receiver, make_commands, expected, bytes_total, work_parent, disk):
    work = tempfile.mkdtemp(prefix="run-", dir=work_parent)  # removed after the last run
    receiver.start(work)
    commands = make_commands()  # the receiver's port is known now
    settle(disk)
    disk_before = disk_counters(disk)
    cpu_before = cpu_seconds(receiver.proc.pid)
    start = time.perf_counter()
    senders = [subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
               for command in commands]
    errors = [s.communicate()[1] for s in senders]
    elapsed = time.perf_counter() - start
    time.sleep(0.2)  # let forked children be reaped before reading CPU time
    cpu = cpu_seconds(receiver.proc.pid) - cpu_before
    # The node lists an instance a moment after answering it, and Orthanc's
    # statistics lag too; the time is taken already.
    stored = receiver.stored()
    deadline = time.time() + 10
    while stored is not None and stored < expected and time.time() < deadline:
        time.sleep(0.1)
        stored = receiver.stored()
    settle(disk)  # what the receiver left for writeback counts too; its shutdown does not
    disk_after = disk_counters(disk)
    receiver.stop()
    if (stored is not None and stored != expected) or any(s.returncode != 0 for s in senders):
        raise RuntimeError(f"{receiver.name}: stored {stored} of {expected}: "
                           + b"".join(errors).decode(errors="replace")[-500:])
    return {"seconds": elapsed, "instances_per_s": expected / elapsed,
            "mb_per_s": bytes_total / 1e6 / elapsed, "cpu_ms_per_instance": 1000 * cpu / expected,
            "writes_per_instance": (disk_after["writes"] - disk_before["writes"]) / expected,
            "flushes_per_instance": (disk_after["flushes"] - disk_before["flushes"]) / expected,
            "stored": stored}


def summarize(samples):
    values = [s["instances_per_s"] for s in samples]
    return {"instances_per_s": statistics.median(values),
            "spread": [min(values), max(values)],
            **{key: statistics.median(s[key] for s in samples)
               for key in ("mb_per_s", "cpu_ms_per_instance", "writes_per_instance",
                           "flushes_per_instance")}}


def ratio(a, b):
    return a / b if b else 0.0


def one_association_bound(results, size, client, flush_s):
    """Instances/s over one association if every instance cost the no-disk
    time plus one flush: what a durable receiver can reach at best."""
    ceiling = next((r for r in results if r["size"] == size and r["associations"] == 1
                    and r["client"] == client and r["receiver"] == CEILING), None)
    if not ceiling or not ceiling["instances_per_s"]:
        return 0.0
    return 1.0 / (1.0 / ceiling["instances_per_s"] + flush_s)


def markdown(results, sizes, association_counts, clients, receivers, flush_s):
    """Per client: instances/s per receiver with the durable node's ratios;
    then every receiver's spread and disk and CPU cost per instance."""
    names = [r.name for r in receivers]
    out = [f"One durable append on this disk (8 KB pwrite + fdatasync, median): "
           f"{1000 * flush_s:.3f} ms.\n"]
    for client in clients:
        out.append(f"### Client: {client}\n")
        out.append("| size | assoc | " + " | ".join(names) +
                   " | durable / storescp | durable / --fork | durable / Orthanc"
                   " | durable MB/s / ceiling | durable / 1-assoc bound |")
        out.append("|---|---|" + "---|" * (len(names) + 5))
        for size in sizes:
            for associations in association_counts:
                row = {r["receiver"]: r for r in results if r["size"] == size and
                       r["associations"] == associations and r["client"] == client}
                if DURABLE not in row:
                    continue
                cells = [f"{row[n]['instances_per_s']:.0f}/s" if n in row else "-" for n in names]
                durable = row[DURABLE]["instances_per_s"]
                peer = lambda name: row.get(name, {}).get("instances_per_s", 0)
                ceiling = row.get(CEILING, {}).get("mb_per_s", 0)
                bound = (one_association_bound(results, size, client, flush_s)
                         if associations == 1 else 0)
                out.append(f"| {size} | {associations} | " + " | ".join(cells) +
                           f" | {ratio(durable, peer('storescp')):.2f}x"
                           f" | {ratio(durable, peer('storescp --fork')):.2f}x"
                           f" | {ratio(durable, peer('Orthanc')):.2f}x"
                           f" | {100 * ratio(row[DURABLE]['mb_per_s'], ceiling):.0f} %"
                           + (f" | {100 * ratio(durable, bound):.0f} % of {bound:.0f}/s |"
                              if bound else " | - |"))
        out.append("")
        out.append(f"Per receiver ({client}): instances/s min–median–max; per instance: disk "
                   "write requests, disk flushes, CPU ms.\n")
        out.append("| size | assoc | receiver | inst/s | writes | flushes | CPU ms |")
        out.append("|---|---|---|---|---|---|---|")
        for size in sizes:
            for associations in association_counts:
                for r in results:
                    if (r["size"], r["associations"], r["client"]) != (size, associations, client):
                        continue
                    low, high = r["spread"]
                    out.append(f"| {size} | {associations} | {r['receiver']} | {low:.0f}–"
                               f"{r['instances_per_s']:.0f}–{high:.0f} | "
                               f"{r['writes_per_instance']:.2f} | {r['flushes_per_instance']:.2f} | "
                               f"{r['cpu_ms_per_instance']:.3f} |")
        out.append("")
    return "\n".join(out)


def main():
    def own_arguments(parser):
        parser.add_argument("--sizes", default=None, help="of " + ",".join(SIZES))
        parser.add_argument("--associations", default=None, help="counts, such as 1,4,8")
        parser.add_argument("--clients", default=None, help="storescu, send or both")
        parser.add_argument("--baseline", default=None, metavar="BUILD",
                            help="also a node built in BUILD (another version) with durable "
                                 "writes, measured in the same rounds")

    args = driver_arguments("ingest.py", __doc__, own_arguments)
    binary, runs = args.binary, args.runs
    for tool in ("storescu", "storescp", "echoscu", "Orthanc"):
        if not shutil.which(tool):
            sys.exit(f"ingest.py: {tool} is missing; run scripts/setup.sh (dcmtk, orthanc)")
    sizes = (args.sizes or ("8KB,5MB" if args.quick else ",".join(SIZES))).split(",")
    for size in sizes:
        if size not in SIZES:
            sys.exit(f"ingest.py: --sizes: {size} is not one of " + ",".join(SIZES))
    association_counts = [int(n) for n in
                          (args.associations or ("1,4" if args.quick else "1,4,8")).split(",")]
    clients = (args.clients or ("storescu" if args.quick else "storescu,send")).split(",")
    receivers = [dcmstreams_receiver(binary, "instance"), dcmstreams_receiver(binary, "none"),
                 storescp_receiver(), storescp_receiver(fork=True), orthanc_receiver(),
                 storescp_receiver(fork=True, ignore=True)]
    if args.baseline:
        baseline = os.path.join(args.baseline, "main", "dcmstreams")
        if not os.access(baseline, os.X_OK):
            sys.exit(f"ingest.py: --baseline: {baseline} does not exist")
        receivers.insert(1, dcmstreams_receiver(baseline, "instance", "baseline"))

    results = []
    with tempfile.TemporaryDirectory(prefix="dcmstreams-bench-data-") as data:
        disk = block_device_stat(data)
        if not disk:
            print("ingest.py: no block device statistics for the data folder; disk counts are 0")
        settle(disk)
        flush_s = flush_seconds(data)
        for size in sizes:
            rows, full, quick = SIZES[size]
            study = os.path.join(data, f"study-{size}")
            files, bytes_total = synth(binary, study, quick if args.quick else full, rows)
            runs_folder = os.path.join(data, f"runs-{size}")
            os.makedirs(runs_folder)
            for associations in association_counts:
                folders = split_study(files, associations,
                                      os.path.join(data, f"split-{size}-{associations}"))
                for client in clients:
                    samples = {r.name: [] for r in receivers}
                    # Round by round, so that a slow spell of the disk hits every receiver.
                    for _ in range(runs):
                        for receiver in receivers:
                            commands = lambda: send_commands(client, binary, receiver, study,
                                                             folders)
                            samples[receiver.name].append(
                                run_case(receiver, commands, len(files), bytes_total,
                                         runs_folder, disk))
                    for receiver in receivers:
                        row = {"size": size, "bytes_per_instance": bytes_total // len(files),
                               "instances": len(files), "associations": associations,
                               "client": client, "receiver": receiver.name,
                               **summarize(samples[receiver.name]),
                               "runs": samples[receiver.name]}
                        results.append(row)
                        print(f"{size:>6} x{len(files):<5} {associations} assoc {client:<9}"
                              f" {receiver.name:<26} {row['instances_per_s']:8.0f} inst/s"
                              f" ({row['spread'][0]:.0f}-{row['spread'][1]:.0f})"
                              f" {row['mb_per_s']:8.1f} MB/s"
                              f" {row['writes_per_instance']:5.2f} writes"
                              f" {row['flushes_per_instance']:5.2f} flushes"
                              f" {row['cpu_ms_per_instance']:6.3f} ms CPU per instance",
                              flush=True)
            # Deleted only once every run of this size is done, then settled.
            shutil.rmtree(runs_folder)
            settle(disk)

    table = markdown(results, sizes, association_counts, clients, receivers, flush_s)
    print()
    print(table)
    machine = {"host": platform.node(), "cores": os.cpu_count(), "kernel": platform.release()}
    write_report(args.out, "ingest", "Ingest benchmark",
                 f"{os.cpu_count()} cores, TCP_NODELAY=1, {runs} run(s) per receiver taken in "
                 "turns, disk settled before and after each; medians unless a spread is "
                 "given.",
                 table,
                 {"machine": machine, "quick": args.quick, "runs": runs, "sizes": sizes,
                  "associations": association_counts, "clients": clients,
                  "flush_seconds": flush_s,
                  "receivers": [r.name for r in receivers], "results": results})


if __name__ == "__main__":
    main()
