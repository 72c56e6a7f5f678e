#!/usr/bin/env python3
"""Ingest benchmark: the same synthetic study sent by the same client to
dcmstreams and to its peers, in the same run, on loopback with TCP_NODELAY=1.

Receivers: dcmstreams with durable writes (storage.sync instance) and
without (none), storescp, storescp --fork, Orthanc, and storescp --fork
--ignore (receives and answers, writes nothing: the DICOM-without-disk
ceiling).
Clients: DCMTK storescu (one process per association) and dcmstreams send
(one process, N associations). Every receiver starts fresh for every run.
Prints instances/s, MB/s, receiver CPU per instance and ratios, and writes
bench/results/<date>-<host>-ingest.{json,md}.

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

from common import (CEILING, ENV, cpu_seconds, dcmstreams_receiver, driver_arguments,
                    orthanc_receiver, split_study, storescp_receiver, synth, write_report)

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


def run_case(receiver, make_commands, expected, bytes_total):
    with tempfile.TemporaryDirectory(prefix="dcmstreams-bench-") as work:
        receiver.start(work)
        commands = make_commands()  # the receiver's port is known now
        cpu_before = cpu_seconds(receiver.proc.pid)
        start = time.perf_counter()
        senders = [subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
                   for command in commands]
        errors = [s.communicate()[1] for s in senders]
        elapsed = time.perf_counter() - start
        time.sleep(0.2)  # let forked children be reaped before reading CPU time
        cpu = cpu_seconds(receiver.proc.pid) - cpu_before
        # Orthanc's statistics may lag its last answer by a moment; the
        # time is taken already.
        stored = receiver.stored()
        deadline = time.time() + 10
        while stored is not None and stored < expected and time.time() < deadline:
            time.sleep(0.1)
            stored = receiver.stored()
        receiver.stop()
    if (stored is not None and stored != expected) or any(s.returncode != 0 for s in senders):
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


def ratio(a, b):
    return a / b if b else 0.0


def markdown(results, sizes, association_counts, clients, receivers):
    """One table per client: rows size x associations, columns receivers,
    then the durable node's ratios to storescp and Orthanc and its MB/s as a
    fraction of the DICOM-without-disk ceiling."""
    names = [r.name for r in receivers]
    out = []
    for client in clients:
        out.append(f"### Client: {client}\n")
        out.append("| size | assoc | " + " | ".join(names) +
                   " | durable / storescp | durable / Orthanc | durable MB/s / ceiling |")
        out.append("|---|---|" + "---|" * (len(names) + 3))
        for size in sizes:
            for associations in association_counts:
                row = {r["receiver"]: r for r in results if r["size"] == size and
                       r["associations"] == associations and r["client"] == client}
                if DURABLE not in row:
                    continue
                cells = [f"{row[n]['instances_per_s']:.0f}/s" if n in row else "-" for n in names]
                durable = row[DURABLE]
                scp = row.get("storescp", {}).get("instances_per_s", 0)
                orthanc = row.get("Orthanc", {}).get("instances_per_s", 0)
                ceiling = row.get(CEILING, {}).get("mb_per_s", 0)
                out.append(f"| {size} | {associations} | " + " | ".join(cells) +
                           f" | {ratio(durable['instances_per_s'], scp):.2f}x"
                           f" | {ratio(durable['instances_per_s'], orthanc):.2f}x"
                           f" | {100 * ratio(durable['mb_per_s'], ceiling):.0f} % |")
        out.append("")
    return "\n".join(out)


def main():
    def own_arguments(parser):
        parser.add_argument("--sizes", default=None, help="of " + ",".join(SIZES))
        parser.add_argument("--associations", default=None, help="counts, such as 1,4,8")
        parser.add_argument("--clients", default=None, help="storescu, send or both")

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

    results = []
    with tempfile.TemporaryDirectory(prefix="dcmstreams-bench-data-") as data:
        for size in sizes:
            rows, full, quick = SIZES[size]
            study = os.path.join(data, f"study-{size}")
            files, bytes_total = synth(binary, study, quick if args.quick else full, rows)
            for associations in association_counts:
                folders = split_study(files, associations,
                                      os.path.join(data, f"split-{size}-{associations}"))
                for client in clients:
                    for receiver in receivers:
                        commands = lambda: send_commands(client, binary, receiver, study,
                                                         folders)
                        samples = [run_case(receiver, commands, len(files), bytes_total)
                                   for _ in range(runs)]
                        row = {"size": size, "bytes_per_instance": bytes_total // len(files),
                               "instances": len(files), "associations": associations,
                               "client": client, "receiver": receiver.name,
                               **summarize(samples), "runs": samples}
                        results.append(row)
                        print(f"{size:>6} x{len(files):<5} {associations} assoc {client:<9}"
                              f" {receiver.name:<26} {row['instances_per_s']:8.0f} inst/s"
                              f" {row['mb_per_s']:8.1f} MB/s"
                              f" {row['cpu_ms_per_instance']:6.2f} ms CPU/inst", flush=True)

    table = markdown(results, sizes, association_counts, clients, receivers)
    print()
    print(table)
    machine = {"host": platform.node(), "cores": os.cpu_count(), "kernel": platform.release()}
    write_report(args.out, "ingest", "Ingest benchmark",
                 f"{os.cpu_count()} cores, TCP_NODELAY=1, median of {runs} run(s), instances/s.",
                 table,
                 {"machine": machine, "quick": args.quick, "runs": runs, "sizes": sizes,
                  "associations": association_counts, "clients": clients,
                  "receivers": [r.name for r in receivers], "results": results})


if __name__ == "__main__":
    main()
