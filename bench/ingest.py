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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TCP_NODELAY="1")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_echo(port, aec, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if subprocess.run(["echoscu", "-aec", aec, "127.0.0.1", str(port)], env=ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"receiver on port {port} did not answer C-ECHO")


def cpu_seconds(pid):
    """User+system CPU of a process and its reaped children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17
    utime, stime, cutime, cstime = (int(fields[i - 3]) for i in (14, 15, 16, 17))
    return (utime + stime + cutime + cstime) / TICKS


def count_files(folder):
    return sum(len(files) for _, _, files in os.walk(folder))


class storescp_receiver:
    def __init__(self, fork=False):
        self.fork = fork
        self.name = "storescp --fork" if fork else "storescp"

    def start(self, work):
        self.out = os.path.join(work, "storescp-out")
        os.makedirs(self.out)
        self.port = free_port()
        args = ["storescp", "-od", self.out, str(self.port)]
        if self.fork:
            args.insert(1, "--fork")
        self.proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.aec = "ANY-SCP"
        wait_for_echo(self.port, self.aec)

    def stored(self):
        return count_files(self.out)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class dcmstreams_receiver:
    def __init__(self, binary, sync):
        self.binary = binary
        self.sync = sync
        self.name = f"dcmstreams (sync {sync})"

    def start(self, work):
        self.port = free_port()
        self.aec = "BENCH"
        streams = os.path.join(work, "streams", "bench")
        os.makedirs(streams)
        with open(os.path.join(streams, "info.json"), "w") as f:
            json.dump({"AETitle": self.aec, "command": ["/bin/true"]}, f)
        self.data = os.path.join(work, "data")
        config = os.path.join(work, "dcmstreams.json")
        with open(config, "w") as f:
            # A long quiet period keeps job creation out of the measurement.
            json.dump({"data_dir": self.data, "streams_dir": os.path.dirname(streams),
                       "dicom": {"port": self.port, "bind": "127.0.0.1"},
                       "completion": {"quiet_period_s": 3600},
                       "storage": {"sync": self.sync, "reserve_free_mb": 1},
                       "log": {"level": "warning"}}, f)
        self.log = open(os.path.join(work, "node.log"), "w")
        self.proc = subprocess.Popen([self.binary, "serve", "--config", config], env=ENV,
                                     stdout=self.log, stderr=self.log)
        wait_for_echo(self.port, self.aec)

    def stored(self):
        return sum(1 for _, _, files in os.walk(os.path.join(self.data, "incoming"))
                   for name in files if name.endswith(".dcm"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def split_study(files, parts, root):
    """One folder per association, files dealt round-robin, as hard links."""
    folders = []
    for i in range(parts):
        folder = os.path.join(root, f"part{i}")
        os.makedirs(folder)
        folders.append(folder)
    for i, path in enumerate(files):
        os.link(path, os.path.join(folders[i % parts], os.path.basename(path)))
    return folders


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
            study = os.path.join(data, f"study-{rows}")
            subprocess.run([binary, "synth", "--out", study, "--series", "1", "--instances",
                            str(instances), "--rows", str(rows), "--cols", str(rows)],
                           check=True, stdout=subprocess.DEVNULL)
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(study) for f in fs)
            bytes_total = sum(os.path.getsize(f) for f in files)
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
