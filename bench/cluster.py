#!/usr/bin/env python3
"""Worker nodes (docs/cluster.md): how jobs scale over workers, and how fast
a study moves from the head to a worker.

Scaling: a CPU-bound stream (gaussian, sigma 2 mm, on 512x512x100 CT
volumes) on a head that runs no jobs itself (cluster.head_slots 0). The
studies are sent first, while no worker has joined, so every job waits in
the queue; then 1 worker, or 2 workers each pinned to a core of its own
(taskset), join and run them. Jobs/s is the number of jobs over the time
from the first job's start to the last one's end (from the head's API);
every job must succeed and have as many outputs as inputs. The ratio is
2 workers against 1 in the same run.

Transfer: a study of about 500 MB (5 MB instances) to a stream whose program
does nothing; the worker's log line for the inputs gives MB/s, beside a
plain TCP copy of the same files over loopback in the same run (a Python
socket pair writing the files out: the ceiling without CAF). Peak memory of
head and worker is VmHWM (reset through /proc/PID/clear_refs after the
study arrived) above the RSS they had then.

    bench/cluster.py [--quick] [--runs N] [--build DIR] [--out DIR]
"""

import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from common import ENV, driver_arguments, free_port, synth, wait_for_echo, write_report

CORES = os.cpu_count() or 1


def api(web, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{web}{path}") as reply:
        return json.load(reply)


def epoch(stamp):
    return time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float(stamp[19:-1] or 0)


def memory_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class head:
    """A head with a cluster port and one stream; workers join it."""

    def __init__(self, binary, work, stream, shared_data=False, tls=False):
        self.binary, self.work = binary, work
        self.tls = []
        cluster = {}
        if tls:
            ca, certificates = os.path.join(work, "ca"), os.path.join(work, "certificates")
            subprocess.run([binary, "cluster-ca", "init", "--dir", ca], check=True,
                           stdout=subprocess.DEVNULL)
            for name in ("head", "worker"):
                subprocess.run([binary, "cluster-ca", "sign", name, "--dir", ca, "--out",
                                certificates], check=True, stdout=subprocess.DEVNULL)
            cluster["tls"] = {"certificate": os.path.join(certificates, "head.pem"),
                              "key": os.path.join(certificates, "head.key"),
                              "ca": os.path.join(ca, "ca.pem")}
            self.tls = ["--certificate", os.path.join(certificates, "worker.pem"),
                        "--key", os.path.join(certificates, "worker.key"),
                        "--ca", os.path.join(ca, "ca.pem")]
        self.port, self.web, self.cluster = free_port(), free_port(), free_port()
        streams = os.path.join(work, "streams", "bench")
        os.makedirs(streams)
        with open(os.path.join(streams, "info.json"), "w") as f:
            json.dump(dict(stream, AETitle="BENCH"), f)
        config = os.path.join(work, "dcmstreams.json")
        with open(config, "w") as f:
            json.dump({"data_dir": os.path.join(work, "data"),
                       "streams_dir": os.path.dirname(streams),
                       "dicom": {"port": self.port, "bind": "127.0.0.1"},
                       "web": {"port": self.web},
                       # Long enough that a busy machine never splits a study.
                       "completion": {"quiet_period_s": 3},
                       "storage": {"reserve_free_mb": 1},
                       "cluster": dict(cluster, port=self.cluster, head_slots=0,
                                       shared_data=shared_data),
                       "log": {"level": "info"}}, f)
        self.log = open(os.path.join(work, "head.log"), "w")
        self.proc = subprocess.Popen([binary, "serve", "--config", config], env=ENV,
                                     stdout=self.log, stderr=self.log)
        wait_for_echo(self.port, "BENCH")
        self.workers = []

    def send(self, folder):
        subprocess.run(["storescu", "-aec", "BENCH", "+sd", "+r", "127.0.0.1", str(self.port),
                        folder], env=ENV, check=True, stdout=subprocess.DEVNULL)

    def jobs(self):
        return api(self.web, "/api/v1/jobs?limit=1000")["jobs"]

    def wait_for_jobs(self, count, state, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = self.jobs()
            if len(jobs) == count and all(j["state"] == state for j in jobs):
                return jobs
            if any(j["state"] in ("failed", "cancelled") for j in jobs):
                raise RuntimeError(f"a job failed: {jobs}")
            for proc, log in self.workers:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker ended ({proc.returncode}): see {log.name}")
            time.sleep(0.1)
        raise RuntimeError(f"{count} jobs not {state} in {timeout} s: {self.jobs()}")

    def add_worker(self, name, cpu=None):
        command = [self.binary, "worker", "--join", f"127.0.0.1:{self.cluster}", "--name", name,
                   "--data", os.path.join(self.work, name)] + self.tls
        if cpu is not None:
            command = ["taskset", "-c", str(cpu)] + command
        log = open(os.path.join(self.work, name + ".log"), "w")
        self.workers.append((subprocess.Popen(command, env=ENV, stdout=log, stderr=log), log))
        return self.workers[-1][0]

    def stop(self):
        for proc, log in self.workers:
            proc.terminate()
            proc.wait()
            log.close()
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def scaling_run(binary, studies, instances, workers, shared_data):
    stream = {"concurrency": 8, "pipeline": [{"kernel": "gaussian", "sigma_mm": 2.0}]}
    with tempfile.TemporaryDirectory(prefix="dcmstreams-cluster-") as work:
        node = head(binary, work, stream, shared_data)
        try:
            for study in studies:
                node.send(study)
            node.wait_for_jobs(len(studies), "queued", 120)
            for i in range(workers):
                node.add_worker(f"w{i + 1}", cpu=i % CORES)
            jobs = node.wait_for_jobs(len(studies), "success", 1800)
            for job in jobs:
                if job["instances"] != instances:
                    raise RuntimeError(f"job {job['id']} has {job['instances']} instances")
                detail = api(node.web, f"/api/v1/jobs/{job['id']}")
                if detail["output_files"] != instances:
                    raise RuntimeError(f"job {job['id']}: {detail['output_files']} outputs")
            start = min(epoch(j["started"]) for j in jobs)
            end = max(epoch(j["finished"]) for j in jobs)
            used = sorted({j["worker"] for j in jobs})
            return len(jobs) / (end - start), end - start, used
        finally:
            node.stop()


def tcp_copy(files, target):
    """The same files over a loopback TCP connection, written out: MB/s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    total = sum(os.path.getsize(f) for f in files)

    def receive():
        connection, _ = listener.accept()
        with connection:
            for i, path in enumerate(files):
                size = os.path.getsize(path)
                with open(os.path.join(target, f"{i}.dcm"), "wb") as out:
                    left = size
                    while left:
                        chunk = connection.recv(min(left, 1 << 20))
                        out.write(chunk)
                        left -= len(chunk)

    receiver = threading.Thread(target=receive)
    receiver.start()
    start = time.time()
    with socket.create_connection(listener.getsockname()) as sender:
        for path in files:
            with open(path, "rb") as f:
                sender.sendfile(f)
    receiver.join()
    listener.close()
    return total / 1e6 / (time.time() - start)


def transfer_run(binary, study, files, tls):
    with tempfile.TemporaryDirectory(prefix="dcmstreams-transfer-") as work:
        node = head(binary, work, {"command": ["/bin/true"]}, tls=tls)
        try:
            node.send(study)
            node.wait_for_jobs(1, "queued", 120)
            time.sleep(1)
            head_idle = memory_kb(node.proc.pid, "VmRSS")
            with open(f"/proc/{node.proc.pid}/clear_refs", "w") as f:
                f.write("5")
            worker = node.add_worker("w1")
            time.sleep(0.3)
            worker_idle = memory_kb(worker.pid, "VmRSS")
            jobs = node.wait_for_jobs(1, "success", 600)
            head_peak = memory_kb(node.proc.pid, "VmHWM") - head_idle
            worker_peak = memory_kb(worker.pid, "VmHWM") - worker_idle
            log = open(os.path.join(work, "data", "jobs", str(jobs[0]["id"]),
                                    "processing.log")).read()
            line = re.search(r"worker: inputs (\d+) files, ([\d.]+) MB in ([\d.]+) s", log)
            if not line or int(line.group(1)) != len(files):
                raise RuntimeError("no transfer line for every input:\n" + log)
            mb, seconds = float(line.group(2)), float(line.group(3))
            copy_dir = os.path.join(work, "tcp-copy")
            os.makedirs(copy_dir)
            tcp = tcp_copy(files, copy_dir)
            return {"tls": tls, "mb": mb, "seconds": seconds, "mb_s": mb / seconds, "tcp_mb_s": tcp,
                    "head_peak_mb": head_peak / 1024, "worker_peak_mb": worker_peak / 1024}
        finally:
            node.stop()


def main():
    args = driver_arguments("cluster.py", __doc__)
    count = 4 if args.quick else 8
    instances = 100
    results = {"scaling": [], "transfer": []}
    with tempfile.TemporaryDirectory(prefix="dcmstreams-cluster-data-") as data:
        studies = []
        for i in range(count):
            folder = os.path.join(data, f"study{i}")
            synth(args.binary, folder, instances, 512)
            studies.append(folder)
        for run in range(args.runs):
            for shared in (False, True):
                one = scaling_run(args.binary, studies, instances, 1, shared)
                two = scaling_run(args.binary, studies, instances, 2, shared)
                results["scaling"].append({"shared_data": shared, "one": one[0], "two": two[0],
                                           "ratio": two[0] / one[0], "workers_used": two[2]})
                how = "shared data folder" if shared else "files in chunks"
                print(f"scaling run {run + 1}, {how}: 1 worker {one[0]:.2f} jobs/s "
                      f"({one[1]:.1f} s), 2 workers {two[0]:.2f} jobs/s ({two[1]:.1f} s) on "
                      f"{two[2]}: {two[0] / one[0]:.2f}x", flush=True)
        big = os.path.join(data, "big")
        files, size = synth(args.binary, big, 20 if args.quick else 100, 1600)
        for run in range(args.runs):
            for tls in (False, True):
                t = transfer_run(args.binary, big, files, tls)
                results["transfer"].append(t)
                print(f"transfer run {run + 1}, {'TLS' if tls else 'plain TCP'}: "
                      f"{t['mb']:.0f} MB head -> worker in {t['seconds']:.2f} s = "
                      f"{t['mb_s']:.0f} MB/s (plain TCP copy {t['tcp_mb_s']:.0f} MB/s, "
                      f"{t['mb_s'] / t['tcp_mb_s']:.2f}x); peak memory above idle: head "
                      f"{t['head_peak_mb']:.0f} MB, worker {t['worker_peak_mb']:.0f} MB",
                      flush=True)

    def median(rows, key):
        return sorted(rows, key=lambda r: r[key])[len(rows) // 2]

    rows = ""
    for shared in (False, True):
        s = median([r for r in results["scaling"] if r["shared_data"] == shared], "ratio")
        how = "shared data folder" if shared else "files in chunks"
        rows += (f"| gaussian jobs/s, 2 workers vs 1, {how} (median run) | {s['two']:.2f} | "
                 f"{s['one']:.2f} | {s['ratio']:.2f}× |\n")
    for tls in (False, True):
        t = median([r for r in results["transfer"] if r["tls"] == tls], "mb_s")
        how = "mutual TLS" if tls else "plain TCP"
        rows += (f"| head → worker, {t['mb']:.0f} MB ({how}) | {t['mb_s']:.0f} MB/s | "
                 f"{t['tcp_mb_s']:.0f} MB/s (Python socket copy) | "
                 f"{t['mb_s'] / t['tcp_mb_s']:.2f}× |\n"
                 f"| peak memory above idle ({how}) | head {t['head_peak_mb']:.0f} MB, worker "
                 f"{t['worker_peak_mb']:.0f} MB | | |\n")
    table = "| measure | dcmstreams | beside | ratio |\n|---|---|---|---|\n" + rows
    write_report(args.out, "cluster", "Worker nodes",
                 f"{count} studies of {instances} × 512×512 CT, gaussian 2 mm, head_slots 0; "
                 f"workers pinned with taskset on {CORES} cores; {args.runs} run(s). Transfer: "
                 "the worker's own measure of its inputs arriving; TLS: certificates of "
                 "`dcmstreams cluster-ca`.", table, results)


if __name__ == "__main__":
    main()
