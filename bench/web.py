#!/usr/bin/env python3
"""Web API latency under load: wrk drives GET /api/v1/jobs?limit=50 and GET
/metrics of a dcmstreams node holding N finished jobs, while storescu keeps
sending a study to it. The same is done to Orthanc in the same run, as the
reference peer: GET /studies?expand&limit=50 (its newest studies with their
details) and GET /tools/metrics-prometheus. Prints p50/p99 latency and
requests/s of each, and the ratios.

    bench/web.py [--quick] [--build DIR] [--out DIR]
"""

import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request

from common import (ENV, driver_arguments, free_port, synth, wait_for_echo, wait_for_http,
                    write_orthanc_config, write_report)


def start_dcmstreams(binary, work):
    dicom, web = free_port(), free_port()
    streams = os.path.join(work, "streams", "copy")
    os.makedirs(streams)
    with open(os.path.join(streams, "info.json"), "w") as f:
        json.dump({"AETitle": "BENCH", "command": ["/bin/true"]}, f)
    config = os.path.join(work, "dcmstreams.json")
    with open(config, "w") as f:
        json.dump({"data_dir": "data", "streams_dir": "streams",
                   "dicom": {"port": dicom, "bind": "127.0.0.1"}, "web": {"port": web},
                   "completion": {"quiet_period_s": 0.5}, "storage": {"reserve_free_mb": 1},
                   "log": {"level": "warning"}}, f)
    log = open(os.path.join(work, "node.log"), "w")
    proc = subprocess.Popen([binary, "serve", "--config", config], env=ENV, stdout=log, stderr=log)
    wait_for_echo(dicom, "BENCH")
    base = f"http://127.0.0.1:{web}"
    return {"name": "dcmstreams", "proc": proc, "dicom": dicom, "aec": "BENCH", "base": base,
            "list": base + "/api/v1/jobs?limit=50", "metrics": base + "/metrics",
            "count": lambda: json.load(urllib.request.urlopen(base + "/api/v1/jobs?limit=1"))["total"]}


def start_orthanc(work):
    dicom, web = free_port(), free_port()
    config = write_orthanc_config(work, dicom, web)
    log = open(os.path.join(work, "orthanc.log"), "w")
    proc = subprocess.Popen(["Orthanc", config], env=ENV, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{web}"
    wait_for_http(base + "/system")
    return {"name": "Orthanc", "proc": proc, "dicom": dicom, "aec": "ORTHANC", "base": base,
            "list": base + "/studies?expand&since=0&limit=50", "metrics": base + "/tools/metrics-prometheus",
            "count": lambda: len(json.load(urllib.request.urlopen(base + "/studies")))}


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url, seconds, connections):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    percentiles = {}
    for p, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        percentiles[p] = float(value) * UNITS[unit]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses\n{out}")
    return {"p50_ms": percentiles["50"], "p99_ms": percentiles["99"], "requests_per_s": rate}


class background_ingest:
    """Sends `folder` to the peer again and again until stopped."""

    def __init__(self, peer, folder):
        self.peer, self.folder, self.sent = peer, folder, 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stopping.is_set():
            subprocess.run(["storescu", "-aec", self.peer["aec"], "+sd", "+r", "127.0.0.1",
                            str(self.peer["dicom"]), self.folder], env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.sent += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()


def main():
    args = driver_arguments("web.py", __doc__, with_runs=False)
    binary = args.binary
    studies = 50 if args.quick else 300
    seconds = 3 if args.quick else 15
    connections = 8
    rows = []
    with tempfile.TemporaryDirectory(prefix="dcmstreams-web-") as work:
        subprocess.run([binary, "synth", "--out", os.path.join(work, "many"), "--studies",
                        str(studies), "--series", "1", "--instances", "2", "--rows", "16",
                        "--cols", "16"], check=True, stdout=subprocess.DEVNULL)
        synth(binary, os.path.join(work, "load"), 100, 128)
        for start in (lambda w: start_dcmstreams(binary, w), start_orthanc):
            peer_dir = tempfile.mkdtemp(dir=work)
            peer = start(peer_dir)
            try:
                subprocess.run(["storescu", "-aec", peer["aec"], "+sd", "+r", "127.0.0.1",
                                str(peer["dicom"]), os.path.join(work, "many")], env=ENV,
                               check=True, stdout=subprocess.DEVNULL)
                deadline = time.time() + 120
                while peer["count"]() < studies and time.time() < deadline:
                    time.sleep(0.2)
                with background_ingest(peer, os.path.join(work, "load")) as ingest:
                    time.sleep(0.5)
                    for what in ("list", "metrics"):
                        result = wrk(peer[what], seconds, connections)
                        result.update({"peer": peer["name"], "endpoint": what,
                                       "url": peer[what].replace(peer["base"], "")})
                        rows.append(result)
                        print(f"{peer['name']:<10} {result['url']:<32} p50 {result['p50_ms']:7.2f} ms"
                              f"  p99 {result['p99_ms']:7.2f} ms  {result['requests_per_s']:8.0f} req/s",
                              flush=True)
                print(f"{peer['name']:<10} studies sent meanwhile: {ingest.sent}")
            finally:
                peer["proc"].terminate()
                peer["proc"].wait()
    by = {(r["peer"], r["endpoint"]): r for r in rows}
    lines = ["| endpoint | dcmstreams p50 / p99 | Orthanc p50 / p99 | dcmstreams req/s | Orthanc req/s | p99 ratio (Orthanc / dcmstreams) |",
             "|---|---|---|---|---|---|"]
    for what, label in (("list", "newest 50 jobs / studies"), ("metrics", "Prometheus metrics")):
        d, o = by[("dcmstreams", what)], by[("Orthanc", what)]
        lines.append(f"| {label} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} ms | {o['p50_ms']:.2f} / "
                     f"{o['p99_ms']:.2f} ms | {d['requests_per_s']:.0f} | {o['requests_per_s']:.0f} |"
                     f" {o['p99_ms'] / d['p99_ms']:.2f}x |")
    table = "\n".join(lines)
    print("\n" + table)
    write_report(args.out, "web", "Web API latency",
                 f"wrk -t2 -c{connections} -d{seconds}s against each peer holding {studies} "
                 f"studies (jobs), while storescu sends a 100-instance 128x128 study to it in a "
                 f"loop.", table,
                 {"quick": args.quick, "studies": studies, "seconds": seconds,
                  "connections": connections, "results": rows})


if __name__ == "__main__":
    main()
